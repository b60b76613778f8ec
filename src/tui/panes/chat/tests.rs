//! The pane's update rules (keys and messages in, effects out) and
//! snapshots of how it looks.

use super::*;
use crate::data::{Conversation, Message, Role};
use crate::model::generate::StopReason;
use crate::tui::action::{Effect, Exchange, ModelInfo};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn info(adapter: Option<&str>) -> ModelInfo {
    ModelInfo {
        name: "models/tiny".into(),
        adapter: adapter.map(PathBuf::from),
        precision: "f32 · cpu".into(),
        generation: 1,
    }
}

fn pane_with_adapter() -> ChatPane {
    let mut pane = ChatPane::new(PathBuf::from("runs"));
    pane.model_ready(&info(Some("runs/tiny-1/checkpoints/step-40")));
    pane
}

fn type_text(pane: &mut ChatPane, text: &str) -> Vec<Effect> {
    if pane.focus != Focus::Input {
        pane.key(key(KeyCode::Char('i')));
    }
    for c in text.chars() {
        pane.key(key(KeyCode::Char(c)));
    }
    pane.key(key(KeyCode::Enter))
}

fn jobs(effects: Vec<Effect>) -> Vec<Generate> {
    effects
        .into_iter()
        .flat_map(|e| match e {
            Effect::Chat(Job::Generate(columns)) => columns,
            _ => Vec::new(),
        })
        .collect()
}

fn token(side: Side, id: u64, text: &str) -> Msg {
    Msg::Token {
        column: side,
        generation_id: id,
        text: text.into(),
    }
}

fn done(side: Side, id: u64, stop: StopReason) -> Msg {
    Msg::Done {
        column: side,
        generation_id: id,
        result: Ok(Finished {
            tokens: 5,
            tokens_per_s: 12.5,
            stop,
        }),
    }
}

#[test]
fn send_starts_base_and_adapter_with_their_modes() {
    let mut pane = pane_with_adapter();
    let jobs = jobs(type_text(&mut pane, "hello"));
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].column, Side::Base);
    assert_eq!(jobs[0].mode, crate::model::decoder::Mode::BASE);
    assert_eq!(jobs[1].column, Side::Adapter);
    assert_eq!(jobs[1].mode, crate::model::decoder::Mode::ADAPTED);
    assert_eq!(jobs[0].generation_id, jobs[1].generation_id);
    assert_eq!(jobs[0].messages, vec![Message::new(Role::User, "hello")]);
    assert_eq!(jobs[1].params, pane.settings.params());
    assert!(Arc::ptr_eq(&jobs[0].cancel, &jobs[1].cancel));
    assert!(pane.input.text().is_empty());
    assert!(pane.captures_input());
}

#[test]
fn without_an_adapter_only_the_base_runs() {
    let mut pane = ChatPane::new(PathBuf::from("runs"));
    let effects = type_text(&mut pane, "hi");
    assert!(jobs(effects).is_empty(), "no model yet: nothing runs");
    pane.model_ready(&info(None));
    let jobs = jobs(pane.key(key(KeyCode::Enter)));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].column, Side::Base);
}

#[test]
fn tokens_land_in_their_column_and_stale_ones_are_dropped() {
    let mut pane = pane_with_adapter();
    let first = jobs(type_text(&mut pane, "one"))[0].generation_id;
    pane.message(token(Side::Base, first, "old"));
    // A second prompt replaces the first generation.
    let second = jobs(type_text(&mut pane, "two"))[0].generation_id;
    assert_ne!(first, second);
    pane.message(token(Side::Base, first, "stale"));
    pane.message(done(Side::Base, first, StopReason::EndOfTurn));
    pane.message(token(Side::Base, second, "Hel"));
    pane.message(token(Side::Adapter, second, "Bonjour"));
    pane.message(token(Side::Base, second, "lo"));
    assert_eq!(
        pane.chat.column(Side::Base).pending.as_ref().unwrap().text,
        "Hello"
    );
    pane.message(done(Side::Base, second, StopReason::EndOfTurn));
    pane.message(done(Side::Adapter, second, StopReason::MaxTokens));
    let base = &pane.chat.column(Side::Base).turns;
    let adapter = &pane.chat.column(Side::Adapter).turns;
    // The first prompt was answered "old" before it was replaced.
    assert_eq!(base.last().unwrap().content, "Hello");
    assert_eq!(adapter.last().unwrap().content, "Bonjour");
    assert!(!pane.chat.is_generating());
    // Each history holds its own answers.
    let next = jobs(type_text(&mut pane, "three"));
    assert_eq!(next[0].messages[3].content, "Hello");
    assert_eq!(next[1].messages[3].content, "Bonjour");
    assert_eq!(next[1].messages.len(), 5);
}

#[test]
fn escape_stops_and_a_stopped_answer_is_kept() {
    let mut pane = pane_with_adapter();
    let jobs = jobs(type_text(&mut pane, "go"));
    let id = jobs[0].generation_id;
    pane.message(token(Side::Adapter, id, "partial"));
    assert!(!jobs[0].cancel.load(Ordering::Relaxed));
    pane.key(key(KeyCode::Esc));
    assert!(jobs[0].cancel.load(Ordering::Relaxed));
    assert_eq!(pane.focus, Focus::Input, "the first Esc only stops");
    pane.message(done(Side::Adapter, id, StopReason::Cancelled));
    pane.message(done(Side::Base, id, StopReason::Cancelled));
    assert_eq!(
        pane.chat
            .column(Side::Adapter)
            .turns
            .last()
            .unwrap()
            .content,
        "partial"
    );
    pane.key(key(KeyCode::Esc));
    assert_eq!(pane.focus, Focus::Column(Side::Adapter));
    assert!(!pane.captures_input());
    // Clearing forgets every turn.
    pane.key(key(KeyCode::Char('c')));
    assert!(pane.chat.column(Side::Adapter).turns.is_empty());
}

#[test]
fn a_failed_answer_leaves_the_history_as_it_was() {
    let mut pane = pane_with_adapter();
    let id = jobs(type_text(&mut pane, "go"))[0].generation_id;
    let effects = pane.message(Msg::Done {
        column: Side::Base,
        generation_id: id,
        result: Err("out of memory".into()),
    });
    assert!(
        matches!(&effects[0], Effect::Notify(n) if n.is_error && n.text.contains("out of memory"))
    );
    assert!(pane.chat.column(Side::Base).turns.is_empty());
    assert_eq!(pane.chat.column(Side::Adapter).turns.len(), 1);
}

fn exchange() -> Exchange {
    Exchange {
        conversation: Conversation {
            system: Some("You write FastAPI code.".into()),
            messages: vec![
                Message::new(Role::User, "Make a todo API"),
                Message::new(Role::Assistant, "Here is app.py"),
                Message::new(Role::User, "Add a health check"),
            ],
            tools: None,
        },
        reference: Some("@app.get('/health')".into()),
        source: "fastapi_projects.jsonl:12".into(),
        record: None,
    }
}

#[test]
fn use_sample_fills_history_prompt_and_reference() {
    let mut pane = pane_with_adapter();
    assert_eq!(
        pane.key(key(KeyCode::Char('u'))).len(),
        1,
        "asks the app for the sample"
    );
    pane.message(Msg::UseSample(exchange()));
    assert_eq!(pane.input.text(), "Add a health check");
    assert_eq!(pane.focus, Focus::Input);
    assert!(pane.chat.has_reference());
    assert_eq!(
        pane.visible_sides(),
        [Side::Base, Side::Adapter, Side::Reference]
    );
    let reference = &pane.chat.column(Side::Reference).turns;
    assert_eq!(reference.last().unwrap().content, "@app.get('/health')");
    let jobs = jobs(pane.key(key(KeyCode::Enter)));
    let roles: Vec<Role> = jobs[1].messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::User, Role::Assistant, Role::User]
    );
    assert_eq!(jobs[1].messages[3].content, "Add a health check");
}

#[test]
fn editing_an_answer_appends_the_exchange() {
    let mut pane = pane_with_adapter();
    pane.message(Msg::UseSample(exchange()));
    let id = jobs(pane.key(key(KeyCode::Enter)))[0].generation_id;
    pane.message(token(Side::Adapter, id, "bad answer"));
    pane.message(done(Side::Adapter, id, StopReason::EndOfTurn));
    pane.message(token(Side::Base, id, "base answer"));
    pane.message(done(Side::Base, id, StopReason::EndOfTurn));
    pane.key(key(KeyCode::Esc));
    assert_eq!(pane.focus, Focus::Column(Side::Adapter));
    pane.key(key(KeyCode::Char('e')));
    assert!(pane.captures_input());
    // Replace "bad" with "good".
    pane.key(key(KeyCode::Home));
    for _ in 0..3 {
        pane.key(key(KeyCode::Delete));
    }
    for c in "good".chars() {
        pane.key(key(KeyCode::Char(c)));
    }
    let effects = pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let sample = effects
        .iter()
        .find_map(|e| match e {
            Effect::AppendToDataset(v) => Some(v.chat.clone()),
            _ => None,
        })
        .expect("an append");
    assert_eq!(
        sample,
        json!({"messages": [
            {"role": "system", "content": "You write FastAPI code."},
            {"role": "user", "content": "Make a todo API"},
            {"role": "assistant", "content": "Here is app.py"},
            {"role": "user", "content": "Add a health check"},
            {"role": "assistant", "content": "good answer"},
        ]})
    );
    assert!(pane.overlay.is_none());
    // Edited in place: the next turn builds on the edited answer.
    assert_eq!(last_turn(&pane, Side::Adapter), "good answer");
    // Esc in the editor changes nothing.
    pane.key(key(KeyCode::Char('e')));
    pane.key(key(KeyCode::Char('x')));
    assert!(pane.key(key(KeyCode::Esc)).is_empty());
    assert_eq!(last_turn(&pane, Side::Adapter), "good answer");
}

#[test]
fn picking_an_adapter_sets_it_and_restarts_the_columns() {
    let runs = tempfile::tempdir().unwrap();
    let step = runs.path().join("tiny-1/checkpoints/step-40");
    std::fs::create_dir_all(&step).unwrap();
    std::fs::write(step.join("adapter_config.json"), "{}").unwrap();
    let mut pane = ChatPane::new(runs.path().to_path_buf());
    pane.model_ready(&info(None));
    let id = jobs(type_text(&mut pane, "hi"))[0].generation_id;
    pane.message(done(Side::Base, id, StopReason::EndOfTurn));
    pane.key(key(KeyCode::Esc));
    pane.key(key(KeyCode::Char('a')));
    assert!(pane.captures_input());
    pane.key(key(KeyCode::Down));
    let effects = pane.key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[0], Effect::SetAdapter(Some(p)) if *p == step),
        "{effects:?}"
    );
    assert!(pane.switching);
    let mut ready = info(Some(step.to_str().unwrap()));
    ready.generation = 2;
    pane.model_ready(&ready);
    assert!(!pane.switching);
    assert!(pane.chat.column(Side::Base).turns.is_empty());
    assert_eq!(pane.generating_sides(), [Side::Base, Side::Adapter]);
}

#[test]
fn settings_popup_edits_the_sampling() {
    let mut pane = pane_with_adapter();
    pane.key(key(KeyCode::Char('s')));
    assert!(pane.captures_input());
    for c in "0".chars() {
        pane.key(key(KeyCode::Char(c)));
    }
    pane.key(key(KeyCode::Enter));
    pane.key(key(KeyCode::Esc));
    assert!(!pane.captures_input());
    assert_eq!(pane.settings.temperature, 0.0);
    let jobs = jobs(type_text(&mut pane, "x"));
    assert_eq!(jobs[0].params.sampling.temperature, 0.0);
}

#[test]
fn mouse_focuses_and_scrolls_the_column_under_it() {
    let mut pane = pane_with_adapter();
    let long = (0..60)
        .map(|i| format!("line {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    let id = jobs(type_text(&mut pane, "long"))[0].generation_id;
    pane.message(token(Side::Base, id, &long));
    pane.message(done(Side::Base, id, StopReason::EndOfTurn));
    draw(&pane);
    let base = pane.drawn.get().columns[0];
    let mouse = |kind| MouseEvent {
        kind,
        column: base.x + 2,
        row: base.y + 2,
        modifiers: KeyModifiers::NONE,
    };
    pane.mouse(mouse(MouseEventKind::ScrollUp), Rect::default());
    let view = pane.drawn.get().views[0];
    assert_eq!(
        pane.chat.column(Side::Base).scroll,
        Some(view.total - view.height - 3)
    );
    assert_eq!(pane.chat.column(Side::Adapter).scroll, None);
    pane.mouse(
        mouse(MouseEventKind::Down(MouseButton::Left)),
        Rect::default(),
    );
    assert_eq!(pane.focus, Focus::Column(Side::Base));
    pane.key(key(KeyCode::PageDown));
    assert_eq!(
        pane.chat.column(Side::Base).scroll,
        None,
        "back to following"
    );
}

fn draw(pane: &ChatPane) -> Terminal<TestBackend> {
    crate::tui::panes::testing::draw_pane(pane, 120, 30)
}

#[test]
fn snapshot_side_by_side_with_reference() {
    let mut pane = pane_with_adapter();
    pane.message(Msg::UseSample(exchange()));
    let id = jobs(pane.key(key(KeyCode::Enter)))[0].generation_id;
    pane.message(token(
        Side::Base,
        id,
        "You can add a route that returns a status. This line is long enough that it has to wrap inside the column.",
    ));
    pane.message(done(Side::Base, id, StopReason::EndOfTurn));
    pane.message(token(
        Side::Adapter,
        id,
        "@app.get(\"/health\")\ndef health():\n    return {\"ok\": True}",
    ));
    insta::assert_snapshot!("chat_streaming", draw(&pane).backend());
}

#[test]
fn snapshot_without_adapter_and_settings_popup() {
    let mut pane = ChatPane::new(PathBuf::from("runs"));
    pane.model_ready(&info(None));
    let id = jobs(type_text(&mut pane, "Say hi"))[0].generation_id;
    pane.message(token(Side::Base, id, "Hi there!"));
    pane.message(done(Side::Base, id, StopReason::Cancelled));
    pane.key(key(KeyCode::Esc));
    pane.key(key(KeyCode::Char('s')));
    insta::assert_snapshot!("chat_no_adapter_settings", draw(&pane).backend());
}

/// The text of the drawn screen inside a column, row by row.
fn column_rows(pane: &ChatPane, terminal: &Terminal<TestBackend>, side: Side) -> Vec<String> {
    let rect = pane.drawn.get().columns[side.index()];
    let buffer = terminal.backend().buffer();
    (rect.y + 1..rect.bottom() - 1)
        .map(|y| {
            (rect.x + 1..rect.right() - 1)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

#[test]
fn a_used_sample_reads_from_the_top_until_answers_stream() {
    let mut pane = pane_with_adapter();
    let mut sample = exchange();
    let long: Vec<String> = (0..80).map(|i| format!("reference line {i}")).collect();
    sample.reference = Some(long.join("\n"));
    pane.message(Msg::UseSample(sample));
    let terminal = draw(&pane);
    for side in Side::ALL {
        let rows = column_rows(&pane, &terminal, side);
        assert_eq!(rows[0], "system", "{side:?} opens at the top: {rows:#?}");
    }
    let id = jobs(pane.key(key(KeyCode::Enter)))[0].generation_id;
    assert_eq!(
        pane.chat.column(Side::Base).scroll,
        None,
        "follows the answer"
    );
    assert_eq!(pane.chat.column(Side::Adapter).scroll, None);
    assert_eq!(pane.chat.column(Side::Reference).scroll, Some(0));
    let answer: Vec<String> = (0..40).map(|i| format!("answer line {i}")).collect();
    pane.message(token(Side::Base, id, &answer.join("\n")));
    let terminal = draw(&pane);
    let base = column_rows(&pane, &terminal, Side::Base);
    assert_eq!(base.last().unwrap(), "answer line 39▌", "{base:#?}");
    let reference = column_rows(&pane, &terminal, Side::Reference);
    assert_eq!(reference[0], "system");
}

#[test]
fn runs_of_blank_lines_in_an_answer_collapse_when_drawn() {
    let mut pane = pane_with_adapter();
    let id = jobs(type_text(&mut pane, "Say hi"))[0].generation_id;
    let rambling = format!("Hi\n\n\nthere{}x{}", "\n".repeat(301), "\n \n\t\n\n");
    pane.message(token(Side::Base, id, &rambling));
    pane.message(done(Side::Base, id, StopReason::MaxTokens));
    let terminal = draw(&pane);
    let rows = column_rows(&pane, &terminal, Side::Base);
    assert_eq!(
        rows[..11],
        [
            "you",
            "Say hi",
            "",
            "base",
            "Hi",
            "",
            "",
            "there",
            "⋯ 300 blank lines",
            "x",
            "⋯ 4 blank lines",
        ],
        "{rows:#?}"
    );
    // Only the drawing changed: the answer is kept byte for byte.
    assert_eq!(pane.chat.last_answer(Side::Base), Some(rambling.as_str()));
    let view = pane.drawn.get().views[Side::Base.index()];
    assert_eq!(view.total, 11);
}

fn last_turn(pane: &ChatPane, side: Side) -> &str {
    &pane.chat.column(side).turns.last().unwrap().content
}

#[test]
fn a_failed_load_says_so_in_both_columns() {
    let mut pane = ChatPane::new(PathBuf::from("runs"));
    pane.model_failed("/nope", "model `/nope` is not a local directory");
    let terminal = draw(&pane);
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("model failed to load"), "{screen}");
    let adapter = column_rows(&pane, &terminal, Side::Adapter).join(" ");
    assert!(
        adapter.contains("press m") && !adapter.contains("loading"),
        "{adapter}"
    );
}
