//! `tunebench train`: runs a LoRA training into a run directory.

use super::progress::{Ticker, duration, is_milestone};
use crate::train::config::TrainConfig;
use crate::train::run_dir::{RunLog, run_name};
use crate::train::run_lock::RunLock;
use crate::train::trainer::{Outcome, Trainer, stop_signal};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The TOML configuration ([model], [lora], [data], [training]).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a setting: --set training.lr=1e-4 (repeatable).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Where the run goes (default: <runs>/<model>-<dataset>-<UTC time>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Continue the run in DIR from its last checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stream the events as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Check the config and data, print token statistics and the memory and
    /// time estimates, and exit without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a per-op memory profile of the first step (also TUNEBENCH_PROFILE=1).
    #[arg(long)]
    pub profile: bool,
}

pub fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    if args.profile || crate::profile::requested_by_env() {
        crate::profile::enable();
    }
    if args.dry_run {
        let path = match (&args.resume, &args.config) {
            (Some(dir), _) => dir.join("config.toml"),
            (None, Some(path)) => path.clone(),
            (None, None) => bail!("train needs --config FILE (or --resume DIR)"),
        };
        return match TrainConfig::load(Some(&path), &args.set) {
            Ok(config) => super::dry_run::dry_run(&config, args.json),
            Err(message) => {
                eprintln!("error: {message}");
                Ok(ExitCode::from(super::EXIT_INPUT_ERRORS))
            }
        };
    }
    let (config, dir, lock) = match &args.resume {
        Some(dir) => {
            if !dir.join("config.toml").exists() {
                bail!("{}: no run to resume (no config.toml)", dir.display());
            }
            // Before anything is read: another process may be training it.
            let lock = RunLock::acquire(dir)?;
            let config = TrainConfig::load(Some(&dir.join("config.toml")), &args.set)
                .map_err(anyhow::Error::msg)?;
            (config, dir.clone(), Some(lock))
        }
        None => {
            let Some(path) = &args.config else {
                bail!("train needs --config FILE (or --resume DIR)")
            };
            let config = TrainConfig::load(Some(path), &args.set).map_err(anyhow::Error::msg)?;
            let dir = args.run_dir.clone().unwrap_or_else(|| {
                args.runs
                    .join(run_name(&config.model.name, Path::new(&config.data.train)))
            });
            // A launcher (the workbench) makes the folder for its console
            // log. Locked first, so a run still training there is named.
            let lock = dir.is_dir().then(|| RunLock::acquire(&dir)).transpose()?;
            refuse_existing_run(&dir)?;
            (config, dir, lock)
        }
    };
    // The model and data are checked before a new run's folder is made, so
    // a run that cannot start leaves nothing behind.
    let trainer = Trainer::new(config, args.resume.as_deref());
    let mut trainer = match trainer {
        Ok(t) => t,
        Err(message) => {
            if lock.is_some() {
                // The folder existed: it records why the run did not start.
                let mut log = RunLog::open(&dir, args.json)?;
                log.event(&json!({"event": "end", "status": "failed", "message": message}))?;
                log.line(&format!("failed: {message}"))?;
            }
            eprintln!("error: {message}");
            return Ok(ExitCode::from(super::EXIT_INPUT_ERRORS));
        }
    };
    let _lock = match lock {
        Some(lock) => lock,
        None => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let lock = RunLock::acquire(&dir)?;
            // Another run may have started here while this one loaded.
            refuse_existing_run(&dir)?;
            lock
        }
    };
    let mut log =
        RunLog::open(&dir, args.json).with_context(|| format!("opening {}", dir.display()))?;
    // A resumed run keeps its config unless --set changed it.
    if args.resume.is_none() || !args.set.is_empty() {
        std::fs::write(dir.join("config.toml"), trainer.config.to_toml())
            .context("writing config.toml")?;
    }
    eprintln!("run directory: {}", dir.display());
    for skipped in &trainer.skipped_checkpoints {
        eprintln!("{skipped}");
        log.line(skipped)?;
    }
    let report = &trainer.data.report;
    for (file, line, why) in report.skipped.iter().take(20) {
        eprintln!("{file}:{line}: skipped: {why}");
    }
    if report.truncated > 0 {
        eprintln!(
            "{} sample(s) longer than max_seq_len {} are cut",
            report.truncated, trainer.config.data.max_seq_len
        );
    }
    let trainable: usize = trainer
        .model
        .decoder
        .projections()
        .filter_map(|(_, _, l)| l.lora.as_ref())
        .map(|l| l.a.elem_count() + l.b.elem_count())
        .sum();
    let start = json!({
        "event": "start",
        "run": dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        "model": trainer.config.model.name,
        "dataset": trainer.config.data.train,
        "train_samples": report.train_samples,
        "eval_samples": report.eval_samples,
        "truncated": report.truncated,
        "skipped": report.skipped.len(),
        "total_steps": trainer.total_steps,
        "trainable_parameters": trainable,
        "resumed_from": args.resume.as_ref().map(|_| trainer.state.step),
        "skipped_checkpoints": trainer.skipped_checkpoints,
        // Lets a viewer (the workbench) stop a run started from a shell.
        "pid": std::process::id(),
    });
    log.event(&start)?;
    log.line(&format!("start: {start}"))?;
    let stop = stop_signal();
    // With --json, stdout carries the events and stderr stays quiet.
    let mut ticker = (!args.json).then(Ticker::stderr);
    let started = std::time::Instant::now();
    let first_step = trainer.state.step;
    let mut last_eval: Option<f64> = None;
    let outcome = trainer.run(&mut log, &stop, |event| {
        if event["event"] == "profile" {
            let table = event["table"].as_str().unwrap_or_default().to_string();
            eprintln!("{table}");
            return Some(table);
        }
        let ticker = ticker.as_mut()?;
        match event["event"].as_str() {
            Some("eval") => {
                last_eval = event["eval_loss"].as_f64();
                let step = event["step"].as_u64().unwrap_or(0);
                let line = format!(
                    "step {step}: eval loss {:.4}",
                    last_eval.unwrap_or(f64::NAN)
                );
                ticker.update(&line, true);
                None
            }
            Some("step") => {
                let line = progress_line(
                    event,
                    first_step,
                    started.elapsed().as_secs_f64(),
                    last_eval,
                );
                let (step, total) = (event["step"].as_u64(), event["total_steps"].as_u64());
                let milestone =
                    is_milestone(step.unwrap_or(0) as usize, total.unwrap_or(0) as usize);
                ticker.update(&line, milestone)
            }
            _ => None,
        }
    });
    if let Some(ticker) = &mut ticker {
        ticker.finish();
    }
    let (status, message, code) = match outcome {
        Ok(Outcome::Completed) => ("completed", None, ExitCode::SUCCESS),
        Ok(Outcome::Stopped) => (
            "stopped",
            Some("stopped by a signal; resume with --resume".to_string()),
            ExitCode::SUCCESS,
        ),
        Ok(Outcome::Failed(m)) => ("failed", Some(m), ExitCode::from(super::EXIT_INPUT_ERRORS)),
        Err(m) => ("failed", Some(m), ExitCode::from(super::EXIT_INPUT_ERRORS)),
    };
    if status != "failed" {
        match trainer.finish(&dir) {
            Ok(from) => eprintln!(
                "adapter: {} (from {})",
                dir.join("adapter").display(),
                from.display()
            ),
            Err(e) => eprintln!("no adapter published: {e}"),
        }
    }
    let peak_rss = crate::alloc::rss().map(|r| r.peak);
    let mut end = json!({"event": "end", "status": status, "peak_rss": peak_rss});
    if let Some(m) = &message {
        end["message"] = Value::String(m.clone());
        eprintln!("{status}: {m}");
    }
    log.event(&end)?;
    log.line(&format!("end: {status}"))?;
    Ok(code)
}

fn refuse_existing_run(dir: &Path) -> anyhow::Result<()> {
    if dir.join("metrics.jsonl").exists() {
        bail!(
            "{} already holds a run; continue it with --resume {}",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// `step 12/300  loss 2.3456  eval 2.1000  lr 1.20e-4  1234 tok/s  eta 3m20s`.
fn progress_line(event: &Value, first_step: usize, elapsed: f64, eval: Option<f64>) -> String {
    let step = event["step"].as_u64().unwrap_or(0) as usize;
    let total = event["total_steps"].as_u64().unwrap_or(0) as usize;
    let per_step = elapsed / (step - first_step).max(1) as f64;
    let eval = eval.map_or(String::new(), |e| format!("  eval {e:.4}"));
    format!(
        "step {step}/{total}  loss {:.4}{eval}  lr {:.2e}  {:.0} tok/s  eta {}",
        event["loss"].as_f64().unwrap_or(f64::NAN),
        event["lr"].as_f64().unwrap_or(0.0),
        event["tokens_per_s"].as_f64().unwrap_or(0.0),
        duration(per_step * total.saturating_sub(step) as f64)
    )
}
