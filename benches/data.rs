//! Dataset benchmark: index and validate a generated JSON Lines file
//! (1 GiB by default; TUNEBENCH_BENCH_MB changes it) on one thread, and
//! report throughput and peak memory.
//!
//!     cargo bench --bench data

mod common;
use common::peak_rss_mb;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;
use tunebench::data::Store;
use tunebench::data::validate::{Options, validate};

fn main() {
    let megabytes: u64 = std::env::var("TUNEBENCH_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("generated-{megabytes}mb.jsonl"));
    if !path.exists() {
        eprintln!("generating {} ...", path.display());
        generate(&path, megabytes << 20);
    }
    let bytes = std::fs::metadata(&path).unwrap().len();
    let mb = bytes as f64 / 1e6;
    let rss_before = peak_rss_mb();

    let start = Instant::now();
    let store = Store::open(&path).unwrap();
    let index_s = start.elapsed().as_secs_f64();
    let lines = store.len();

    let start = Instant::now();
    let report = validate(&store, &Options::default()).unwrap();
    let validate_s = start.elapsed().as_secs_f64();
    let peak = peak_rss_mb();

    println!(
        "file: {mb:.0} MB, {lines} lines ({:.0} bytes per line)",
        bytes as f64 / lines as f64
    );
    println!(
        "index:    {index_s:.2} s  = {:.0} MB/s (target >= 300)",
        mb / index_s
    );
    println!(
        "validate: {validate_s:.2} s  = {:.0} MB/s (target >= 100), {} findings",
        mb / validate_s,
        report.findings.len()
    );
    println!(
        "peak RSS: {peak:.0} MB (before opening: {rss_before:.0} MB); budget 100 MB + 16 B/line = {:.0} MB",
        100.0 + 16.0 * lines as f64 / 1e6
    );
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
