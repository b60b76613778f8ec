//! Hub download throughput against the loopback stand-in the tests use, and
//! the time from a cached repo id to a loaded model (what `ui --model REPO`
//! waits for before Chat answers).
//!
//! `cargo bench --bench download` serves a 1 GiB weights file; with
//! `TUNEBENCH_MODEL_DIR=/path/to/hf-folder` it serves that model instead and
//! also times its load from the cache. `cargo bench --bench download -- serve`
//! only serves (the endpoint is printed) for trying the CLI and the
//! workbench by hand: `HF_ENDPOINT=... tunebench download bench/model`.

#[path = "../tests/common/hub.rs"]
mod hub_standin;

use hub_standin::HubStandIn;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const REPO: &str = "bench/model";
const RUNS: usize = 3;

fn main() {
    let serve_only = std::env::args().any(|a| a == "serve");
    let model_dir = std::env::var_os("TUNEBENCH_MODEL_DIR").map(std::path::PathBuf::from);
    let files = match &model_dir {
        Some(dir) => HubStandIn::files_of(dir),
        None => vec![
            ("config.json".into(), b"{}".to_vec()),
            ("model.safetensors".into(), synthetic(1 << 30)),
        ],
    };
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let hub = HubStandIn::start();
    hub.add_repo(REPO, files, false);
    if serve_only {
        println!("HF_ENDPOINT={} serves {REPO} ({bytes} bytes)", hub.endpoint);
        loop {
            std::thread::park();
        }
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    // SAFETY: set before any other thread reads the environment.
    unsafe {
        std::env::set_var("HF_ENDPOINT", &hub.endpoint);
        std::env::remove_var("HF_HUB_OFFLINE");
    }
    let mut rates = Vec::new();
    for run in 0..RUNS {
        let cache = scratch.path().join(format!("cache-{run}"));
        unsafe { std::env::set_var("HF_HUB_CACHE", &cache) };
        let start = Instant::now();
        let never = AtomicBool::new(false);
        tunebench::model::hub::download_model(REPO, &never, &mut |_| {}).expect("download");
        let seconds = start.elapsed().as_secs_f64();
        rates.push(bytes as f64 / seconds / 1e9);
        println!(
            "download {:.2} GB in {seconds:.2} s: {:.2} GB/s (transfer, cache writes and the sha256 check)",
            bytes as f64 / 1e9,
            rates[run]
        );
        if run + 1 < RUNS {
            let _ = std::fs::remove_dir_all(&cache);
        }
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median {:.2} GB/s (range {:.2}-{:.2}) over {RUNS} runs",
        rates[RUNS / 2],
        rates[0],
        rates[RUNS - 1]
    );
    if model_dir.is_some() {
        let options = tunebench::model::LoadOptions::default();
        for _ in 0..RUNS {
            let start = Instant::now();
            let model = tunebench::model::Model::load(REPO, &options).expect("load from the cache");
            println!(
                "cached {REPO} to a loaded model: {:.2} s ({} layers)",
                start.elapsed().as_secs_f64(),
                model.decoder.config.num_layers
            );
        }
    }
}

/// Bytes that do not repeat, made fast.
fn synthetic(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
