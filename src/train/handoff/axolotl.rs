//! Axolotl: `axolotl.yaml` reading the samples as `input_output` segments
//! (rendered by tunebench's chat template, cut where training starts and
//! stops, so the trained tokens are tunebench's to the token), a DeepSpeed
//! ZeRO-3 file when more than one GPU trains, and `launch.sh` (`accelerate
//! launch -m axolotl.cli.train`).

use super::llamafactory::scheduler;
use super::yaml::Yaml;
use super::{Data, Handoff, Written};
use crate::train::config::TrainConfig;
use serde_json::json;

pub fn write(
    config: &TrainConfig,
    model: &str,
    handoff: &Handoff,
    data: Data,
    not_carried: &mut Vec<String>,
) -> Result<Written, String> {
    let (m, l, d, t) = (&config.model, &config.lora, &config.data, &config.training);
    let mut y = Yaml::default();
    y.section("model");
    y.set("base_model", model);
    // The data comes rendered; the template is only what Axolotl saves
    // with the tokenizer for serving.
    if let Some(template @ ("chatml" | "alpaca")) = m.template.as_deref() {
        y.set("chat_template", template);
    }
    match m.quantize.as_deref() {
        None => y.set("adapter", "lora"),
        Some(kind) if kind.starts_with("q8") => {
            y.set("adapter", "lora");
            y.set("load_in_8bit", true);
            not_carried.push(format!(
                "model.quantize = \"{kind}\": Axolotl quantizes with bitsandbytes (8-bit), not GGUF blocks; the base's rounding differs"
            ));
        }
        Some(kind) => {
            y.set("adapter", "qlora");
            y.set("load_in_4bit", true);
            not_carried.push(format!(
                "model.quantize = \"{kind}\": Axolotl's QLoRA quantizes with bitsandbytes (NF4), not GGUF blocks; the base's rounding differs"
            ));
        }
    }
    y.section("data");
    let dataset = |path: &str| {
        let mut entry = json!({"path": path, "ds_type": "json", "type": "input_output"});
        if path.contains("eval") {
            entry["split"] = "train".into();
        }
        format!("- {entry}")
    };
    y.block("datasets", &[dataset(super::TRAIN_SEGMENTS)]);
    if data.has_eval {
        y.block("test_datasets", &[dataset(super::EVAL_SEGMENTS)]);
    }
    // Also what the segments' labels say, for readers.
    y.set("train_on_inputs", d.train_on_inputs);
    y.set("val_set_size", 0.0);
    y.set("dataset_prepared_path", "last_run_prepared");
    y.set("sequence_len", d.max_seq_len);
    // Longer samples keep their first tokens, as in tunebench (Axolotl's
    // default drops them).
    y.set("excess_length_strategy", "truncate");
    y.set("sample_packing", d.packing);
    if d.packing {
        not_carried.push(
            "data.packing: Axolotl keeps packed samples from attending to each other only with flash attention (`flash_attention: true`, on GPUs that have it)".into(),
        );
    }
    y.section("lora");
    y.set("lora_r", l.r);
    y.set("lora_alpha", l.alpha);
    y.set("lora_dropout", l.dropout);
    if l.targets
        .iter()
        .any(|t| t == "all-linear" || t == "all_linear")
    {
        y.set("lora_target_linear", true);
    } else {
        y.set("lora_target_modules", json!(l.targets));
    }
    if l.use_rslora {
        y.set("peft_use_rslora", true);
    }
    if let Some(from) = &l.init_from {
        y.set("lora_model_dir", from.as_str());
    }
    y.section("training");
    y.set("output_dir", "./outputs");
    y.set("micro_batch_size", t.batch_size);
    y.set("gradient_accumulation_steps", t.grad_accum);
    y.set("num_epochs", t.epochs);
    if t.max_steps > 0 {
        y.set("max_steps", t.max_steps);
    }
    y.set("optimizer", "adamw_torch");
    y.set("learning_rate", t.lr);
    y.set(
        "lr_scheduler",
        scheduler(&t.schedule, t.warmup_steps, t.warmup_ratio),
    );
    match t.warmup_steps {
        Some(steps) => y.set("warmup_steps", steps),
        None => y.set("warmup_ratio", t.warmup_ratio),
    }
    y.set("weight_decay", t.weight_decay);
    y.set("max_grad_norm", t.max_grad_norm);
    y.set("adam_epsilon", t.adam_eps);
    y.set("seed", t.seed);
    y.set("bf16", m.dtype == "bf16");
    match t.gradient_checkpointing {
        Some(on) => y.set("gradient_checkpointing", on),
        None => not_carried.push(
            "training.gradient_checkpointing is automatic in tunebench (from its memory estimate); set gradient_checkpointing in axolotl.yaml for the target GPUs".into(),
        ),
    }
    y.set("logging_steps", 1);
    if data.has_eval && t.eval_every > 0 {
        y.set("eval_steps", t.eval_every);
        y.set("eval_on_start", t.eval_at_start);
    }
    y.set("save_steps", t.checkpoint_every);
    y.set("save_total_limit", t.keep_checkpoints);
    if t.early_stopping_patience > 0 {
        y.set("early_stopping_patience", t.early_stopping_patience);
    }
    if handoff.devices() > 1 {
        y.set("deepspeed", super::ZERO3);
    }
    super::write_engine_files(
        handoff,
        "Axolotl",
        "axolotl.yaml",
        y,
        launch_command(handoff),
    )
}

/// `accelerate launch` over the GPUs (and nodes: NODE_RANK and MASTER_ADDR
/// from each node's environment).
fn launch_command(handoff: &Handoff) -> String {
    let processes = handoff.devices();
    if processes <= 1 {
        return "accelerate launch -m axolotl.cli.train axolotl.yaml".into();
    }
    let mut args = format!("--num_processes {processes}");
    if handoff.nodes > 1 {
        args.push_str(&format!(
            " --num_machines {} --machine_rank ${{NODE_RANK:?set NODE_RANK}} --main_process_ip ${{MASTER_ADDR:?set MASTER_ADDR}} --main_process_port ${{MASTER_PORT:-29500}}",
            handoff.nodes
        ));
    }
    format!("accelerate launch {args} -m axolotl.cli.train axolotl.yaml")
}
