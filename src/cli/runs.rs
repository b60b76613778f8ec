//! `tunebench runs`: the runs in a folder, native and trained elsewhere (HF
//! Trainer folders), as the Train tab lists them.

use crate::tui::panes::train::runs::{Run, Runs};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

pub fn run(dir: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("{}: not a folder of runs", dir.display());
    }
    let mut runs = Runs::new(dir.to_path_buf());
    runs.rescan(&HashMap::new());
    let rows: Vec<Value> = runs.list.iter().map(row).collect();
    if as_json {
        super::print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("no runs in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36} {:<10} {:<12} {:>9} {:>9} {:>12} {:>8}  model",
        "run", "engine", "status", "steps", "loss", "best eval", "tok/s"
    );
    for r in &rows {
        let num = |key: &str, digits: usize| {
            r[key]
                .as_f64()
                .map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
        };
        let best = match (r["best_eval"].as_f64(), r["best_eval_step"].as_u64()) {
            (Some(loss), Some(step)) => format!("{loss:.4}@{step}"),
            _ => "-".to_string(),
        };
        println!(
            "{:<36} {:<10} {:<12} {:>9} {:>9} {:>12} {:>8}  {}",
            r["run"].as_str().unwrap_or_default(),
            r["engine"].as_str().unwrap_or_default(),
            r["status"].as_str().unwrap_or_default(),
            r["steps"].as_str().unwrap_or_default(),
            num("loss", 4),
            best,
            num("tokens_per_s", 1),
            r["model"].as_str().unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn row(run: &Run) -> Value {
    let metrics = run.metrics();
    let best = metrics.best_eval();
    json!({
        "run": run.name,
        "dir": run.dir.display().to_string(),
        "engine": if run.follower.is_trainer() { "hf-trainer" } else { "tunebench" },
        "status": run.status.label(),
        "steps": run.steps_label(),
        "step": metrics.last.map(|l| l.step),
        "total_steps": metrics.total_steps(),
        "loss": metrics.last.map(|l| l.loss).filter(|l| l.is_finite()),
        "best_eval": best.map(|(_, loss)| loss),
        "best_eval_step": best.map(|(step, _)| step),
        "tokens_per_s": metrics.median_tok_s(),
        "eta_s": metrics.eta_s(),
        "model": metrics.start.as_ref().map(|s| s.model.clone()).unwrap_or_default(),
    })
}
