//! A scripted session through the workbench's public surface: open a
//! dataset, edit a sample and save it, then attach to a run whose
//! metrics file grows and watch the Train tab's chart follow it. Drawn into
//! ratatui's TestBackend; no terminal, network or GPU.

mod common;

use common::tui::{ctrl, press, type_text};
use crossterm::event::KeyCode;
use std::io::Write;
use std::path::Path;
use tunebench::tui::action::{Action, Effect};
use tunebench::tui::app::{App, Tab};
use tunebench::tui::panes::Pane;
use tunebench::tui::{UiOptions, setup};

const CHAT: &str = concat!(
    r#"{"messages": [{"role": "user", "content": "What is Rust?"}, {"role": "assistant", "content": "A systems programming language."}]}"#,
    "\n",
    r#"{"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Teal, a blue-green."}]}"#,
    "\n"
);

fn screen(app: &App) -> String {
    common::tui::screen_at(app, 120, 36)
}

fn step_event(step: usize, loss: f64) -> String {
    format!(
        "{{\"event\":\"step\",\"step\":{step},\"epoch\":{:.2},\"loss\":{loss},\"lr\":0.001,\"grad_norm\":0.5,\"tokens\":100,\"tokens_per_s\":900.0,\"elapsed_s\":{step}.0}}\n",
        step as f64 / 10.0
    )
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn edit_save_and_follow_a_growing_run() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("chat.jsonl");
    std::fs::write(&data, CHAT).unwrap();
    let model = common::tiny_model(work.path());
    let runs = work.path().join("runs");
    let run = runs.join("tiny-chat-20261122-100000");
    std::fs::create_dir_all(&run).unwrap();
    let metrics = run.join("metrics.jsonl");
    std::fs::write(
        &metrics,
        format!(
            "{{\"event\":\"start\",\"run\":\"tiny-chat-20261122-100000\",\"model\":\"tiny\",\"dataset\":\"chat.jsonl\",\"train_samples\":2,\"eval_samples\":0,\"total_steps\":40,\"pid\":999999999}}\n{}{}",
            step_event(1, 3.5),
            step_event(2, 3.25)
        ),
    )
    .unwrap();

    let start = setup::prepare(UiOptions {
        data: Some(data.clone()),
        model: Some(model.to_string_lossy().into_owned()),
        runs: Some(runs.clone()),
        ..UiOptions::default()
    })
    .unwrap();
    let mut app = start.app;
    let first = screen(&app);
    assert!(first.contains("What is Rust?"), "{first}");
    assert!(first.contains("chat.jsonl"));

    // Edit the first answer: focus the sample, move to the answer, edit.
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('e'));
    press(&mut app, KeyCode::End);
    type_text(&mut app, " Fast.");
    ctrl(&mut app, 's');
    assert!(app.data.is_dirty());
    assert!(
        screen(&app).contains("[+]"),
        "the status bar marks unsaved changes"
    );
    // Quitting now asks first; Esc stays.
    assert!(press(&mut app, KeyCode::Char('q')).is_empty());
    assert!(app.confirm_quit);
    assert!(screen(&app).contains("unsaved changes"));
    press(&mut app, KeyCode::Esc);
    assert!(!app.confirm_quit);
    // Save; jobs the save starts (re-validation) run on workers in the real
    // app and are not needed here.
    press(&mut app, KeyCode::Char('w'));
    assert!(!app.data.is_dirty());
    let saved = std::fs::read_to_string(&data).unwrap();
    let mut lines = saved.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .contains("A systems programming language. Fast.")
    );
    assert_eq!(
        lines.next().unwrap(),
        CHAT.lines().nth(1).unwrap(),
        "untouched line kept"
    );

    // The Train tab lists the run and attaches to it.
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.tab, Tab::Train);
    app.update(Action::Tick);
    let before = screen(&app);
    assert!(before.contains("tiny-chat-20261122-100000"), "{before}");
    assert!(before.contains("step 2/40"), "{before}");
    assert!(before.contains("3.25"), "latest loss shown: {before}");

    // The run writes more steps (the last line only half); a tick follows.
    append(&metrics, &step_event(3, 2.75));
    let half = step_event(4, 2.125);
    append(&metrics, &half[..20]);
    app.update(Action::Tick);
    assert!(app.dirty, "new metrics mark the screen for a redraw");
    let after = screen(&app);
    assert!(
        after.contains("step 3/40") && after.contains("2.75"),
        "{after}"
    );
    assert_ne!(before, after, "the chart changed");
    append(&metrics, &half[20..]);
    app.update(Action::Tick);
    let last = screen(&app);
    assert!(
        last.contains("step 4/40") && last.contains("2.12"),
        "{last}"
    );
    // Nothing new in the run: following it asks for no redraw.
    assert!(!Pane::tick(&mut app.train));

    // Opening the Eval tab loads the newest results file on a worker.
    std::fs::write(run.join("eval-results.jsonl"), "").unwrap();
    let effects = press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.tab, Tab::Eval);
    assert!(
        matches!(effects.as_slice(), [Effect::Eval(_)]),
        "{effects:?}"
    );

    // Open another dataset from the Data tab; the Train form follows it.
    let other = work.path().join("other.jsonl");
    std::fs::write(&other, CHAT.lines().nth(1).unwrap()).unwrap();
    press(&mut app, KeyCode::Char('1'));
    press(&mut app, KeyCode::Char('o'));
    for _ in 0..data.to_string_lossy().chars().count() {
        press(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, &other.to_string_lossy());
    press(&mut app, KeyCode::Enter);
    let opened = screen(&app);
    assert!(
        opened.contains("other.jsonl") && opened.contains("Name a colour."),
        "{opened}"
    );
    press(&mut app, KeyCode::Char('2'));
    assert!(
        screen(&app).contains("other.jsonl"),
        "the Train form trains on it"
    );
}

#[test]
fn the_data_tab_looks_at_its_file_when_the_terminal_gets_the_focus_back() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("chat.jsonl");
    std::fs::write(&data, CHAT).unwrap();
    let model = common::tiny_model(work.path());
    let start = setup::prepare(UiOptions {
        data: Some(data.clone()),
        model: Some(model.to_string_lossy().into_owned()),
        runs: Some(work.path().join("runs")),
        ..UiOptions::default()
    })
    .unwrap();
    let mut app = start.app;
    assert_eq!(app.data.len(), 2);
    // Another program appends a sample while the terminal is elsewhere.
    append(&data, CHAT.lines().next().unwrap());
    append(&data, "\n");
    app.update(Action::FocusGained);
    let notice = app.notice.clone().expect("the user is told");
    assert!(notice.text.contains("changed on disk"), "{notice:?}");
    assert_eq!(app.data.len(), 3, "nothing pending: reloaded");
}
