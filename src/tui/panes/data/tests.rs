//! Key presses into state, and snapshots of the pane drawn with fixed data.

use super::state::{Focus, PromptKind};
use super::*;
use crate::tui::action::Appended;
use crate::tui::theme::Theme;
use crossterm::event::{KeyCode, KeyModifiers, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::{Duration, Instant};

const CHAT: &str = r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is Rust?"}, {"role": "assistant", "content": "A systems programming language with memory safety."}]}"#;
const CODE: &str = r##"{"prompt": "Build a hello API", "context": {"domain": "demo", "tech_stack": ["python", "fastapi"]}, "output": {"files": {"app/main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get(\"/\")\ndef hello():\n    return {\"hello\": \"world\"}\n", "README.md": "# Hello\n\nRun it with uvicorn.\n", "tests/test_main.py": "def test_ok():\n    assert True\n"}}}"##;
const BROKEN: &str = r#"{"messages": [{"role": "user", "content": "unterminated"#;
const EMPTY_REPLY: &str = r#"{"messages": [{"role": "user", "content": "Say nothing at all please"}, {"role": "assistant", "content": ""}]}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    pane: DataPane,
}

/// The pane on `path`, once its opening validation has come in.
pub(super) fn open_validated(path: &std::path::Path) -> DataPane {
    let theme = &Theme::builtin()[0];
    let mut pane =
        DataPane::open(path, Arc::new(Highlighter::default()), theme.syntax.clone()).unwrap();
    let start = Instant::now();
    while !pane.findings.ready {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "validation hangs"
        );
        pane.tick();
        std::thread::sleep(Duration::from_millis(5));
    }
    pane
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.jsonl");
    let text = [CHAT, CODE, BROKEN, EMPTY_REPLY].join("\n") + "\n";
    std::fs::write(&path, text).unwrap();
    let pane = open_validated(&path);
    Fixture {
        _dir: dir,
        path,
        pane,
    }
}

/// Carries out the jobs that need no model, feeding their reports back.
pub(super) fn run_jobs(pane: &mut DataPane, effects: Vec<Effect>) -> Vec<Effect> {
    let mut pending = effects;
    let mut rest = Vec::new();
    while let Some(effect) = pending.pop() {
        let msgs = match effect {
            Effect::Data(Job::Validate {
                generation,
                store,
                settings,
            }) => vec![Msg::Validated {
                generation,
                result: worker::validate_all(&store.0, settings.as_ref()),
            }],
            Effect::Data(Job::Filter {
                id,
                store,
                criteria,
                flagged,
                cancel,
            }) => {
                let got = std::sync::Mutex::new(Vec::new());
                worker::filter(id, &store.0, &criteria, flagged, &cancel, &|m| {
                    got.lock().unwrap().push(m);
                    true
                });
                got.into_inner().unwrap()
            }
            other => {
                rest.push(other);
                continue;
            }
        };
        for msg in msgs {
            pending.extend(pane.message(msg));
        }
    }
    rest
}

pub(super) fn key(pane: &mut DataPane, code: KeyCode) -> Vec<Effect> {
    let effects = pane.key(KeyEvent::new(code, KeyModifiers::NONE));
    run_jobs(pane, effects)
}

fn chars(pane: &mut DataPane, text: &str) {
    for c in text.chars() {
        key(pane, KeyCode::Char(c));
    }
}

pub(super) fn draw(pane: &DataPane) -> Terminal<TestBackend> {
    crate::tui::panes::testing::draw_pane(pane, 100, 30)
}

fn selected(pane: &DataPane) -> usize {
    pane.selected.as_ref().unwrap().record
}

#[test]
fn validation_at_open_finds_each_problem() {
    let f = fixture();
    let kinds: Vec<(usize, &str)> = f
        .pane
        .findings
        .items()
        .iter()
        .map(|i| (i.record, i.finding.kind.name()))
        .collect();
    assert!(kinds.contains(&(2, "invalid_json")), "{kinds:?}");
    assert!(kinds.contains(&(3, "empty_reply")), "{kinds:?}");
    assert!(f.pane.findings.counts().0 >= 2);
    assert_eq!(f.pane.file_format, Some(Format::Chat));
}

#[test]
fn moving_selects_samples_and_files() {
    let mut f = fixture();
    let pane = &mut f.pane;
    draw(pane);
    assert_eq!(selected(pane), 0);
    key(pane, KeyCode::Char('j'));
    assert_eq!(selected(pane), 1);
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(sel.files.len(), 3);
    assert_eq!(sel.tree[0].label, "app/");
    let first_file = sel.file.unwrap();
    assert_eq!(sel.files[first_file].path, "app/main.py");
    assert!(
        !sel.code.highlighted.is_empty(),
        "code is highlighted on selection"
    );
    key(pane, KeyCode::Tab);
    assert_eq!(pane.focus, Focus::Sample);
    // prompt, context.domain, the tech_stack list, then the files.
    for _ in 0..4 {
        key(pane, KeyCode::Char('j'));
    }
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(sel.files[sel.file.unwrap()].path, "tests/test_main.py");
    key(pane, KeyCode::Tab);
    assert_eq!(pane.focus, Focus::Findings);
    key(pane, KeyCode::BackTab);
    key(pane, KeyCode::BackTab);
    key(pane, KeyCode::End);
    assert_eq!(selected(pane), 3);
    key(pane, KeyCode::Home);
    assert_eq!(selected(pane), 0);
}

#[test]
fn text_format_and_severity_filters() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('/'));
    assert!(pane.captures_input());
    chars(pane, "HELLO api");
    assert_eq!(pane.prompt.as_ref().unwrap().line.text(), "HELLO api");
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    key(pane, KeyCode::Backspace);
    chars(pane, "hello api");
    key(pane, KeyCode::Enter);
    assert!(!pane.captures_input());
    assert_eq!(pane.rows, list::Rows::Matches(vec![1]));
    assert_eq!(selected(pane), 1);
    key(pane, KeyCode::Esc);
    assert_eq!(pane.rows, list::Rows::All);
    key(pane, KeyCode::Char('f'));
    assert_eq!(pane.filter.criteria.format, Some(Format::Chat));
    assert_eq!(pane.rows, list::Rows::Matches(vec![0, 3]));
    key(pane, KeyCode::Char('f'));
    assert_eq!(pane.rows, list::Rows::Matches(vec![1]));
    key(pane, KeyCode::Char('f'));
    assert_eq!(pane.rows, list::Rows::All);
    key(pane, KeyCode::Char('s'));
    assert_eq!(pane.rows, list::Rows::Matches(vec![2, 3]));
    assert_eq!(selected(pane), 2);
}

#[test]
fn jump_to_line_and_to_a_finding() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char(':'));
    assert_eq!(pane.prompt.as_ref().unwrap().kind, PromptKind::Jump);
    chars(pane, "3x");
    key(pane, KeyCode::Enter);
    assert_eq!(selected(pane), 2);
    key(pane, KeyCode::Char('g'));
    chars(pane, "1");
    key(pane, KeyCode::Enter);
    assert_eq!(selected(pane), 0);
    key(pane, KeyCode::Tab);
    key(pane, KeyCode::Tab);
    assert_eq!(pane.focus, Focus::Findings);
    key(pane, KeyCode::End);
    key(pane, KeyCode::Enter);
    assert_eq!(selected(pane), 3);
    // The empty reply's field is under the sample's cursor.
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(
        sel.fields[sel.item].label,
        "messages[1].content",
        "{:?}",
        pane.findings.of(3)
    );
}

#[test]
fn edit_a_field_undo_and_save() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Tab);
    key(pane, KeyCode::Char('j'));
    key(pane, KeyCode::Char('e'));
    assert!(pane.captures_input());
    assert_eq!(pane.editor.as_ref().unwrap().label, "messages[1].content");
    key(pane, KeyCode::End);
    chars(pane, " Briefly");
    pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    assert!(!pane.captures_input());
    assert!(pane.is_dirty());
    let value = pane.store.value(0).unwrap().unwrap();
    assert_eq!(value["messages"][1]["content"], "What is Rust? Briefly");
    assert_eq!(pane.selected.as_ref().unwrap().item, 1, "cursor kept");
    key(pane, KeyCode::Char('u'));
    assert_eq!(pane.store.raw(0).unwrap(), CHAT.as_bytes());
    // Edit again and save: the other lines stay byte-identical.
    key(pane, KeyCode::Char('e'));
    chars(pane, "Q: ");
    pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let effects = pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    run_jobs(pane, effects);
    assert!(!pane.is_dirty());
    let text = std::fs::read_to_string(&f.path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("Q: What is Rust?"));
    assert_eq!(lines[1..], [CODE, BROKEN, EMPTY_REPLY]);
}

#[test]
fn a_bad_json_edit_is_refused_and_kept() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('E'));
    key(pane, KeyCode::Char('x'));
    pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let editor = pane.editor.as_ref().expect("editor stays open");
    assert!(editor.error.as_ref().unwrap().contains("not valid JSON"));
    assert!(editor.text().starts_with("x{"));
    pane.key(KeyEvent::new(KeyCode::Char('g'), KeyModifiers::CONTROL));
    assert!(pane.editor.is_none());
    assert!(!pane.is_dirty());
}

#[test]
fn fixing_a_broken_record() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('j'));
    key(pane, KeyCode::Char('j'));
    let sel = pane.selected.as_ref().unwrap();
    assert!(sel.syntax.is_some());
    assert_eq!(sel.raw, BROKEN);
    key(pane, KeyCode::Char('e'));
    assert_eq!(pane.editor.as_ref().unwrap().target, editor::Target::Record);
    key(pane, KeyCode::End);
    chars(pane, "\"}]}");
    pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    assert!(pane.editor.is_none());
    assert!(pane.selected.as_ref().unwrap().syntax.is_none());
    assert!(
        pane.findings
            .of(2)
            .iter()
            .all(|i| i.finding.kind.name() != "invalid_json")
    );
}

#[test]
fn add_duplicate_delete_and_undo() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('d'));
    assert_eq!(pane.store.len(), 5);
    assert_eq!(selected(pane), 1);
    assert_eq!(pane.store.raw(1).unwrap(), CHAT.as_bytes());
    // Findings of later records moved down with them.
    assert!(
        pane.findings
            .of(3)
            .iter()
            .any(|i| i.finding.kind.name() == "invalid_json")
    );
    key(pane, KeyCode::Char('x'));
    assert_eq!(pane.store.len(), 4);
    assert_eq!(pane.store.raw(1).unwrap(), CODE.as_bytes());
    key(pane, KeyCode::Char('a'));
    assert!(pane.editor.is_some(), "a new sample opens in the editor");
    key(pane, KeyCode::Esc);
    assert_eq!(pane.store.len(), 5);
    let added = pane.store.value(2).unwrap().unwrap();
    assert_eq!(added["messages"][0]["role"], "user");
    key(pane, KeyCode::Char('u'));
    key(pane, KeyCode::Char('u'));
    key(pane, KeyCode::Char('u'));
    assert_eq!(pane.store.len(), 4);
    let all: Vec<Vec<u8>> = (0..4).map(|i| pane.store.raw(i).unwrap()).collect();
    let expected: Vec<Vec<u8>> = [CHAT, CODE, BROKEN, EMPTY_REPLY]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    assert_eq!(all, expected);
}

#[test]
fn appended_chat_becomes_a_record_and_exchange_goes_to_chat() {
    let mut f = fixture();
    let pane = &mut f.pane;
    let exchange = pane.selected_exchange().unwrap();
    assert_eq!(exchange.source, "data.jsonl:1");
    assert_eq!(exchange.conversation.system.as_deref(), Some("Be brief."));
    assert_eq!(exchange.conversation.messages.len(), 1);
    assert_eq!(
        exchange.reference.as_deref(),
        Some("A systems programming language with memory safety.")
    );
    let chat = serde_json::json!({"messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there, friend."}]});
    let effects = pane.message(Msg::Append(Appended { chat, origin: None }));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Notify(n) if !n.is_error))
    );
    assert_eq!(pane.store.len(), 5);
    assert_eq!(selected(pane), 4);
    let v = pane.store.value(4).unwrap().unwrap();
    assert_eq!(v["messages"][1]["content"], "Hello there, friend.");
    let effects = pane.message(Msg::Append(Appended {
        chat: serde_json::json!({"nope": 1}),
        origin: None,
    }));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Notify(n) if n.is_error))
    );
}

#[test]
fn mouse_clicks_select_rows_and_files() {
    let mut f = fixture();
    let pane = &mut f.pane;
    draw(pane);
    let areas = pane.areas.get();
    let click = crate::tui::panes::testing::left_click;
    pane.mouse(click(areas.list.x + 3, areas.list.y + 1), Rect::default());
    assert_eq!(selected(pane), 1);
    draw(pane);
    let tree = pane.areas.get().tree;
    // Rows: app/, main.py, tests/, test_main.py, README.md
    pane.mouse(click(tree.x + 1, tree.y + 4), Rect::default());
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(sel.files[sel.file.unwrap()].path, "README.md");
    assert_eq!(pane.focus, Focus::Sample);
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: areas.list.x + 3,
        row: areas.list.y + 1,
        modifiers: KeyModifiers::NONE,
    };
    pane.mouse(wheel, Rect::default());
    assert_eq!(selected(pane), 3);
}

#[test]
fn token_view_under_the_tiny_models_template() {
    let dir = tempfile::tempdir().unwrap();
    crate::model::tiny::init_tiny(dir.path(), 0, &Default::default()).unwrap();
    let tokenizer = crate::model::tokenize::ChatTokenizer::load_dir(dir.path()).unwrap();
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('t'));
    let info = ModelInfo {
        name: "tiny".into(),
        adapter: None,
        precision: "f32 · cpu".into(),
        generation: 1,
    };
    let effects = pane.model_ready(&info);
    let mut jobs = 0;
    for effect in effects {
        if let Effect::Data(Job::Tokens { seq, sample, .. }) = effect {
            jobs += 1;
            let result = worker::encode(&tokenizer, &sample);
            pane.message(Msg::Tokens { seq, result });
        }
    }
    assert_eq!(jobs, 1);
    let tokens = pane
        .tokens
        .for_seq(pane.seq)
        .unwrap()
        .as_ref()
        .unwrap()
        .clone();
    assert!(tokens.trained.iter().any(|t| *t) && tokens.trained.iter().any(|t| !*t));
    let text: String = tokens.pieces.concat();
    assert!(text.contains("<|im_start|>assistant"), "{text}");
    for _ in 0..6 {
        key(pane, KeyCode::Char('-'));
    }
    assert_eq!(pane.tokens.max_seq_len, 32);
    insta::assert_snapshot!("token_view", draw(pane).backend());
    // Per-file token counts for the multi-file sample.
    key(pane, KeyCode::Char('t'));
    let effects = key(pane, KeyCode::Char('j'));
    let Some(Effect::Data(Job::FileTokens { seq, contents, .. })) = effects.into_iter().next()
    else {
        panic!("the multi-file sample asks for its files' token counts");
    };
    let result = worker::count_files(&tokenizer, &contents);
    pane.message(Msg::FileTokens { seq, result });
    let counts = pane.selected.as_ref().unwrap().file_tokens.clone().unwrap();
    assert!(counts.iter().all(|&n| n.is_some_and(|n| n > 0)));
}

#[test]
fn snapshot_chat_sample() {
    let f = fixture();
    insta::assert_snapshot!("chat_sample", draw(&f.pane).backend());
}

#[test]
fn snapshot_multifile_sample() {
    let mut f = fixture();
    key(&mut f.pane, KeyCode::Char('j'));
    key(&mut f.pane, KeyCode::Tab);
    insta::assert_snapshot!("multifile_sample", draw(&f.pane).backend());
}

#[test]
fn snapshot_broken_record_and_filter_prompt() {
    let mut f = fixture();
    key(&mut f.pane, KeyCode::Char('j'));
    key(&mut f.pane, KeyCode::Char('j'));
    key(&mut f.pane, KeyCode::Char('/'));
    chars(&mut f.pane, "rust");
    insta::assert_snapshot!("broken_record", draw(&f.pane).backend());
}

#[test]
fn snapshot_editor() {
    let mut f = fixture();
    key(&mut f.pane, KeyCode::Char('E'));
    insta::assert_snapshot!("editor", draw(&f.pane).backend());
}

#[test]
fn editing_a_file_of_a_multifile_sample() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('j'));
    key(pane, KeyCode::Tab);
    key(pane, KeyCode::End);
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(sel.files[sel.file.unwrap()].path, "README.md");
    key(pane, KeyCode::Char('e'));
    assert_eq!(pane.editor.as_ref().unwrap().label, "README.md");
    chars(pane, "New ");
    pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let v = pane.store.value(1).unwrap().unwrap();
    assert!(
        v["output"]["files"]["README.md"]
            .as_str()
            .unwrap()
            .starts_with("New # Hello")
    );
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(
        sel.files[sel.file.unwrap()].path,
        "README.md",
        "the file stays on show"
    );
    assert!(
        sel.code.highlighted[0]
            .to_string()
            .starts_with("New # Hello")
    );
    // Paging scrolls the code, but not past its end.
    draw(pane);
    for _ in 0..10 {
        key(pane, KeyCode::PageDown);
    }
    assert!(pane.selected.as_ref().unwrap().scroll <= 3);
}

/// The text of the drawn screen, row by row.
pub(super) fn screen(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect()
        })
        .collect()
}

#[test]
fn stepping_through_a_multifile_samples_fields_marks_and_scrolls_them() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('j'));
    key(pane, KeyCode::Tab);
    draw(pane);
    let fields = pane.areas.get().fields;
    assert!(fields.height >= 3, "{fields:?}");
    // prompt, context.domain, the tech_stack list: three lines each, more
    // than the fields' share of the height.
    for _ in 0..2 {
        key(pane, KeyCode::Char('j'));
        draw(pane);
    }
    let sel = pane.selected.as_ref().unwrap();
    assert!(sel.field_scroll > 0, "the fields scrolled");
    let terminal = draw(pane);
    let rows = screen(&terminal);
    let marked: Vec<&String> = rows.iter().filter(|r| r.contains('▸')).collect();
    assert_eq!(marked.len(), 1, "{rows:#?}");
    assert!(marked[0].contains("▸field · context.tech_stack · 2 items"));
    // The marked header is inside the fields' area.
    let at = rows.iter().position(|r| r.contains('▸')).unwrap() as u16;
    assert!(
        at >= fields.y && at < fields.y + fields.height,
        "{at} {fields:?}"
    );
    let cell = &terminal.backend().buffer()[(fields.x + fields.width - 1, at)];
    assert_eq!(
        cell.bg,
        Theme::builtin()[0].selection,
        "the bar spans the width"
    );
    insta::assert_snapshot!("multifile_fields_scrolled", terminal.backend());
    // Back up: the first field scrolls into view again.
    key(pane, KeyCode::Home);
    assert_eq!(pane.selected.as_ref().unwrap().field_scroll, 0);
    // Onto the files: the fields stay, the cursor leaves them.
    key(pane, KeyCode::End);
    let rows = screen(&draw(pane));
    assert!(!rows.iter().any(|r| r.contains('▸')));
}

#[test]
fn the_wheel_scrolls_a_multifile_samples_fields() {
    let mut f = fixture();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('j'));
    draw(pane);
    let fields = pane.areas.get().fields;
    let wheel = |kind| MouseEvent {
        kind,
        column: fields.x + 1,
        row: fields.y + 1,
        modifiers: KeyModifiers::NONE,
    };
    pane.mouse(wheel(MouseEventKind::ScrollDown), Rect::default());
    assert_eq!(pane.selected.as_ref().unwrap().field_scroll, 3);
    for _ in 0..10 {
        pane.mouse(wheel(MouseEventKind::ScrollDown), Rect::default());
    }
    // Three fields of three lines, the last screenful.
    let max = 9 - fields.height;
    assert_eq!(pane.selected.as_ref().unwrap().field_scroll, max);
    assert_eq!(selected(pane), 1, "the list did not move");
}

#[test]
fn the_first_file_shown_has_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("code.jsonl");
    let record = r##"{"prompt": "p", "output": {"files": {"app/__init__.py": "", "app/api.py": "x = 1\n", "README.md": "# r\n"}}}"##;
    std::fs::write(&path, format!("{record}\n")).unwrap();
    let theme = &Theme::builtin()[0];
    let pane = DataPane::open(
        &path,
        Arc::new(Highlighter::default()),
        theme.syntax.clone(),
    )
    .unwrap();
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(sel.files[sel.file.unwrap()].path, "app/api.py");
}

#[test]
fn the_findings_box_is_one_line_when_there_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clean.jsonl");
    let other = CHAT.replace("Rust", "Go");
    std::fs::write(&path, format!("{CHAT}\n{other}\n")).unwrap();
    let pane = open_validated(&path);
    assert_eq!(pane.findings.len(), 0, "{:?}", pane.findings.items());
    let rows = screen(&draw(&pane));
    assert_eq!(pane.areas.get().findings.height, 1);
    assert!(rows[28].contains("no findings"), "{rows:#?}");
    // With findings, the box keeps its room.
    let f = fixture();
    draw(&f.pane);
    assert_eq!(f.pane.areas.get().findings.height, 6);
}

#[path = "conflict_tests.rs"]
mod conflict;
