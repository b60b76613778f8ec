//! LLaMA-Factory: `data/dataset_info.json` (the chat records as its
//! "sharegpt" formatting with OpenAI role tags), `train.yaml` for
//! `llamafactory-cli train`, a DeepSpeed ZeRO-3 file when more than one GPU
//! trains, and `launch.sh`.

use super::yaml::Yaml;
use super::{Data, Handoff, Written, write_file};
use crate::data::{Message, Role};
use crate::model::ChatTokenizer;
use crate::train::config::TrainConfig;
use serde_json::json;

pub fn write(
    config: &TrainConfig,
    model: &str,
    tokenizer: &ChatTokenizer,
    handoff: &Handoff,
    data: Data,
    not_carried: &mut Vec<String>,
) -> Result<Written, String> {
    let has_eval = data.has_eval;
    let tags = json!({
        "role_tag": "role", "content_tag": "content", "user_tag": "user",
        "assistant_tag": "assistant", "system_tag": "system",
        "observation_tag": "tool", "function_tag": "function_call",
    });
    let mut info = serde_json::Map::new();
    for (name, file) in [
        ("tunebench_train", "train.jsonl"),
        ("tunebench_eval", "eval.jsonl"),
    ] {
        if name == "tunebench_eval" && !has_eval {
            continue;
        }
        let mut columns = json!({"messages": "messages"});
        if data.has_tools {
            columns["tools"] = "tools".into();
        }
        info.insert(
            name.into(),
            json!({"file_name": file, "formatting": "sharegpt", "columns": columns, "tags": tags}),
        );
    }
    let info_text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    write_file(&handoff.out.join("data/dataset_info.json"), &info_text)?;

    let (template, default_system) = template_of(tokenizer, config, not_carried)?;
    let (m, l, d, t) = (&config.model, &config.lora, &config.data, &config.training);
    let mut y = Yaml::default();
    y.section("model");
    y.set("model_name_or_path", model);
    match m.quantize.as_deref() {
        None => {}
        Some(kind) => {
            let bits = if kind.starts_with("q8") { 8 } else { 4 };
            y.set("quantization_bit", bits);
            not_carried.push(format!(
                "model.quantize = \"{kind}\": LLaMA-Factory quantizes with bitsandbytes ({bits}-bit), not GGUF blocks; the base's rounding differs"
            ));
        }
    }
    if m.device != "auto" && m.device != "cpu" {
        not_carried.push(format!(
            "model.device = \"{}\": the launcher places the model (see launch.sh)",
            m.device
        ));
    }
    y.section("method");
    y.set("stage", "sft");
    y.set("do_train", true);
    y.set("finetuning_type", "lora");
    y.set("lora_rank", l.r);
    y.set("lora_alpha", l.alpha);
    y.set("lora_dropout", l.dropout);
    y.set("lora_target", lora_target(&l.targets));
    if l.use_rslora {
        y.set("use_rslora", true);
    }
    if let Some(from) = &l.init_from {
        y.set("adapter_name_or_path", from.as_str());
    }
    y.section("dataset");
    y.set("dataset_dir", "data");
    y.set("dataset", "tunebench_train");
    if has_eval {
        y.set("eval_dataset", "tunebench_eval");
    }
    y.set("template", template.as_str());
    if let Some(system) = default_system {
        y.set("default_system", system);
    }
    y.set("cutoff_len", d.max_seq_len);
    y.set("train_on_prompt", d.train_on_inputs);
    if d.packing {
        // Packed rows that do not attend across samples, as tunebench packs.
        y.set("packing", true);
        y.set("neat_packing", true);
    }
    y.set("overwrite_cache", true);
    y.set("preprocessing_num_workers", 4);
    y.section("output");
    y.set("output_dir", "outputs");
    y.set("logging_steps", 1);
    y.set("save_steps", t.checkpoint_every);
    y.set("save_total_limit", t.keep_checkpoints);
    y.set("plot_loss", true);
    y.set("overwrite_output_dir", true);
    y.set("report_to", "none");
    y.section("train");
    y.set("per_device_train_batch_size", t.batch_size);
    y.set("gradient_accumulation_steps", t.grad_accum);
    y.set("learning_rate", t.lr);
    y.set("num_train_epochs", t.epochs as f64);
    if t.max_steps > 0 {
        y.set("max_steps", t.max_steps);
    }
    y.set(
        "lr_scheduler_type",
        scheduler(&t.schedule, t.warmup_steps, t.warmup_ratio),
    );
    match t.warmup_steps {
        Some(steps) => y.set("warmup_steps", steps),
        None => y.set("warmup_ratio", t.warmup_ratio),
    }
    y.set("max_grad_norm", t.max_grad_norm);
    y.set("weight_decay", t.weight_decay);
    y.set("adam_epsilon", t.adam_eps);
    y.set("optim", "adamw_torch");
    y.set("seed", t.seed);
    y.set("data_seed", t.seed);
    if m.dtype == "bf16" {
        y.set("bf16", true);
    }
    if let Some(on) = t.gradient_checkpointing {
        y.set("disable_gradient_checkpointing", !on);
    }
    if t.early_stopping_patience > 0 {
        not_carried.push(format!(
            "training.early_stopping_patience = {}: LLaMA-Factory has no early stopping key; stop the run by hand",
            t.early_stopping_patience
        ));
    }
    if has_eval && t.eval_every > 0 {
        y.section("eval");
        y.set("per_device_eval_batch_size", 1);
        y.set("eval_strategy", "steps");
        y.set("eval_steps", t.eval_every);
        y.set("eval_on_start", t.eval_at_start);
    }
    if handoff.devices() > 1 {
        y.section("distributed");
        y.set("deepspeed", super::ZERO3);
        y.set("ddp_timeout", 180000000);
    }
    let mut written = super::write_engine_files(
        handoff,
        "LLaMA-Factory",
        "train.yaml",
        y,
        launch_command(handoff),
    )?;
    written.files.insert(0, "data/dataset_info.json".into());
    Ok(written)
}

/// The command that starts it: one process, or torchrun over the GPUs and
/// nodes (MASTER_ADDR and NODE_RANK from the environment on each node).
fn launch_command(handoff: &Handoff) -> String {
    if handoff.devices() <= 1 {
        return "llamafactory-cli train train.yaml".into();
    }
    let mut env = format!("FORCE_TORCHRUN=1 NPROC_PER_NODE={}", handoff.gpus);
    if handoff.nodes > 1 {
        env.push_str(&format!(
            " NNODES={} NODE_RANK=${{NODE_RANK:?set NODE_RANK}} MASTER_ADDR=${{MASTER_ADDR:?set MASTER_ADDR}} MASTER_PORT=${{MASTER_PORT:-29500}}",
            handoff.nodes
        ));
    }
    format!("{env} llamafactory-cli train train.yaml")
}

fn lora_target(targets: &[String]) -> String {
    if targets
        .iter()
        .any(|t| t == "all-linear" || t == "all_linear")
    {
        "all".into()
    } else {
        targets.join(",")
    }
}

/// tunebench warms up linearly, then decays as named (constant holds).
pub(super) fn scheduler(
    schedule: &str,
    warmup_steps: Option<usize>,
    warmup_ratio: f64,
) -> &'static str {
    let warms = warmup_steps.unwrap_or(0) > 0 || warmup_ratio > 0.0;
    match schedule {
        "linear" => "linear",
        "constant" if warms => "constant_with_warmup",
        "constant" => "constant",
        _ => "cosine",
    }
}

/// LLaMA-Factory's template for the model's chat template, checked by
/// rendering a probe: ChatML models take `chatml` with the template's own
/// default system prompt; Llama 3 and Mistral layouts take theirs.
fn template_of(
    tokenizer: &ChatTokenizer,
    config: &TrainConfig,
    not_carried: &mut Vec<String>,
) -> Result<(String, Option<String>), String> {
    if let Some(builtin) = &config.model.template {
        return match builtin.as_str() {
            "chatml" => Ok(("chatml".into(), None)),
            "alpaca" => Ok(("alpaca".into(), None)),
            other => Err(format!(
                "model.template = \"{other}\" has no LLaMA-Factory counterpart; choose chatml or alpaca"
            )),
        };
    }
    let probe = [Message::new(Role::User, "PROBE")];
    let text = tokenizer
        .template
        .render(&probe, None, true)
        .map_err(|e| e.to_string())?;
    if text.contains("<|im_start|>") {
        let system = text
            .split_once("<|im_start|>system\n")
            .and_then(|(_, rest)| rest.split_once("<|im_end|>"))
            .map(|(system, _)| system.to_string());
        return Ok(("chatml".into(), system));
    }
    if text.contains("<|start_header_id|>") {
        not_carried.push(
            "the chat template maps to LLaMA-Factory's `llama3`; its default system text (dates) is LLaMA-Factory's, not the model's".into(),
        );
        return Ok(("llama3".into(), None));
    }
    if text.contains("[INST]") {
        return Ok(("mistral".into(), None));
    }
    Err(
        "no LLaMA-Factory template is known to render this model's chat template; export with [model] template = \"chatml\" or set `template` in train.yaml by hand"
            .into(),
    )
}
