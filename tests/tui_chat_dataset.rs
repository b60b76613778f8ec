//! Chat → dataset on multi-file data: a sample tried in Chat (`u`), its
//! answer kept (`e`, Ctrl+s) and appended through the app's hand-off, then
//! saved. The appended record is the sample's own (prompt, context,
//! expected_architecture, id...), so the trainer tokenises it exactly as
//! the original. Drawn into nothing; no terminal, network or GPU.

mod common;

use common::tui::{ctrl, press};
use crossterm::event::KeyCode;
use serde_json::{Value, json};
use tunebench::model::generate::StopReason;
use tunebench::model::tokenize::ChatTokenizer;
use tunebench::train::batches::prepare;
use tunebench::train::config::DataSection;
use tunebench::tui::action::{Action, Effect, ModelInfo, ModelStatus};
use tunebench::tui::app::{App, Tab};
use tunebench::tui::panes::chat::{Finished, Job, Msg, Side};
use tunebench::tui::{UiOptions, setup};

fn project(id: &str, prompt: &str) -> Value {
    json!({
        "id": id,
        "prompt": prompt,
        "context": {"domain": "todo", "tech_stack": ["python", "fastapi"], "task": "create"},
        "expected_architecture": ["app/main.py", "tests/test_main.py"],
        "output": {"files": {
            "app/main.py": "from fastapi import FastAPI\napp = FastAPI()\n",
            "tests/test_main.py": "def test_ok():\n    assert True\n",
        }},
        "quality_score": 4,
    })
}

/// What the Chat pane streams as the base model's answer: `text`, whole.
fn answer(app: &mut App, effects: Vec<Effect>, text: &str) {
    let id = effects
        .iter()
        .find_map(|e| match e {
            Effect::Chat(Job::Generate(columns)) => columns
                .iter()
                .find(|job| job.column == Side::Base)
                .map(|job| job.generation_id),
            _ => None,
        })
        .expect("Enter sends the sample's prompt to the base model");
    app.update(Action::Chat(Msg::Token {
        column: Side::Base,
        generation_id: id,
        text: text.to_string(),
    }));
    app.update(Action::Chat(Msg::Done {
        column: Side::Base,
        generation_id: id,
        result: Ok(Finished {
            tokens: 9,
            tokens_per_s: 10.0,
            stop: StopReason::EndOfTurn,
        }),
    }));
}

#[test]
fn an_answer_kept_in_chat_is_appended_as_the_samples_own_record() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("projects.jsonl");
    let first = project("todo-001", "Build a todo API with tests.");
    let second = project("notes-002", "Build a notes API.");
    std::fs::write(&data, format!("{first}\n{second}\n")).unwrap();
    let model = common::tiny_model(work.path());
    let mut app = setup::prepare(UiOptions {
        data: Some(data.clone()),
        model: Some(model.to_string_lossy().into_owned()),
        runs: Some(work.path().join("runs")),
        ..UiOptions::default()
    })
    .unwrap()
    .app;
    app.update(Action::Model(ModelStatus::Ready(ModelInfo {
        name: model.to_string_lossy().into_owned(),
        adapter: None,
        precision: "f32 · cpu".into(),
        generation: 1,
    })));

    // Chat: `u` takes the Data tab's selected sample (the first).
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('u'));
    assert_eq!(app.tab, Tab::Chat);
    let sent = press(&mut app, KeyCode::Enter);
    // The model answers with the sample's own files.
    let files = json!({"files": first["output"]["files"]}).to_string();
    answer(&mut app, sent, &files);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('e'));
    let kept = ctrl(&mut app, 's');
    assert!(
        !kept
            .iter()
            .any(|e| matches!(e, Effect::Notify(n) if n.is_error)),
        "{kept:?}"
    );

    // Data: the record was appended; `w` saves it.
    press(&mut app, KeyCode::Char('1'));
    assert!(app.data.is_dirty());
    press(&mut app, KeyCode::Char('w'));
    assert!(!app.data.is_dirty());
    let text = std::fs::read_to_string(&data).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[2], first, "the sample's own fields, its answer");

    // The trainer reads and tokenises the file: the appended record gives
    // the same tokens, trained on the same positions, as the original.
    let tokenizer = ChatTokenizer::load_dir(&model).unwrap();
    let section = DataSection {
        train: data.to_string_lossy().into_owned(),
        eval: None,
        eval_split: 0.0,
        format: None,
        max_seq_len: 4096,
        train_on_inputs: false,
        packing: false,
    };
    let prepared = prepare(&tokenizer, &section, 0).unwrap();
    let by_line = |line: usize| {
        prepared
            .train
            .iter()
            .find(|e| e.line == line)
            .unwrap_or_else(|| panic!("line {line} was not trained on"))
    };
    let (original, appended) = (by_line(1), by_line(3));
    assert_eq!(appended.encoded.ids, original.encoded.ids);
    assert_eq!(appended.encoded.trained, original.encoded.trained);
    let request = tokenizer.decode(&appended.encoded.ids);
    assert_eq!(request.matches("## Request").count(), 1, "{request}");
}
