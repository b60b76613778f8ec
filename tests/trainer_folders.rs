//! Runs trained elsewhere: HF Trainer output folders (Axolotl, LLaMA-Factory,
//! TRL; tests/fixtures/trainer/NOTE.md) listed by `tunebench runs`, followed
//! as they change, and their adapters offered and loaded as native ones.

mod common;

use common::{ok, root, tunebench};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tunebench::tui::panes::chat::picker;
use tunebench::tui::panes::train::follow::Follower;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The three engines' folders under `work/runs`, each checkpoint (and the
/// finished run's root) holding a real PEFT adapter for the parity model.
fn runs_folder(work: &Path) -> PathBuf {
    let fixtures = root().join("tests/fixtures");
    let runs = work.join("runs");
    let adapter = fixtures.join("parity/adapters/qwen2-peft");
    for (engine, name, adapter_dirs) in [
        ("axolotl", "axolotl-out", vec!["", "checkpoint-4"]),
        ("llamafactory", "lf-run", vec!["checkpoint-2"]),
        ("trl", "trl-run", vec!["checkpoint-3"]),
    ] {
        let dir = runs.join(name);
        copy_dir(&fixtures.join("trainer").join(engine), &dir);
        for sub in adapter_dirs {
            copy_dir(&adapter, &dir.join(sub));
        }
    }
    runs
}

fn listed(runs: &Path) -> Vec<Value> {
    let out = ok(tunebench(&[
        "runs",
        "--runs",
        runs.to_str().unwrap(),
        "--json",
    ]));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn by_name<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter().find(|r| r["run"] == name).unwrap()
}

#[test]
fn runs_lists_trainer_folders_with_status_steps_losses_and_speed() {
    let work = tempfile::tempdir().unwrap();
    let runs = runs_folder(work.path());
    let rows = listed(&runs);
    assert_eq!(rows.len(), 3, "{rows:?}");

    let axolotl = by_name(&rows, "axolotl-out");
    assert_eq!(axolotl["engine"], "hf-trainer");
    assert_eq!(
        axolotl["status"], "completed",
        "the root state's summary ends it"
    );
    assert_eq!(
        (axolotl["step"].as_u64(), axolotl["total_steps"].as_u64()),
        (Some(8), Some(8))
    );
    assert_eq!(axolotl["loss"].as_f64(), Some(1.4012));
    assert_eq!(
        (
            axolotl["best_eval"].as_f64(),
            axolotl["best_eval_step"].as_u64()
        ),
        (Some(1.6385), Some(8))
    );
    assert!(
        axolotl["model"]
            .as_str()
            .unwrap()
            .ends_with("parity/models/qwen2")
    );

    // LLaMA-Factory's trainer_log.jsonl is ahead of its last checkpoint, and
    // carries time and throughput.
    let lf = by_name(&rows, "lf-run");
    assert_eq!(lf["status"], "running", "its files just changed");
    assert_eq!(
        (lf["step"].as_u64(), lf["total_steps"].as_u64()),
        (Some(3), Some(10))
    );
    assert_eq!(lf["loss"].as_f64(), Some(2.3307));
    assert_eq!(lf["tokens_per_s"].as_f64(), Some(512.0));
    assert_eq!(lf["eta_s"].as_f64(), Some(28.0), "4 s a step, 7 to go");

    let trl = by_name(&rows, "trl-run");
    assert_eq!(
        (trl["step"].as_u64(), trl["total_steps"].as_u64()),
        (Some(3), Some(6))
    );
    assert_eq!(trl["status"], "running");

    let text = ok(tunebench(&["runs", "--runs", runs.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("axolotl-out") && text.contains("completed") && text.contains("1.6385@8"),
        "{text}"
    );

    // Pointed at one mirrored folder, that folder is the run.
    let single = listed(&runs.join("axolotl-out"));
    assert_eq!(single.len(), 1);
    assert_eq!(single[0]["status"], "completed");
}

#[test]
fn a_trainer_folder_is_followed_as_its_files_change() {
    let work = tempfile::tempdir().unwrap();
    let runs = runs_folder(work.path());
    let dir = runs.join("lf-run");
    let mut follower = Follower::trainer(&dir);
    assert!(follower.poll());
    assert_eq!(follower.metrics.last.map(|l| l.step), Some(3));
    assert!(!follower.poll(), "nothing changed");
    let line = r#"{"current_steps": 4, "total_steps": 10, "loss": 2.2001, "eval_loss": 2.25, "lr": 0.0001, "epoch": 1.2, "percentage": 40.0, "elapsed_time": "0:00:16", "remaining_time": "0:00:24", "throughput": 509.9, "total_tokens": 8192}"#;
    let mut log = std::fs::read_to_string(dir.join("trainer_log.jsonl")).unwrap();
    log.push_str(line);
    log.push('\n');
    std::fs::write(dir.join("trainer_log.jsonl"), log).unwrap();
    assert!(follower.poll());
    let metrics = &follower.metrics;
    assert_eq!(metrics.last.map(|l| l.step), Some(4));
    assert_eq!(metrics.eval.last().copied(), Some((4.0, 2.25)));
    // Grad norms come from the checkpoint's log_history.
    assert_eq!(metrics.grad_norm.len(), 2);
    assert_eq!(metrics.checkpoints, 1);
}

#[test]
fn their_adapters_are_offered_and_load() {
    let work = tempfile::tempdir().unwrap();
    let runs = runs_folder(work.path());
    let labels: Vec<String> = picker::scan(&runs).into_iter().map(|c| c.label).collect();
    for expected in [
        "axolotl-out (final)",
        "axolotl-out/checkpoint-4",
        "lf-run/checkpoint-2",
        "trl-run/checkpoint-3",
    ] {
        assert!(
            labels.iter().any(|l| l == expected),
            "{expected}: {labels:?}"
        );
    }
    let model = root().join("tests/fixtures/parity/models/qwen2");
    let data = root().join("sample-data/alpaca_small.json");
    let eval = |adapter: Option<&Path>| -> f64 {
        let mut args = vec![
            "eval".to_string(),
            "--model".into(),
            model.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--json".into(),
        ];
        if let Some(adapter) = adapter {
            args.push("--adapter".into());
            args.push(adapter.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ok(tunebench(&args));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["loss"].as_f64().unwrap()
    };
    let base = eval(None);
    let adapted = eval(Some(&runs.join("axolotl-out/checkpoint-4")));
    assert!(base.is_finite() && adapted.is_finite());
    assert_ne!(base, adapted, "the checkpoint's adapter changes the model");
}
