//! The model picker against the loopback hub stand-in: a repo typed in the
//! picker is downloaded with a gauge, then loaded; a cached one is listed
//! with its size; Ctrl+x cancels a running download. One test in this
//! binary, because it points the process's environment at the stand-in.

mod common;

use common::hub::HubStandIn;
use common::tiny_model;
use common::tui::{ctrl, press, screen_at, type_text};
use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use std::sync::atomic::Ordering;
use tunebench::model::hub;
use tunebench::tui::action::{Action, DownloadReport, Effect};
use tunebench::tui::{UiOptions, setup};

#[test]
fn a_repo_typed_in_the_picker_downloads_with_a_gauge_and_loads() {
    let work = tempfile::tempdir().unwrap();
    let tiny = tiny_model(work.path());
    let hub_standin = HubStandIn::start();
    hub_standin.add_repo("acme/tiny", HubStandIn::files_of(&tiny), false);
    let cache = work.path().join("cache");
    // SAFETY: the only test in this binary; nothing else reads the
    // environment concurrently.
    unsafe {
        std::env::set_var("HF_ENDPOINT", &hub_standin.endpoint);
        std::env::set_var("HF_HUB_CACHE", &cache);
        std::env::set_var("OLLAMA_MODELS", work.path().join("no-ollama"));
        std::env::remove_var("HF_HUB_OFFLINE");
        std::env::remove_var("HF_TOKEN");
    }
    let data = work.path().join("chat.jsonl");
    std::fs::write(
        &data,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n",
    )
    .unwrap();
    let mut app = setup::prepare(UiOptions {
        data: Some(data),
        model: Some(tiny.display().to_string()),
        runs: Some(work.path().join("runs")),
        ..UiOptions::default()
    })
    .unwrap()
    .app;

    // O opens the picker from any tab; a repo id not here is offered as a
    // download.
    press(&mut app, KeyCode::Char('O'));
    type_text(&mut app, "acme/tiny");
    let screen = screen_at(&app, 120, 30);
    assert!(
        screen.contains(" Model ") && screen.contains("download from the hub"),
        "{screen}"
    );
    let effects = press(&mut app, KeyCode::Enter);
    let cancel = effects
        .iter()
        .find_map(|e| match e {
            Effect::Download { repo, cancel } if repo == "acme/tiny" => Some(cancel.clone()),
            _ => None,
        })
        .expect("Enter starts the download");

    // The worker's reports move the gauge in the picker and the status bar.
    let mut events = Vec::new();
    let dir = hub::download_model("acme/tiny", &cancel, &mut |e| events.push(e)).unwrap();
    let weights = events
        .iter()
        .position(|e| matches!(e, hub::Event::Done { file, .. } if file == "model.safetensors"))
        .unwrap();
    for event in &events[..weights] {
        app.update(Action::Download(DownloadReport::Progress(event.clone())));
    }
    app.update(Action::Download(DownloadReport::Progress(
        hub::Event::Progress {
            file: "model.safetensors".into(),
            done: 50,
            total: 100,
        },
    )));
    let screen = screen_at(&app, 140, 30);
    assert!(
        screen.contains("↓ acme/tiny 50% model.safetensors"),
        "{screen}"
    );
    // Esc closes the picker; the download goes on in the status bar.
    press(&mut app, KeyCode::Esc);
    assert!(app.picker.is_none());
    let screen = screen_at(&app, 140, 30);
    assert!(
        screen.lines().last().unwrap().contains("↓ acme/tiny"),
        "{screen}"
    );
    let effects = app.update(Action::Download(DownloadReport::Finished {
        repo: "acme/tiny".into(),
        result: Ok(dir),
    }));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadModel(name) if name == "acme/tiny")),
        "{effects:?}"
    );
    assert!(app.download.is_none());

    // Now it is a cached model, listed with its size.
    press(&mut app, KeyCode::Char('O'));
    let screen = screen_at(&app, 120, 30);
    let row = screen
        .lines()
        .find(|l| l.contains("acme/tiny"))
        .unwrap_or_default()
        .to_string();
    assert!(row.contains("hf cache") && row.contains(" MB"), "{screen}");
    let effects = press(&mut app, KeyCode::Enter);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadModel(name) if name == "acme/tiny")),
        "a cached model loads without a download: {effects:?}"
    );

    // Ctrl+x in the picker cancels a running download.
    press(&mut app, KeyCode::Char('O'));
    type_text(&mut app, "acme/other");
    let effects = press(&mut app, KeyCode::Enter);
    let cancel = effects
        .iter()
        .find_map(|e| match e {
            Effect::Download { cancel, .. } => Some(cancel.clone()),
            _ => None,
        })
        .unwrap();
    ctrl(&mut app, 'x');
    assert!(cancel.load(Ordering::Relaxed));

    // A click on the model's name in the status bar opens the picker too.
    press(&mut app, KeyCode::Esc);
    assert!(app.picker.is_none());
    screen_at(&app, 140, 30);
    let at = app.layout.get().status_model;
    assert!(at.width > 0, "the model is named in the status bar");
    app.update(Action::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: at.x + 1,
        row: at.y,
        modifiers: KeyModifiers::NONE,
    }));
    assert!(app.picker.is_some());
}
