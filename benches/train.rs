//! LoRA training benchmark on the shape of shared/reference/peft_train_bench.py:
//! Qwen2.5-0.5B layers x4, full 151,936 vocabulary (tied), sequence 256,
//! batch 1, rank 16 on all seven projections, f32, random weights and tokens.
//!
//!     cargo bench --bench train
//!     TUNEBENCH_REF_PYTHON=~/.venvs/ref/bin/python cargo bench --bench train   # also the reference

mod common;
use candle_core::{Device, Tensor};
use common::peak_rss_mb;
use std::time::Instant;
use tunebench::model::config::ModelConfig;
use tunebench::model::decoder::Decoder;
use tunebench::model::weights::RandomWeights;
use tunebench::train::batches::Batch;
use tunebench::train::trainer::optimizer_step;

const SEQ: usize = 256;
const STEPS: usize = 5;
const VOCAB: usize = 151_936;

fn main() -> anyhow::Result<()> {
    tunebench::alloc::keep_freed_memory();
    let config = ModelConfig::from_json(&serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 4, "num_attention_heads": 14, "num_key_value_heads": 2,
        "vocab_size": VOCAB, "tie_word_embeddings": true, "max_position_embeddings": 4096
    }))
    .map_err(anyhow::Error::msg)?;
    let source = RandomWeights {
        config: config.clone(),
        device: Device::Cpu,
        dtype: candle_core::DType::F32,
        seed: 0,
    };
    let mut decoder = Decoder::load(config, &source)?;
    let mut optimizer = common::lora_as_the_reference_trains(&mut decoder)?;
    let ids: Vec<u32> = (0..SEQ as u32)
        .map(|i| (i * 7919 + 13) % VOCAB as u32)
        .collect();
    let batch = Batch {
        segments: None,
        ids: Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
        positions: (0..SEQ as u32 - 1).collect(),
        targets: ids[1..].to_vec(),
    };
    let batches = [batch];
    optimizer_step(&decoder, &mut optimizer, &batches, 1e-4, 1.0, 0, false)?; // warm-up
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
    println!(
        "{{\"impl\": \"tunebench\", \"tokens_per_s\": {:.1}, \"step_s\": {:.2}, \"peak_rss_mb\": {:.0}}}",
        (STEPS * SEQ) as f64 / seconds,
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
