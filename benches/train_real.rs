//! Long-sequence LoRA training on SmolLM2-135M with the real FastAPI samples,
//! against torch + PEFT on the same tokens (issue 11's benchmark).
//!
//! Rank 16 on all seven projections, alpha 32, f32 (TUNEBENCH_DTYPE=bf16: a
//! bf16 base on our side, as `model.dtype = "bf16"` trains it), batch 1. The token row at
//! each length is the FastAPI samples tokenised with the model's template and
//! laid end to end (answers trained, requests not), cut to the length. Each
//! length runs in a fresh process so its peak RSS is its own.
//!
//!     cargo bench --bench train_real                        # 1024 4096 8192
//!     TUNEBENCH_REF_PYTHON=~/.venvs/ref/bin/python cargo bench --bench train_real -- 1024
//!
//! Environment: TUNEBENCH_REAL_MODEL (HF folder, default /tmp/smollm2-hf: see
//! DEVELOPERS.md; without it the SmolLM2 shape with random weights and
//! synthetic ids), TUNEBENCH_STEPS (timed steps, default 3, after one warm-up),
//! TUNEBENCH_CHECKPOINT_FROM (length from which both sides checkpoint, default 4096),
//! TUNEBENCH_PROFILE=1 (time per op kind over the timed steps, on stderr).

mod common;
use candle_core::{Device, Tensor};
use common::peak_rss_mb;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tunebench::model::config::ModelConfig;
use tunebench::model::decoder::Decoder;
use tunebench::model::tokenize::ChatTokenizer;
use tunebench::model::weights::{RandomWeights, Weights};
use tunebench::train::batches::{Batch, prepare};
use tunebench::train::config::DataSection;
use tunebench::train::trainer::optimizer_step;

const CHILD: &str = "TUNEBENCH_TRAIN_REAL_SEQ";
const SAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sample-data/fastapi_projects.jsonl"
);

fn main() -> anyhow::Result<()> {
    if let Ok(seq) = std::env::var(CHILD) {
        return measure(seq.parse()?);
    }
    let lengths: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let lengths = if lengths.is_empty() {
        vec![1024, 4096, 8192]
    } else {
        lengths
    };
    let model = model_dir();
    eprintln!(
        "model: {}",
        model
            .as_ref()
            .map_or("SmolLM2-135M shape, random weights".into(), |d| d
                .display()
                .to_string())
    );
    let python = std::env::var("TUNEBENCH_REF_PYTHON").ok();
    for seq in lengths {
        let me = std::env::current_exe()?;
        let out = Command::new(me).env(CHILD, seq.to_string()).output()?;
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if let Some(python) = &python {
            print!("{}", reference(python, seq, model.as_deref())?);
        }
    }
    Ok(())
}

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var("TUNEBENCH_REAL_MODEL").unwrap_or_else(|_| "/tmp/smollm2-hf".into());
    let dir = PathBuf::from(dir);
    dir.join("model.safetensors").exists().then_some(dir)
}

fn steps() -> usize {
    std::env::var("TUNEBENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

fn checkpointing(seq: usize) -> bool {
    let from = std::env::var("TUNEBENCH_CHECKPOINT_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    seq >= from
}

fn smollm2_shape() -> anyhow::Result<ModelConfig> {
    ModelConfig::from_json(&serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "vocab_size": 49152, "tie_word_embeddings": true, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0
    }))
    .map_err(anyhow::Error::msg)
}

/// The token row of `seq` ids and which of them are trained: every FastAPI
/// sample through the model's template, end to end, repeated as needed.
fn token_row(model: Option<&Path>, seq: usize) -> anyhow::Result<(Vec<u32>, Vec<bool>)> {
    let Some(dir) = model else {
        let ids = (0..seq as u32).map(|i| (i * 7919 + 13) % 49152).collect();
        return Ok((ids, vec![true; seq]));
    };
    let tokenizer = ChatTokenizer::load_dir(dir)?;
    let data = DataSection {
        train: SAMPLES.into(),
        eval: None,
        eval_split: 0.0,
        format: None,
        max_seq_len: usize::MAX,
        train_on_inputs: false,
        packing: false,
    };
    let prepared = prepare(&tokenizer, &data, 0).map_err(anyhow::Error::msg)?;
    let (mut ids, mut trained) = (Vec::new(), Vec::new());
    while ids.len() < seq {
        for e in &prepared.train {
            ids.extend_from_slice(&e.encoded.ids);
            trained.extend_from_slice(&e.encoded.trained);
        }
    }
    ids.truncate(seq);
    trained.truncate(seq);
    Ok((ids, trained))
}

fn tokens_file(seq: usize, ids: &[u32], trained: &[bool]) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("train-real-{seq}.json"));
    let json = serde_json::json!({ "ids": ids, "trained": trained });
    std::fs::write(&path, serde_json::to_vec(&json)?)?;
    Ok(path)
}

/// One length, in this (child) process.
fn measure(seq: usize) -> anyhow::Result<()> {
    tunebench::pool::one_pool_owns_the_cores();
    tunebench::alloc::keep_freed_memory();
    let model = model_dir();
    let dtype = common::dtype_from_env();
    let mut decoder = match &model {
        Some(dir) => {
            let weights = Weights::open(dir, dtype, &Device::Cpu)?;
            Decoder::load(ModelConfig::load(dir)?, &weights)?
        }
        None => {
            let config = smollm2_shape()?;
            let source = RandomWeights {
                config: config.clone(),
                device: Device::Cpu,
                dtype,
                seed: 0,
            };
            Decoder::load(config, &source)?
        }
    };
    decoder.prepare_for_training()?;
    let mut optimizer = common::lora_as_the_reference_trains(&mut decoder)?;
    let (ids, trained) = token_row(model.as_deref(), seq)?;
    tokens_file(seq, &ids, &trained)?;
    let (positions, targets): (Vec<u32>, Vec<u32>) = (0..seq - 1)
        .filter(|&p| trained[p + 1])
        .map(|p| (p as u32, ids[p + 1]))
        .unzip();
    let batches = [Batch {
        segments: None,
        ids: Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
        positions,
        targets,
    }];
    let steps = steps();
    let checkpoint = checkpointing(seq);
    let mut losses = Vec::new();
    // As the trainer does: what one step freed is reused by the next, and
    // a trim follows only a step that left more than usual.
    let mut reclaimer = tunebench::alloc::Reclaimer::default();
    let mut started = Instant::now();
    let profile = tunebench::profile::requested_by_env();
    if profile {
        tunebench::profile::enable();
    }
    for step in 0..=steps {
        if step == 1 {
            started = Instant::now(); // step 0 warms up
            tunebench::profile::reset();
        }
        let (loss, _) =
            optimizer_step(&decoder, &mut optimizer, &batches, 1e-4, 1.0, 0, checkpoint)?;
        losses.push(loss);
        reclaimer.after_step();
    }
    let seconds = started.elapsed().as_secs_f64();
    if profile {
        let report = tunebench::profile::report(0);
        eprintln!("{seq} tokens, {steps} steps: {}", report.time_table());
    }
    println!(
        "{{\"impl\": \"tunebench\", \"seq\": {seq}, \"dtype\": \"{dtype:?}\", \"checkpointing\": {checkpoint}, \"tokens_per_s\": {:.1}, \"step_s\": {:.2}, \"peak_rss_mb\": {:.0}, \"losses\": {:?}}}",
        (steps * seq) as f64 / seconds,
        seconds / steps as f64,
        peak_rss_mb(),
        losses
    );
    Ok(())
}

/// torch + PEFT on the same tokens (benches/peft_long.py).
fn reference(python: &str, seq: usize, model: Option<&Path>) -> anyhow::Result<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peft_long.py");
    let tokens = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data")
        .join(format!("train-real-{seq}.json"));
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg("--tokens")
        .arg(&tokens)
        .arg("--steps")
        .arg(steps().to_string());
    match model {
        Some(dir) => cmd.arg("--model").arg(dir),
        None => cmd.arg("--random-smollm2"),
    };
    if checkpointing(seq) {
        cmd.arg("--checkpointing");
    }
    let out = cmd.output()?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
