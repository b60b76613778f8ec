//! Dataset benchmark: index and validate a generated JSON Lines file
//! (1 GiB by default; TUNEBENCH_BENCH_MB changes it) on one thread, and
//! report throughput and peak memory.
//!
//!     cargo bench --bench data

mod common;
use common::peak_rss_mb;
use std::time::Instant;
use tunebench::data::Store;
use tunebench::data::validate::{Options, validate};

fn main() {
    let megabytes: u64 = std::env::var("TUNEBENCH_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let path = common::generated_dataset(megabytes);
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
