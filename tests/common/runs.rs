//! Training runs as the tests drive them: a tiny config, `tunebench train`
//! as its own process, and the run folder's events.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tunebench::train::config::TrainConfig;

use super::{root, tiny_model as tiny};

/// A config of `steps` steps on the tiny model and the Alpaca sample, written
/// to `dir/config.toml`.
pub fn tiny_config(dir: &Path, model: &Path, steps: usize) -> TrainConfig {
    let text = format!(
        "[model]\nname = {:?}\n[data]\ntrain = {:?}\nmax_seq_len = 192\n[training]\nmax_steps = {steps}\nlr = 1e-3\ngrad_accum = 2\neval_every = 3\ncheckpoint_every = 3\n",
        model.to_str().unwrap(),
        root()
            .join("sample-data/alpaca_small.json")
            .to_str()
            .unwrap()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    TrainConfig::load(Some(&path), &[]).unwrap()
}

pub fn spawn_train(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tunebench"))
        .arg("train")
        .args(args)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A 10,000-step run of the tiny model as its own process: (the process,
/// its config file, its run folder).
pub fn spawn_long_run(work: &Path) -> (std::process::Child, PathBuf, PathBuf) {
    let model = tiny(work);
    tiny_config(work, &model, 10_000);
    let (config, run) = (work.join("config.toml"), work.join("run"));
    let child = spawn_train(&[
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    (child, config, run)
}

pub fn events(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (up to three minutes) until the run has logged an event of `kind`.
pub fn wait_for_event(run: &Path, kind: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !events(run).iter().any(|e| e["event"] == kind) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} event within three minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
