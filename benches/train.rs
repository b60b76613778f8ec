//! LoRA training benchmark on the shape of shared/reference/peft_train_bench.py:
//! Qwen2.5-0.5B layers x4, full 151,936 vocabulary (tied), sequence 256,
//! batch 1, rank 16 on all seven projections, f32, random weights and tokens.
//!
//!     cargo bench --bench train
//!     TUNEBENCH_REF_PYTHON=~/.venvs/ref/bin/python cargo bench --bench train   # also the reference
//!
//! Other shapes and precisions for tunebench's side: TUNEBENCH_LAYERS (24 is the whole
//! Qwen2.5-0.5B), TUNEBENCH_SEQ, TUNEBENCH_DTYPE=bf16, TUNEBENCH_QUANTIZE=q8_0|q4_k|...
//! (the base kept quantized, as `model.quantize`). TUNEBENCH_PROFILE=1 prints the time
//! per op kind over the timed steps on stderr.

mod common;
use candle_core::{Device, Tensor};
use common::peak_rss_mb;
use std::time::Instant;
use tunebench::model::base_weight::Quantize;
use tunebench::model::config::ModelConfig;
use tunebench::model::decoder::Decoder;
use tunebench::model::weights::{Quantizing, RandomWeights};
use tunebench::train::batches::Batch;
use tunebench::train::trainer::optimizer_step;

const STEPS: usize = 5;
const VOCAB: usize = 151_936;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    tunebench::pool::one_pool_owns_the_cores();
    tunebench::alloc::keep_freed_memory();
    let (seq, layers) = (env_or("TUNEBENCH_SEQ", 256), env_or("TUNEBENCH_LAYERS", 4));
    let config = ModelConfig::from_json(&serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": layers, "num_attention_heads": 14, "num_key_value_heads": 2,
        "vocab_size": VOCAB, "tie_word_embeddings": true, "max_position_embeddings": 32768
    }))
    .map_err(anyhow::Error::msg)?;
    let dtype = common::dtype_from_env();
    let source = RandomWeights {
        config: config.clone(),
        device: Device::Cpu,
        dtype,
        seed: 0,
    };
    let quantize: Option<Quantize> = match std::env::var("TUNEBENCH_QUANTIZE") {
        Ok(q) => Some(q.parse().map_err(anyhow::Error::msg)?),
        Err(_) => None,
    };
    let mut decoder = match quantize {
        Some(quantize) => Decoder::load(
            config,
            &Quantizing {
                inner: &source,
                quantize,
            },
        )?,
        None => Decoder::load(config, &source)?,
    };
    decoder.prepare_for_training()?;
    let mut optimizer = common::lora_as_the_reference_trains(&mut decoder)?;
    let ids: Vec<u32> = (0..seq as u32)
        .map(|i| (i * 7919 + 13) % VOCAB as u32)
        .collect();
    let batch = Batch {
        segments: None,
        ids: Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
        positions: (0..seq as u32 - 1).collect(),
        targets: ids[1..].to_vec(),
    };
    let batches = [batch];
    optimizer_step(&decoder, &mut optimizer, &batches, 1e-4, 1.0, 0, false)?; // warm-up
    let profile = tunebench::profile::requested_by_env();
    if profile {
        tunebench::profile::enable();
        tunebench::profile::reset();
    }
    let started = Instant::now();
    for step in 0..STEPS {
        optimizer_step(
            &decoder,
            &mut optimizer,
            &batches,
            1e-4,
            1.0,
            step as u64,
            false,
        )?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if profile {
        let report = tunebench::profile::report(0);
        eprintln!("{seq} tokens, {STEPS} steps: {}", report.time_table());
    }
    println!(
        "{{\"impl\": \"tunebench\", \"layers\": {layers}, \"seq\": {seq}, \"dtype\": \"{dtype:?}\", \"quantize\": \"{}\", \"tokens_per_s\": {:.1}, \"step_s\": {:.2}, \"peak_rss_mb\": {:.0}}}",
        quantize.map_or("none".to_string(), |q| format!("{q:?}")),
        (STEPS * seq) as f64 / seconds,
        seconds / STEPS as f64,
        peak_rss_mb()
    );
    if let Ok(python) = std::env::var("TUNEBENCH_REF_PYTHON") {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/reference/peft_train_bench.py"
        );
        let out = std::process::Command::new(python).arg(script).output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}
