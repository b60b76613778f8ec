//! Shared by the benchmarks.
#![allow(dead_code)] // each bench uses its own part

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The base's dtype a bench asks for: `TUNEBENCH_DTYPE=bf16`, else f32.
pub fn dtype_from_env() -> candle_core::DType {
    match std::env::var("TUNEBENCH_DTYPE").as_deref() {
        Ok("bf16") => candle_core::DType::BF16,
        _ => candle_core::DType::F32,
    }
}

/// The number in the environment variable `name`, else `default`.
pub fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of this process so far (Linux), in MB.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A generated chat JSON Lines file of about `megabytes` MB under
/// target/bench-data, written on first use.
pub fn generated_dataset(megabytes: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("generated-{megabytes}mb.jsonl"));
    if !path.exists() {
        eprintln!("generating {} ...", path.display());
        generate(&path, megabytes << 20);
    }
    path
}

/// OpenAI chat records of varied lengths, with multi-byte text and escapes.
fn generate(path: &Path, target: u64) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    let words = [
        "the", "model", "learns", "from", "examples", "quickly", "when", "data", "is", "clean",
        "and", "varied", "enough", "für", "数据",
    ];
    let mut written = 0u64;
    let mut i = 0u64;
    let mut state = 0x1234_5678u64;
    let mut text = |n: usize| {
        let mut s = String::new();
        for _ in 0..n {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push_str(words[(state >> 33) as usize % words.len()]);
            s.push(' ');
        }
        s.push_str("\\n\\\"done\\\"");
        s
    };
    while written < target {
        let n = 20 + (i % 7) as usize * 25;
        let line = format!(
            "{{\"messages\": [{{\"role\": \"system\", \"content\": \"You are helpful.\"}}, {{\"role\": \"user\", \"content\": \"{}\"}}, {{\"role\": \"assistant\", \"content\": \"{}\"}}]}}\n",
            text(10),
            text(n)
        );
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        i += 1;
    }
    out.flush().unwrap();
}

/// Rank 16 on all seven projections (alpha 32, no dropout) attached to
/// `decoder`, and AdamW over it: what the reference scripts train.
pub fn lora_as_the_reference_trains(
    decoder: &mut tunebench::model::decoder::Decoder,
) -> anyhow::Result<tunebench::train::optim::AdamW> {
    use tunebench::train::optim::{AdamW, AdamWParams};
    let spec = tunebench::model::lora::LoraSpec {
        dropout: 0.0,
        ..tunebench::model::lora::LoraSpec::all_linear(16, 32.0)
    };
    tunebench::model::adapter::attach_new(decoder, &spec, 0)?;
    let hyper = AdamWParams {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let params = tunebench::train::trainer::lora_params(decoder);
    Ok(AdamW::new(params, hyper)?)
}
