//! The workbench's frame around the panes: the status bar, error popups,
//! quitting, and a model that fails to load. Drawn into ratatui's
//! TestBackend; no terminal, network or GPU.

mod common;

use common::tui::{ctrl, press, screen_at, type_text};
use crossterm::event::KeyCode;
use std::path::Path;
use tunebench::tui::action::{Action, Effect, ModelInfo, ModelStatus};
use tunebench::tui::app::App;
use tunebench::tui::panes::Pane;
use tunebench::tui::panes::train::{Job, Msg, estimate};
use tunebench::tui::{UiOptions, setup};

const CHAT: &str = concat!(
    r#"{"messages": [{"role": "user", "content": "What is Rust?"}, {"role": "assistant", "content": "A systems programming language."}]}"#,
    "\n",
);

const LONG_RUN: &str = "SmolLM2-135M-Instruct-fastapi_projects-20261122-100000";

/// A workbench on a one-sample dataset, with a run (long name) in its runs
/// folder; the model is named, not loaded.
fn workbench(work: &Path, model: &str) -> App {
    let data = work.join("fastapi_projects.jsonl");
    std::fs::write(&data, CHAT).unwrap();
    let run = work.join("runs").join(LONG_RUN);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("metrics.jsonl"),
        format!(
            "{{\"event\":\"start\",\"run\":\"{LONG_RUN}\",\"model\":\"m\",\"dataset\":\"d\",\"train_samples\":2,\"eval_samples\":0,\"total_steps\":40,\"pid\":999999999}}\n{}\n",
            r#"{"event":"step","step":2,"epoch":0.2,"loss":3.25,"lr":0.001,"grad_norm":0.5,"tokens":100,"tokens_per_s":900.0,"elapsed_s":2.0}"#
        ),
    )
    .unwrap();
    setup::prepare(UiOptions {
        data: Some(data),
        model: Some(model.to_string()),
        runs: Some(work.join("runs")),
        ..UiOptions::default()
    })
    .unwrap()
    .app
}

fn last_row(screen: &str) -> &str {
    screen.lines().last().unwrap().trim_end()
}

/// Attaches the run (the Train tab follows it) and names an adapter of it,
/// as after choosing one in Chat.
fn attach_run_and_adapter(app: &mut App, work: &Path) {
    press(app, KeyCode::Char('2'));
    app.update(Action::Tick);
    press(app, KeyCode::Char('1'));
    app.model = ModelStatus::Ready(ModelInfo {
        name: "/models/SmolLM2-135M-Instruct".to_string(),
        adapter: Some(work.join("runs").join(LONG_RUN).join("adapter")),
        precision: "f32 · cpu".into(),
        generation: 1,
    });
}

/// Opens a file that does not exist from the Data tab's `o` prompt.
fn open_missing(app: &mut App, missing: &Path) {
    press(app, KeyCode::Char('o'));
    for _ in 0..200 {
        press(app, KeyCode::Backspace);
    }
    type_text(app, &missing.to_string_lossy());
    press(app, KeyCode::Enter);
}

#[test]
fn status_bar_keeps_the_error_over_a_long_run_name() {
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/models/SmolLM2-135M-Instruct");
    attach_run_and_adapter(&mut app, work.path());
    // Relative, so the message reads the same on every machine.
    let missing = Path::new("no-such-dataset.jsonl");
    open_missing(&mut app, missing);
    let error = app.notice.clone().expect("opening a missing file notifies");
    assert!(error.is_error, "{error:?}");

    // The error pops up whole over the pane, where the action happened.
    let wide = screen_at(&app, 160, 24);
    assert!(wide.contains(" Error "), "{wide}");
    assert!(wide.contains("no-such-dataset.jsonl"), "{wide}");
    // Any key dismisses it, and does nothing else.
    press(&mut app, KeyCode::Char('2'));
    assert!(app.error_popup.is_none());
    assert_eq!(app.tab, tunebench::tui::app::Tab::Data);

    let narrow = screen_at(&app, 80, 24);
    let wide = screen_at(&app, 160, 24);
    insta::assert_snapshot!("status_80_error", last_row(&narrow));
    insta::assert_snapshot!("status_160_error", last_row(&wide));
    for row in [last_row(&narrow), last_row(&wide)] {
        assert!(
            row.contains("No such file") || row.contains("no-such"),
            "the error is readable: {row}"
        );
    }
    assert!(
        last_row(&wide).contains("(os error 2)"),
        "whole at 160: {wide}"
    );
}

#[test]
fn status_bar_without_an_error_shortens_names_in_the_middle() {
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/models/SmolLM2-135M-Instruct");
    attach_run_and_adapter(&mut app, work.path());
    insta::assert_snapshot!("status_80_plain", last_row(&screen_at(&app, 80, 24)));
    insta::assert_snapshot!("status_160_plain", last_row(&screen_at(&app, 160, 24)));
}

#[test]
fn a_failed_model_load_says_why_and_offers_another_model() {
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/nope");
    let why = "loading /nope: /nope: no such directory";
    let effects = app.update(Action::Model(ModelStatus::Failed {
        name: "/nope".to_string(),
        message: why.to_string(),
    }));
    press(&mut app, KeyCode::Esc); // dismisses the error popup
    // The Train estimate measures the model's files itself and says what
    // is wrong with them, instead of "measuring…" forever.
    let measure = effects.into_iter().find_map(|effect| match effect {
        Effect::Train(Job::Measure(job)) => Some(job),
        _ => None,
    });
    let measured = estimate::measure(&measure.expect("the estimate measures after a failed load"));
    app.update(Action::Train(Msg::Measured(Box::new(measured))));
    press(&mut app, KeyCode::Char('2'));
    let train = screen_at(&app, 160, 40);
    assert!(!train.contains("measuring"), "{train}");
    assert!(train.contains("/nope: not a local directory"), "{train}");

    press(&mut app, KeyCode::Char('3'));
    let chat = screen_at(&app, 160, 40);
    assert!(!chat.contains("model loading"), "{chat}");
    assert!(
        chat.contains("model failed to load: loading /nope") && chat.contains("m: load another"),
        "{chat}"
    );
    // `m` opens the model picker; a typed path is loaded as it is.
    press(&mut app, KeyCode::Char('m'));
    assert!(screen_at(&app, 160, 40).contains(" Model "));
    type_text(&mut app, "/models/other");
    let effects = press(&mut app, KeyCode::Enter);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadModel(name) if name == "/models/other")),
        "{effects:?}"
    );
    press(&mut app, KeyCode::Char('2'));
    assert!(
        screen_at(&app, 160, 40).contains("/models/other"),
        "the Train form trains the new model"
    );
}

/// Opens the Data editor on the first sample's answer and types into it.
fn type_in_data_editor(app: &mut App, text: &str) {
    press(app, KeyCode::Tab);
    press(app, KeyCode::Char('j'));
    press(app, KeyCode::Char('e'));
    press(app, KeyCode::End);
    type_text(app, text);
}

#[test]
fn ctrl_c_with_an_open_editor_asks_and_a_second_says_what_is_discarded() {
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/nope");
    type_in_data_editor(&mut app, " Fast.");
    assert!(!app.data.is_dirty(), "nothing applied yet");

    let effects = ctrl(&mut app, 'c');
    assert!(effects.is_empty(), "{effects:?}");
    assert!(app.confirm_quit);
    let asked = screen_at(&app, 100, 30);
    assert!(asked.contains("the text in the Data editor"), "{asked}");
    // Esc stays, with the editor and its text.
    press(&mut app, KeyCode::Esc);
    assert!(!app.confirm_quit && Pane::has_unapplied_edit(&app.data));

    ctrl(&mut app, 'c');
    let effects = ctrl(&mut app, 'c');
    assert!(matches!(effects.as_slice(), [Effect::Quit]), "{effects:?}");
    let note = app.exit_note.clone().unwrap_or_default();
    assert!(note.contains("the text in the Data editor"), "{note}");
}

#[test]
fn esc_cancels_editors_after_asking_and_ctrl_s_applies() {
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/nope");
    type_in_data_editor(&mut app, " Fast.");
    assert!(screen_at(&app, 120, 30).contains("Ctrl+s apply · Esc cancel"));
    press(&mut app, KeyCode::Esc);
    let asking = screen_at(&app, 120, 30);
    assert!(asking.contains("Esc again discards"), "{asking}");
    press(&mut app, KeyCode::Esc);
    assert!(!app.data.is_dirty(), "a second Esc discards");
    assert!(
        !Pane::has_unapplied_edit(&app.data),
        "and closes the editor"
    );

    type_in_data_editor(&mut app, " Fast.");
    ctrl(&mut app, 's');
    assert!(app.data.is_dirty(), "Ctrl+s applies");

    // The Train form's field editor: the same keys, the same title.
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "x");
    let editing = screen_at(&app, 160, 40);
    assert!(editing.contains("Ctrl+s apply · Esc cancel"), "{editing}");
    press(&mut app, KeyCode::Esc);
    assert!(screen_at(&app, 160, 40).contains("Esc again discards"));
    press(&mut app, KeyCode::Esc);
    assert!(!Pane::captures_input(&app.train));
}

#[test]
fn a_paste_is_text_in_the_focused_input() {
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/nope");
    let paste = |app: &mut App, text: &str| app.update(Action::Paste(text.to_string()));

    // Chat: a multi-line paste is one prompt, not one turn per line.
    press(&mut app, KeyCode::Char('3'));
    let effects = paste(&mut app, "first line\r\nsecond line");
    assert!(effects.is_empty(), "nothing is sent: {effects:?}");
    let chat = screen_at(&app, 120, 30);
    assert!(
        chat.contains("first line") && chat.contains("second line"),
        "{chat}"
    );
    assert!(Pane::captures_input(&app.chat), "the prompt has focus");
    // The pasted text is typed text: `1` goes on in the prompt, not to a tab.
    press(&mut app, KeyCode::Char('1'));
    assert_eq!(app.tab, tunebench::tui::app::Tab::Chat);

    // Data: the filter prompt takes it on one line; the editor whole.
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('1'));
    press(&mut app, KeyCode::Char('/'));
    paste(&mut app, "What\nis");
    assert!(screen_at(&app, 120, 30).contains("/What is"));
    press(&mut app, KeyCode::Esc);
    type_in_data_editor(&mut app, "");
    paste(&mut app, " Fast.\nSafe.");
    ctrl(&mut app, 's');
    let sample = screen_at(&app, 120, 30);
    assert!(
        sample.contains("Fast.") && sample.contains("Safe."),
        "{sample}"
    );

    // Train: a form field takes it on one line.
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Enter);
    paste(&mut app, "-pasted");
    assert!(screen_at(&app, 160, 40).contains("/nope-pasted"));
}

#[test]
fn help_opens_at_the_tabs_keys_and_stops_at_its_end() {
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/nope");
    press(&mut app, KeyCode::Char('2'));
    screen_at(&app, 100, 30); // lays the screen out, as the real loop does
    press(&mut app, KeyCode::Char('?'));
    let help = screen_at(&app, 100, 30);
    let first_row = help.lines().nth(3).unwrap();
    assert!(
        first_row.contains("Train"),
        "opens at the Train keys: {help}"
    );

    for _ in 0..200 {
        press(&mut app, KeyCode::Char('j'));
    }
    let end = screen_at(&app, 100, 30);
    press(&mut app, KeyCode::Char('k'));
    let back = screen_at(&app, 100, 30);
    assert_ne!(
        end, back,
        "one k scrolls back at once: no scrolling past the end"
    );
}

#[test]
fn clearing_the_filter_clears_its_count() {
    use std::sync::{Arc, RwLock, mpsc};
    let work = tempfile::tempdir().unwrap();
    let mut app = workbench(work.path(), "/nope");
    let services = Arc::new(tunebench::tui::services::Services {
        model: RwLock::new(None),
        model_name: RwLock::new("/nope".into()),
        load_options: Default::default(),
        exe: env!("CARGO_BIN_EXE_tunebench").into(),
        runs_dir: work.path().join("runs"),
    });
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "Rust");
    let (tx, rx) = mpsc::channel();
    for effect in press(&mut app, KeyCode::Enter) {
        if let Effect::Data(job) = effect {
            tunebench::tui::panes::data::worker::run(job, &services, &tx);
        }
    }
    while app
        .notice
        .as_ref()
        .is_none_or(|n| !n.text.contains("match"))
    {
        let action = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        app.update(action);
    }
    assert!(last_row(&screen_at(&app, 160, 24)).contains("1 of 1 samples match"));
    press(&mut app, KeyCode::Esc);
    let bar = screen_at(&app, 160, 24);
    assert!(!last_row(&bar).contains("match"), "{}", last_row(&bar));
}
