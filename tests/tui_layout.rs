//! The workbench at 80x24 (narrow: panes stack vertically) and 160x40
//! (side by side), as snapshots, with the status bar's "? help" in view at
//! both. Drawn into ratatui's TestBackend; no terminal, network or GPU.

mod common;

use common::tui::{press, screen_at};
use crossterm::event::KeyCode;
use serde_json::json;
use std::path::Path;
use tunebench::tui::action::{Action, ModelInfo, ModelStatus};
use tunebench::tui::app::App;
use tunebench::tui::{UiOptions, setup};

/// A workbench on a two-project multi-file file, the model named (not
/// loaded) and reported ready with an adapter.
fn workbench(work: &Path) -> App {
    // A folder of a fixed name: the Train form shows the path's end.
    let folder = work.join("datasets-for-the-layout");
    std::fs::create_dir(&folder).unwrap();
    let data = folder.join("projects.jsonl");
    let project = |id: &str, prompt: &str| {
        json!({
            "id": id,
            "prompt": prompt,
            "context": {"domain": "todo", "tech_stack": ["python", "fastapi"]},
            "output": {"files": {
                "app/main.py": "from fastapi import FastAPI\n\napp = FastAPI(title=\"Todo API\", version=\"1.0.0\")\n\n\n@app.get(\"/health\")\ndef health() -> dict[str, str]:\n    return {\"status\": \"ok\"}\n",
                "requirements.txt": "fastapi\nuvicorn\n",
            }},
        })
    };
    let records = [
        project("todo-001", "Build a todo API with due dates and tags."),
        project("notes-002", "Build a notes API."),
    ];
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&data, text).unwrap();
    let mut app = setup::prepare(UiOptions {
        data: Some(data),
        model: Some("models/SmolLM2-135M-Instruct".to_string()),
        runs: Some(work.join("runs")),
        ..UiOptions::default()
    })
    .unwrap()
    .app;
    app.update(Action::Model(ModelStatus::Ready(ModelInfo {
        name: "models/SmolLM2-135M-Instruct".to_string(),
        adapter: Some(work.join("runs/todo/adapter")),
        precision: "f32 · cpu".into(),
        generation: 1,
    })));
    app
}

/// The screen with the temporary folder's path taken out.
fn screen(app: &App, work: &Path, width: u16, height: u16) -> String {
    let text = screen_at(app, width, height);
    let last = text.lines().last().unwrap_or("").to_string();
    assert!(last.contains("? help"), "{width} columns: {last:?}");
    text.replace(&work.to_string_lossy().into_owned(), "/work")
}

/// Each tab after its keys: Data on the first file of a sample, Chat with
/// a sample's reference, Train's form.
#[test]
fn each_tab_stacks_its_panes_when_narrow() {
    let tabs: [(&str, &[KeyCode]); 3] = [
        (
            "data",
            &[
                KeyCode::Tab,
                KeyCode::Char('j'),
                KeyCode::Char('j'),
                KeyCode::Char('j'),
            ],
        ),
        (
            "chat",
            &[KeyCode::Char('3'), KeyCode::Char('u'), KeyCode::Esc],
        ),
        ("train", &[KeyCode::Char('2')]),
    ];
    for (name, keys) in tabs {
        let work = tempfile::tempdir().unwrap();
        let mut app = workbench(work.path());
        for &key in keys {
            press(&mut app, key);
        }
        for (width, height) in [(80, 24), (160, 40)] {
            let shown = screen(&app, work.path(), width, height);
            insta::assert_snapshot!(format!("{name}_{width}x{height}"), shown);
        }
    }
}
