//! `tunebench export-run`: a training config handed to another engine.

use crate::train::config::TrainConfig;
use crate::train::handoff::{Engine, Handoff, export_run};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(
    config: &Path,
    engine: Engine,
    out: PathBuf,
    gpus: usize,
    nodes: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = TrainConfig::load(Some(config), &[]).map_err(anyhow::Error::msg)?;
    let handoff = Handoff {
        engine,
        out,
        gpus: gpus.max(1),
        nodes: nodes.max(1),
    };
    let exported = export_run(&config, &handoff).map_err(anyhow::Error::msg)?;
    if json {
        super::print_json(&exported)?;
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "wrote {} ({} train, {} eval samples): {}",
        handoff.out.display(),
        exported.train_samples,
        exported.eval_samples,
        exported.files.join(", ")
    );
    for note in &exported.not_carried {
        eprintln!("not carried: {note}");
    }
    eprintln!(
        "launch: cd {} && {}",
        handoff.out.display(),
        exported.launch
    );
    Ok(ExitCode::SUCCESS)
}
