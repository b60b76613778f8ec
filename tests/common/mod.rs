//! Helpers the integration tests share; each test file uses some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (sample-data/ and tests/fixtures/ live there).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the built `tunebench` binary.
pub fn tunebench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tunebench"))
        .args(args)
        .output()
        .expect("run tunebench")
}

/// `output`, after checking that its command succeeded.
pub fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The tiny model (seed 0) written into `dir/tiny` through the library.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let out = dir.join("tiny");
    tunebench::model::tiny::init_tiny(&out, 0, &Default::default()).unwrap();
    out
}

/// The base model's logits (no adapter) for one sequence of `ids`.
pub fn base_logits(model: &tunebench::model::Model, ids: &[u32]) -> candle_core::Tensor {
    let input = candle_core::Tensor::new(ids, &candle_core::Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = model
        .decoder
        .hidden(&input, None, None, tunebench::model::decoder::Mode::BASE)
        .unwrap();
    model.decoder.logits(&hidden, false).unwrap()
}

pub mod hub;
pub mod runs;
pub mod tui;
