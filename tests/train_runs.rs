//! Training runs as a user runs them: signals, failures, resuming, the run
//! folder's lock, and what a run prints.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use tunebench::model::lora::LoraSpec;
use tunebench::model::{LoadOptions, Model, adapter};
use tunebench::train::run_dir::RunLog;
use tunebench::train::trainer::Trainer;

use common::runs::{events, spawn_long_run, tiny_config, wait_for_event};
use common::{tiny_model as tiny, tunebench};

#[test]
fn sigint_saves_a_checkpoint_and_exits_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let (mut child, _, run) = spawn_long_run(work.path());
    let metrics = run.join("metrics.jsonl");
    wait_for_event(&run, "step");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let events: Vec<Value> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let end = events.last().unwrap();
    assert_eq!(
        (end["event"].as_str(), end["status"].as_str()),
        (Some("end"), Some("stopped"))
    );
    assert!(events.iter().any(|e| e["event"] == "checkpoint"));
    assert!(run.join("adapter/adapter_model.safetensors").exists());
    // And it resumes.
    let resumed = tunebench(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--set",
        "training.max_steps=3",
    ]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
}

#[test]
fn a_non_finite_loss_stops_the_run_with_a_clear_message() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    // An adapter of huge (finite, so loadable) weights overflows the very
    // first forward pass, and the loss becomes NaN.
    let poisoned = work.path().join("poisoned");
    {
        let mut m = Model::load(model.to_str().unwrap(), &LoadOptions::default()).unwrap();
        let spec = LoraSpec::all_linear(2, 4.0);
        adapter::attach_new(&mut m.decoder, &spec, 1).unwrap();
        m.decoder.for_each_projection_mut(|_, _, linear| {
            let lora = linear.lora.as_ref().unwrap();
            lora.b
                .set(&(lora.b.as_tensor().ones_like().unwrap() * 3e38).unwrap())
                .unwrap();
        });
        adapter::save(&m.decoder, &spec, "tiny", &poisoned).unwrap();
    }
    tiny_config(work.path(), &model, 5);
    let run = work.path().join("run");
    let config = work.path().join("config.toml");
    let init = format!("lora.init_from={:?}", poisoned.to_str().unwrap());
    let out = tunebench(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--set",
        &init,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loss became NaN at step 1"), "{stderr}");
    let end = events(&run).pop().unwrap();
    assert_eq!(end["status"], "failed");
    assert!(
        end["message"]
            .as_str()
            .unwrap()
            .contains("last good checkpoint is none")
    );
    assert!(
        !run.join("adapter").exists(),
        "no adapter is published from a failed run"
    );
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let work = tempfile::tempdir().unwrap();
    let (mut child, _, run) = spawn_long_run(work.path());
    wait_for_event(&run, "checkpoint");
    child.kill().unwrap(); // SIGKILL: no chance to save anything
    child.wait().unwrap();
    let saved = tunebench::train::run_dir::checkpoints(&run)
        .last()
        .unwrap()
        .0;
    let last_step = events(&run).iter().filter(|e| e["event"] == "step").count();
    assert!(
        last_step - saved < 3 + 1,
        "at most the steps since the last checkpoint are lost"
    );
    let target = (saved + 2).to_string();
    let resumed = tunebench(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--set",
        &format!("training.max_steps={target}"),
    ]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let all = events(&run);
    let start = all.iter().rev().find(|e| e["event"] == "start").unwrap();
    assert_eq!(start["resumed_from"].as_u64(), Some(saved as u64));
    assert_eq!(all.last().unwrap()["status"], "completed");
    assert!(run.join("adapter/adapter_model.safetensors").exists());
}

#[test]
fn a_second_writer_is_refused_with_the_pid_that_holds_the_run() {
    let work = tempfile::tempdir().unwrap();
    let (mut child, config, run) = spawn_long_run(work.path());
    let (config, run_arg) = (config.to_str().unwrap(), run.to_str().unwrap());
    wait_for_event(&run, "step");
    let holder = format!("in use by training process {}", child.id());
    let before = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for second in [
        vec!["train", "--resume", run_arg],
        vec!["train", "--config", config, "--run-dir", run_arg],
    ] {
        let out = common::tunebench(&second);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&holder), "{second:?}: {stderr}");
    }
    // The refused process wrote nothing into the run.
    let after = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(after.starts_with(&before) && !after[before.len()..].contains("\"start\""));
    // The lock names the training process, which a viewer can stop.
    let process = tunebench::train::run_lock::holder(&run).unwrap().unwrap();
    assert_eq!(process.pid, child.id());
    process.signal(libc::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(events(&run).last().unwrap()["status"], "stopped");
    assert_eq!(tunebench::train::run_lock::holder(&run), Ok(None));
}

#[test]
fn a_run_that_cannot_start_leaves_no_folder() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    tiny_config(work.path(), &model, 2);
    let config = work.path().join("config.toml");
    let runs = work.path().join("runs");
    let missing_model = format!("model.name={:?}", work.path().join("no-model").display());
    let missing_data = format!(
        "data.train={:?}",
        work.path().join("no-data.jsonl").display()
    );
    for (set, why) in [
        (&missing_model, "no-model"),
        (&missing_data, "no-data.jsonl"),
    ] {
        let out = common::tunebench(&[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--runs",
            runs.to_str().unwrap(),
            "--set",
            set,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert!(!runs.exists(), "a failed start made {}", runs.display());
    }
}

#[test]
fn resume_passes_over_a_damaged_last_checkpoint() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    let config = tiny_config(work.path(), &model, 6);
    let run = work.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), config.to_toml()).unwrap();
    let mut log = RunLog::open(&run, false).unwrap();
    let mut trainer = Trainer::new(config.clone(), None).unwrap();
    trainer
        .run(&mut log, &AtomicBool::new(false), |_| None)
        .unwrap();
    drop(trainer);
    let steps = |run: &Path| -> Vec<usize> {
        tunebench::train::run_dir::checkpoints(run)
            .iter()
            .map(|c| c.0)
            .collect()
    };
    assert_eq!(steps(&run), [3, 6]);
    // A write cut short: the adapter file of the last checkpoint is truncated.
    let damaged = run.join("checkpoints/step-6/adapter_model.safetensors");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&damaged)
        .unwrap()
        .set_len(4)
        .unwrap();
    let out = common::tunebench(&["train", "--resume", run.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped checkpoints/step-6: ")
            && stderr.contains("checkpoints/step-6/adapter_model.safetensors: "),
        "{stderr}"
    );
    let start = events(&run)
        .into_iter()
        .rev()
        .find(|e| e["event"] == "start")
        .unwrap();
    assert_eq!(start["resumed_from"], 3);
    assert_eq!(steps(&run), [3, 6], "step 6 is written again, whole");
    // Every checkpoint damaged: refused, naming each file, rather than
    // silently starting over.
    for step in [3, 6] {
        let file = run.join(format!("checkpoints/step-{step}/trainer_state.json"));
        std::fs::write(&file, "{\"step\": ").unwrap();
    }
    let err = Trainer::new(config, Some(&run)).err().unwrap();
    for step in [3, 6] {
        assert!(
            err.contains(&format!("checkpoints/step-{step}/trainer_state.json: ")),
            "{err}"
        );
    }
    assert!(err.contains("no intact checkpoint"), "{err}");
}

#[test]
fn a_redirected_run_prints_plain_progress_lines_and_starts_its_eval_curve_at_the_base() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    tiny_config(work.path(), &model, 4);
    let run = work.path().join("run");
    // stderr is a pipe here, as under nohup or a scheduler.
    let out = common::ok(common::tunebench(&[
        "train",
        "--config",
        work.path().join("config.toml").to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("step ")).collect();
    for step in 1..=4 {
        let line = progress
            .iter()
            .find(|l| l.starts_with(&format!("step {step}/4 ")))
            .unwrap_or_else(|| panic!("no line for step {step}:\n{stderr}"));
        for part in ["loss ", "lr ", "tok/s", "eta "] {
            assert!(line.contains(part), "{line}");
        }
    }
    assert!(
        !stderr.contains('\r'),
        "no terminal redraws in a redirected log"
    );
    assert!(
        progress
            .iter()
            .any(|l| l.starts_with("step 4/4 ") && l.contains(" eval ")),
        "the eval loss joins the lines once there is one:\n{stderr}"
    );
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(
        log.contains("step 4/4 "),
        "train.log keeps the same lines:\n{log}"
    );

    let base = events(&run)
        .into_iter()
        .find(|e| e["event"] == "eval")
        .expect("an eval event");
    assert_eq!(base["step"], 0, "the first eval is the base, before step 1");
    assert_eq!(base["base"], true);
    assert!(base["eval_loss"].as_f64().unwrap().is_finite());
    assert!(log.contains("step 0: eval loss"), "{log}");

    // The config key turns it off.
    let off = work.path().join("off");
    common::ok(common::tunebench(&[
        "train",
        "--config",
        work.path().join("config.toml").to_str().unwrap(),
        "--run-dir",
        off.to_str().unwrap(),
        "--set",
        "training.eval_at_start=false",
        "--set",
        "training.max_steps=1",
    ]));
    assert!(
        events(&off)
            .iter()
            .all(|e| e["event"] != "eval" || e["step"] != 0)
    );
}
