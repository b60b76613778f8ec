//! The pane's update logic (keys, mouse, messages, tick) and snapshots of
//! it drawn with fixed data.

use super::*;
use crate::model::config::ModelConfig;
use crate::train::run_lock::{LOCK_FILE, RunLock};
use crate::tui::action::Notice as NoticeT;
use crossterm::event::{KeyEventKind, KeyEventState, KeyModifiers};
use estimate::DataSize;
use std::io::Write;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent {
        code,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    }
}

fn press(pane: &mut TrainPane, codes: &[KeyCode]) -> Vec<Effect> {
    codes.iter().flat_map(|&c| pane.key(key(c))).collect()
}

fn type_text(pane: &mut TrainPane, text: &str) {
    for c in text.chars() {
        pane.key(key(KeyCode::Char(c)));
    }
}

fn notices(effects: &[Effect]) -> Vec<NoticeT> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

fn write_run(runs: &Path, name: &str, lines: &[String]) -> PathBuf {
    let dir = runs.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("metrics.jsonl")).unwrap();
    for line in lines {
        writeln!(f, "{line}").unwrap();
    }
    dir
}

fn start_line(pid: u32, total: usize) -> String {
    format!(
        "{{\"event\":\"start\",\"run\":\"r\",\"model\":\"models/tiny\",\"dataset\":\"sample-data/fastapi_projects.jsonl\",\"train_samples\":48,\"eval_samples\":6,\"total_steps\":{total},\"pid\":{pid}}}"
    )
}

fn step_lines(from: usize, to: usize, total: usize) -> Vec<String> {
    (from..=to)
        .flat_map(|s| {
            let x = s as f64;
            let loss = 8.0 * (-x / 40.0).exp() + 2.0 + 0.3 * (x * 1.7).sin();
            let lr = 0.01 * (1.0 - x / total as f64);
            let mut lines = vec![format!(
                "{{\"event\":\"step\",\"step\":{s},\"epoch\":{:.4},\"loss\":{loss:.4},\"lr\":{lr:.6},\"grad_norm\":{:.3},\"tokens\":380,\"tokens_per_s\":{:.1},\"elapsed_s\":{:.2},\"total_steps\":{total}}}",
                x / 27.0,
                1.0 + 0.5 * (x / 7.0).cos(),
                1900.0 + 100.0 * (x / 5.0).sin(),
                x * 0.2
            )];
            if s % 27 == 0 {
                lines.push(format!(
                    "{{\"event\":\"eval\",\"step\":{s},\"eval_loss\":{:.4}}}",
                    7.0 * (-x / 50.0).exp() + 3.0
                ));
            }
            lines
        })
        .collect()
}

/// Three runs: a stopped one (newest), a completed one, a crashed one.
fn runs_fixture(runs: &Path) {
    let mut crashed = vec![start_line(999_999_999, 810)];
    crashed.extend(step_lines(1, 12, 810));
    write_run(runs, "tiny-fastapi-20260101-000001", &crashed);
    let mut completed = vec![start_line(1, 108)];
    completed.extend(step_lines(1, 108, 108));
    completed.push("{\"event\":\"checkpoint\",\"step\":108,\"path\":\"x\"}".into());
    completed.push("{\"event\":\"end\",\"status\":\"completed\"}".into());
    write_run(runs, "tiny-fastapi-20260101-000002", &completed);
    let mut stopped = vec![start_line(1, 810)];
    stopped.extend(step_lines(1, 120, 810));
    stopped.push("{\"event\":\"checkpoint\",\"step\":120,\"path\":\"x\"}".into());
    stopped.push(
        "{\"event\":\"end\",\"status\":\"stopped\",\"message\":\"stopped by a signal; resume with --resume\"}"
            .into(),
    );
    let dir = write_run(runs, "tiny-fastapi-20260101-000003", &stopped);
    let checkpoint = dir.join("checkpoints/step-120");
    std::fs::create_dir_all(&checkpoint).unwrap();
    std::fs::write(checkpoint.join("trainer_state.json"), "{}").unwrap();
}

fn setup(runs: &Path) -> TrainSetup {
    TrainSetup {
        runs_dir: runs.to_path_buf(),
        model: "models/tiny".into(),
        data: PathBuf::from("sample-data/fastapi_projects.jsonl"),
        config: None,
        sample_config: None,
    }
}

fn tiny_config() -> ModelConfig {
    ModelConfig::from_json(&serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 256,
        "intermediate_size": 688, "num_hidden_layers": 4,
        "num_attention_heads": 8, "num_key_value_heads": 4,
        "vocab_size": 4096, "tie_word_embeddings": true
    }))
    .unwrap()
}

/// A pane over a fixture runs dir, with a fixed measurement delivered.
fn pane_with_runs() -> (tempfile::TempDir, TrainPane) {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    runs_fixture(&runs);
    let mut pane = TrainPane::new(setup(&runs));
    let fingerprint = estimate::fingerprint(pane.form.config.as_ref().unwrap());
    pane.message(Msg::Measured(Box::new(Measured {
        fingerprint,
        model: Ok(tiny_config()),
        data: Ok(DataSize {
            rows: 48,
            tokens: 17_000,
            eval_tokens: 2_100,
            truncated: 40,
        }),
    })));
    (tmp, pane)
}

fn draw(pane: &TrainPane) -> String {
    draw_sized(pane, 120, 35)
}

fn draw_sized(pane: &TrainPane, width: u16, height: u16) -> String {
    crate::tui::panes::testing::draw_pane(pane, width, height)
        .backend()
        .to_string()
}

#[test]
fn snapshot_runs_form_estimate_and_chart_grid() {
    let (_tmp, pane) = pane_with_runs();
    assert_eq!(pane.runs.list.len(), 3);
    assert_eq!(
        pane.run_summary(),
        "run tiny-fastapi-20260101-000003: step 120/810, loss 2.46 (stopped)"
    );
    insta::assert_snapshot!("train_grid", draw(&pane));
}

#[test]
fn snapshot_editing_with_an_error_and_one_large_chart() {
    let (_tmp, mut pane) = pane_with_runs();
    press(&mut pane, &[KeyCode::Down; 7]);
    assert_eq!(pane.form.field().key, "lora.dropout");
    press(&mut pane, &[KeyCode::Enter]);
    assert!(pane.captures_input());
    press(&mut pane, &[KeyCode::Backspace; 4]);
    type_text(&mut pane, "1.5");
    let effects = press(&mut pane, &[KeyCode::Enter]);
    assert_eq!(
        notices(&effects)[0].text,
        "lora.dropout 1.5: must be in [0, 1)"
    );
    assert!(pane.captures_input(), "still editing after a refused value");
    for (w, h) in [(10, 4), (30, 8), (60, 20)] {
        draw_sized(&pane, w, h);
    }
    pane.chart = ChartView::One(charts::ChartKind::Loss);
    insta::assert_snapshot!("train_editing_loss_chart", draw(&pane));
    // The text changed: the first Esc asks, the second discards.
    press(&mut pane, &[KeyCode::Esc]);
    assert!(pane.captures_input());
    press(&mut pane, &[KeyCode::Esc]);
    assert!(!pane.captures_input());
    assert_eq!(pane.form.value("lora.dropout"), Some("0.05"));
}

#[test]
fn focus_navigation_and_attaching() {
    let (_tmp, mut pane) = pane_with_runs();
    assert_eq!(pane.focus, Focus::Form);
    press(&mut pane, &[KeyCode::Tab]);
    assert_eq!(pane.focus, Focus::Runs);
    let newest = pane.attached.clone().unwrap();
    assert!(newest.ends_with("tiny-fastapi-20260101-000003"));
    press(&mut pane, &[KeyCode::Char('j')]);
    assert!(
        pane.attached
            .as_ref()
            .unwrap()
            .ends_with("tiny-fastapi-20260101-000002")
    );
    assert!(pane.run_summary().contains("step 108/108"));
    press(&mut pane, &[KeyCode::Char('j'), KeyCode::Char('j')]);
    let crashed = pane.attached_run().unwrap();
    assert_eq!(crashed.status, Status::Crashed);
    press(&mut pane, &[KeyCode::Char('k')]);
    press(&mut pane, &[KeyCode::Enter]);
    assert_eq!(pane.focus, Focus::Charts);
    press(&mut pane, &[KeyCode::Char('c')]);
    assert_eq!(pane.chart, ChartView::One(charts::ChartKind::Loss));
    press(&mut pane, &[KeyCode::BackTab, KeyCode::BackTab]);
    assert_eq!(pane.focus, Focus::Form);
}

#[test]
fn start_launches_a_new_run_dir_with_the_form_as_overrides() {
    let (tmp, mut pane) = pane_with_runs();
    // lora r := 8
    press(&mut pane, &[KeyCode::Down; 5]);
    press(
        &mut pane,
        &[KeyCode::Enter, KeyCode::Backspace, KeyCode::Backspace],
    );
    type_text(&mut pane, "8");
    press(&mut pane, &[KeyCode::Enter]);
    let effects = press(&mut pane, &[KeyCode::Char('s')]);
    let launch = effects
        .iter()
        .find_map(|e| match e {
            Effect::Train(Job::Launch(l)) => Some(l.clone()),
            _ => None,
        })
        .expect("a launch");
    let Launch::New {
        run_dir,
        config_file,
        config_text,
        sets,
    } = &launch
    else {
        panic!("not a new run: {launch:?}")
    };
    let runs = tmp.path().join("runs");
    assert_eq!(run_dir.parent(), Some(runs.as_path()));
    let name = run_dir.file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("tiny-fastapi_projects-"), "{name}");
    assert_eq!(config_file, &runs.join(format!(".{name}.toml")));
    assert!(sets.contains(&"lora.r=8".to_string()), "{sets:?}");
    assert!(sets.contains(&"model.name=\"models/tiny\"".to_string()));
    let args: Vec<String> = launch
        .args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        &args[..3],
        ["train", "--config", &*config_file.to_string_lossy()]
    );
    assert_eq!(args[args.len() - 2], "--run-dir");
    assert!(config_text.contains("[training]"));
    assert!(notices(&effects)[0].text.starts_with("starting "));

    // The worker's report attaches the new run.
    let effects = pane.message(Msg::Launched {
        dir: run_dir.clone(),
        process: ProcessId {
            pid: 4321,
            start_time: None,
        },
        resumed: false,
    });
    assert_eq!(pane.attached.as_ref(), Some(run_dir));
    assert!(notices(&effects)[0].text.contains("pid 4321"));
    let effects = pane.message(Msg::Exited {
        dir: run_dir.clone(),
        pid: 4321,
        code: Some(1),
        tail: Some("error: no such file".into()),
    });
    let text = &notices(&effects)[0];
    assert!(
        text.is_error && text.text.ends_with("exit code 1: error: no such file"),
        "{text:?}"
    );
}

#[test]
fn stop_and_resume_follow_the_runs_status() {
    let (tmp, mut pane) = pane_with_runs();
    // The newest run is stopped with a checkpoint: resumable, not stoppable.
    let effects = press(&mut pane, &[KeyCode::Char('x')]);
    assert!(
        notices(&effects)[0]
            .text
            .contains("is stopped, not running")
    );
    let effects = press(&mut pane, &[KeyCode::Char('r')]);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Train(Job::Launch(Launch::Resume { run_dir })) if run_dir.ends_with("tiny-fastapi-20260101-000003")
    )));
    // Completed: nothing to resume.
    press(&mut pane, &[KeyCode::Tab, KeyCode::Char('j')]);
    let effects = press(&mut pane, &[KeyCode::Char('r')]);
    assert!(notices(&effects)[0].text.contains("completed"));
    // The start event names a live process with `train` in its arguments,
    // and so does the lock file, but nothing holds the lock: the pid of a
    // crashed run, since reused. Not running, and never signalled.
    let mut decoy = std::process::Command::new("sh")
        .args(["-c", "sleep 30; true", "train"])
        .spawn()
        .unwrap();
    let decoy_id = ProcessId::of(decoy.id()).unwrap();
    let record = |dir: &Path, process: ProcessId| {
        std::fs::write(
            dir.join(LOCK_FILE),
            serde_json::to_string(&process).unwrap(),
        )
        .unwrap()
    };
    let runs = tmp.path().join("runs");
    let mut live = vec![start_line(decoy.id(), 810)];
    live.extend(step_lines(1, 3, 810));
    let dir = write_run(&runs, "tiny-fastapi-20260101-000004", &live);
    record(&dir, decoy_id);
    assert!(pane.rescan());
    let index = pane.runs.find(&dir).unwrap();
    assert_eq!(pane.runs.list[index].status, Status::Crashed);
    pane.attach(index);
    let effects = press(&mut pane, &[KeyCode::Char('x')]);
    assert!(
        notices(&effects)[0]
            .text
            .contains("is crashed, not running")
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::Train(_))));
    let refused = launch::stop(&dir, None).unwrap_err();
    assert!(
        refused.contains("no process holds the run's lock"),
        "{refused}"
    );
    // A held lock whose record names the decoy's pid with another start
    // time: the holder died and its pid was reused. Refused as well.
    let lock = RunLock::acquire(&dir).unwrap();
    let reused = ProcessId {
        start_time: decoy_id.start_time.map(|t| t + 1),
        ..decoy_id
    };
    record(&dir, reused);
    pane.rescan();
    assert_eq!(pane.attached_run().unwrap().status, Status::Running);
    let effects = press(&mut pane, &[KeyCode::Char('x')]);
    let stop = effects.iter().find_map(|e| match e {
        Effect::Train(Job::Stop { dir, child }) => Some((dir.clone(), *child)),
        _ => None,
    });
    assert_eq!(stop, Some((dir.clone(), None)));
    let refused = launch::stop(&dir, None).unwrap_err();
    assert!(
        refused.contains("not the process that holds the lock"),
        "{refused}"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the decoy got a signal"
    );
    // The process the lock records is the one that is stopped.
    let mut holder = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    record(&dir, ProcessId::of(holder.id()).unwrap());
    assert_eq!(launch::stop(&dir, None), Ok(holder.id()));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(holder.wait().unwrap().signal(), Some(libc::SIGTERM));
    let effects = press(&mut pane, &[KeyCode::Char('r')]);
    assert!(notices(&effects)[0].text.contains("already running"));
    drop(lock);
    pane.rescan();
    assert_eq!(pane.attached_run().unwrap().status, Status::Crashed);
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the decoy got a signal"
    );
    decoy.kill().unwrap();
    decoy.wait().unwrap();
}

#[test]
fn tick_reads_growth_and_reports_no_change_when_idle() {
    let (tmp, mut pane) = pane_with_runs();
    assert!(!pane.tick(), "nothing new since the scan");
    let dir = tmp.path().join("runs/tiny-fastapi-20260101-000003");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("metrics.jsonl"))
        .unwrap();
    writeln!(
        f,
        "{}",
        start_line(1, 810).replace("}", ",\"resumed_from\":120}")
    )
    .unwrap();
    write!(f, "{}", &step_lines(121, 121, 810)[0][..30]).unwrap();
    f.flush().unwrap();
    assert!(pane.tick());
    assert_eq!(
        pane.attached_run().unwrap().metrics().last.unwrap().step,
        120
    );
    writeln!(f, "{}", &step_lines(121, 121, 810)[0][30..]).unwrap();
    f.flush().unwrap();
    assert!(pane.tick());
    assert_eq!(
        pane.attached_run().unwrap().metrics().last.unwrap().step,
        121
    );
    assert!(!pane.tick());
}

#[test]
fn mouse_selects_fields_and_runs_and_enlarges_charts() {
    let (_tmp, mut pane) = pane_with_runs();
    draw(&pane);
    let areas = pane.areas.get();
    let click = crate::tui::panes::testing::left_click;
    let area = Rect::new(0, 0, 120, 35);
    pane.mouse(click(areas.form.x + 2, areas.form.y + 5), area);
    assert_eq!(pane.form.field().key, "lora.r");
    pane.mouse(click(areas.form.x + 2, areas.form.y + 5), area);
    assert!(pane.captures_input(), "a second click edits");
    pane.key(key(KeyCode::Esc));
    pane.mouse(click(areas.runs.x + 3, areas.runs.y + 1), area);
    assert_eq!(pane.focus, Focus::Runs);
    assert!(
        pane.attached
            .as_ref()
            .unwrap()
            .ends_with("tiny-fastapi-20260101-000002")
    );
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        ..click(areas.runs.x + 3, areas.runs.y)
    };
    pane.mouse(wheel, area);
    assert!(
        pane.attached
            .as_ref()
            .unwrap()
            .ends_with("tiny-fastapi-20260101-000001")
    );
    let cell = areas.cells[3];
    pane.mouse(click(cell.x + 2, cell.y + 2), area);
    assert_eq!(pane.chart, ChartView::One(charts::ChartKind::Speed));
}

#[test]
fn no_runs_dir_means_no_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pane = TrainPane::new(setup(&tmp.path().join("missing")));
    assert_eq!(pane.run_summary(), "no run");
    assert!(!pane.tick());
    let effects = press(&mut pane, &[KeyCode::Char('x')]);
    assert!(notices(&effects)[0].is_error);
    // The first key asks for the estimate's measurement, once.
    let measure = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Train(Job::Measure(_))))
            .count()
    };
    assert_eq!(measure(&effects), 1);
    assert_eq!(measure(&press(&mut pane, &[KeyCode::Char('j')])), 0);
    draw(&pane);
}

/// The real code path: `s` in the pane, the worker launching the release
/// binary on the tiny model, the pane following the run, `x` stopping it
/// gracefully (a checkpoint, then end/stopped), `r` resuming it. Skipped
/// when the release binary or models/tiny is missing.
#[test]
fn a_real_run_starts_streams_stops_and_resumes() {
    use crate::tui::action::Action;
    use crate::tui::services::Services;
    use std::sync::{Arc, RwLock, mpsc};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = root.join("target/release/tunebench");
    if !exe.exists() || !root.join("models/tiny/config.json").exists() {
        eprintln!("skipped: needs target/release/tunebench and models/tiny");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let mut pane = TrainPane::new(TrainSetup {
        runs_dir: runs.clone(),
        model: "models/tiny".into(),
        data: PathBuf::from("sample-data/chat_small.jsonl"),
        config: None,
        sample_config: None,
    });
    let services = Arc::new(Services {
        model: RwLock::new(None),
        model_name: RwLock::new("models/tiny".into()),
        load_options: Default::default(),
        exe,
        runs_dir: runs.clone(),
    });
    let (tx, rx) = mpsc::channel::<Action>();
    let set = |pane: &mut TrainPane, key: &str, value: &str| {
        let index = form::FIELDS.iter().position(|f| f.key == key).unwrap();
        pane.form.select(index);
        pane.key(self::key(KeyCode::Enter));
        pane.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        type_text(pane, value);
        pane.key(self::key(KeyCode::Enter));
        assert_eq!(pane.form.value(key), Some(value), "{:?}", pane.form.error);
    };
    set(&mut pane, "data.max_seq_len", "96");
    set(&mut pane, "training.grad_accum", "1");
    set(&mut pane, "training.checkpoint_every", "1000");
    set(&mut pane, "training.eval_every", "1000");
    set(&mut pane, "training.max_steps", "100000");
    // Runs the pane's jobs until `until` holds, feeding reports back.
    let pump = |pane: &mut TrainPane, effects: Vec<Effect>, until: &dyn Fn(&TrainPane) -> bool| {
        let mut pending = effects;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for effect in pending.drain(..) {
                if let Effect::Train(job) = effect {
                    worker::run(job, &services, &tx);
                }
            }
            pane.tick();
            if until(pane) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out: {}",
                pane.run_summary()
            );
            if let Ok(Action::Train(msg)) = rx.recv_timeout(Duration::from_millis(100)) {
                pending = pane.message(msg);
            }
        }
    };
    let effects = pane.key(key(KeyCode::Char('s')));
    pump(&mut pane, effects, &|p| {
        p.attached_run()
            .is_some_and(|r| r.metrics().last.is_some_and(|l| l.step >= 2))
    });
    let run = pane.attached_run().unwrap();
    assert_eq!(run.status, Status::Running);
    assert!(run.dir.starts_with(&runs));
    let dir = run.dir.clone();
    assert!(dir.join("config.toml").exists());
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("max_seq_len = 96"), "{config}");
    let console = std::fs::read_to_string(dir.join(launch::CONSOLE_LOG)).unwrap();
    assert!(console.contains("run directory"), "{console}");

    let effects = pane.key(key(KeyCode::Char('x')));
    pump(&mut pane, effects, &|p| {
        p.attached_run()
            .is_some_and(|r| r.status == Status::Stopped)
    });
    let stopped_at = pane.attached_run().unwrap().metrics().last.unwrap().step;
    assert!(!checkpoints(&dir).is_empty(), "a stop saves a checkpoint");
    assert!(pane.run_summary().ends_with("(stopped)"));

    let effects = pane.key(key(KeyCode::Char('r')));
    pump(&mut pane, effects, &|p| {
        p.attached_run().is_some_and(|r| {
            r.status == Status::Running && r.metrics().last.is_some_and(|l| l.step > stopped_at)
        })
    });
    let effects = pane.key(key(KeyCode::Char('x')));
    pump(&mut pane, effects, &|p| {
        p.attached_run()
            .is_some_and(|r| r.status == Status::Stopped)
            && p.launched.is_empty()
    });
    assert!(!runs.join(format!(".{}.toml", dir_name(&dir))).exists());
}

#[test]
fn a_metrics_line_that_never_ends_is_reported_on_the_run() {
    let (tmp, mut pane) = pane_with_runs();
    let dir = tmp.path().join("runs/tiny-fastapi-20260101-000003");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("metrics.jsonl"))
        .unwrap();
    // The fixture has 127 lines; line 128 is 5 MiB and still unfinished.
    write!(f, "{{\"event\":\"step\",\"x\":\"{}", "x".repeat(5 << 20)).unwrap();
    f.flush().unwrap();
    assert!(pane.tick());
    let notice = "metrics.jsonl: line 128 longer than 4 MiB skipped";
    let run = pane.attached_run().unwrap();
    assert_eq!(run.metrics().notice().as_deref(), Some(notice));
    let screen = draw_sized(&pane, 240, 60);
    assert!(screen.contains("line 128 longer than 4 MiB"), "{screen}");
}
