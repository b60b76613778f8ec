//! Multi-file samples in the pane: lists folded to one field, the first
//! file shown, syntax errors marked and jumped to, code scrolled sideways.

use super::code_view::COLUMN_STEP;
use super::sample_view::Item;
use super::state::Focus;
use super::tests::{draw, key, open_validated, screen};
use super::*;
use crossterm::event::{KeyCode, KeyModifiers, MouseEventKind};
use serde_json::json;

fn pane_over(dir: &tempfile::TempDir, records: &[serde_json::Value]) -> DataPane {
    let path = dir.path().join("code.jsonl");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).unwrap();
    open_validated(&path)
}

fn selected(pane: &DataPane) -> &sample_view::Selected {
    pane.selected.as_ref().unwrap()
}

fn shown_path(pane: &DataPane) -> String {
    let sel = selected(pane);
    sel.files[sel.file.unwrap()].path.clone()
}

#[test]
fn a_fastapi_sample_reaches_its_files_in_a_few_keys() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sample-data/fastapi_projects.jsonl"
    );
    let mut pane = open_validated(std::path::Path::new(path));
    let sel = selected(&pane);
    let labels: Vec<&str> = sel.fields.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "id",
            "prompt",
            "context.domain",
            "context.tech_stack",
            "context.constraints",
            "context.task",
            "expected_architecture"
        ]
    );
    let architecture = &sel.fields[6];
    assert_eq!(architecture.list, Some(17));
    assert!(
        architecture
            .text
            .starts_with("app/__init__.py, app/main.py, app/config.py")
    );
    // The top of the tree: `app/routers/__init__.py` is empty.
    assert_eq!(shown_path(&pane), "app/routers/moderation.py");
    draw(&pane);
    key(&mut pane, KeyCode::Tab);
    for _ in 0..6 {
        key(&mut pane, KeyCode::Char('j'));
    }
    assert_eq!(selected(&pane).current(), Some(Item::Field(6)));
    let terminal = draw(&pane);
    let rows = screen(&terminal).join("\n");
    assert!(
        rows.contains("▸field · expected_architecture · 17 items"),
        "{rows}"
    );
    insta::assert_snapshot!("fastapi_sample", terminal.backend());
    key(&mut pane, KeyCode::Char('j'));
    // The top of the tree: `app/routers/__init__.py`.
    assert_eq!(selected(&pane).current(), Some(Item::File(6)));
}

#[test]
fn a_list_is_edited_one_item_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let record =
        json!({"prompt": "p", "tags": ["a", "b c"], "output": {"files": {"x.py": "x = 1\n"}}});
    let mut pane = pane_over(&dir, &[record]);
    key(&mut pane, KeyCode::Tab);
    key(&mut pane, KeyCode::Char('j'));
    key(&mut pane, KeyCode::Char('e'));
    let editor = pane.editor.as_ref().unwrap();
    assert_eq!(editor.label, "tags (one item per line)");
    assert_eq!(editor.text(), "a\nb c");
    key(&mut pane, KeyCode::Down);
    key(&mut pane, KeyCode::End);
    key(&mut pane, KeyCode::Enter);
    key(&mut pane, KeyCode::Char('d'));
    // A stray blank line is no item.
    key(&mut pane, KeyCode::Enter);
    pane.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let value = pane.store.value(0).unwrap().unwrap();
    assert_eq!(value["tags"], json!(["a", "b c", "d"]));
    assert_eq!(value["prompt"], "p");
    // Lists with multi-line or empty items stay one field per item.
    let kept = json!({"prompt": "p", "notes": ["one\ntwo", "x"], "empty": ["", "y"]});
    let pane = pane_over(&dir, &[kept]);
    let labels: Vec<String> = selected(&pane)
        .fields
        .iter()
        .map(|f| f.label.clone())
        .collect();
    assert_eq!(
        labels,
        ["prompt", "notes[0]", "notes[1]", "empty[0]", "empty[1]"]
    );
}

#[test]
fn a_files_syntax_error_is_marked_and_findings_jump_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let broken = format!("{}def f(:\n    pass\n", "x = 1\n".repeat(40));
    let record = json!({"prompt": "p", "output": {"files": {
        "app/api.py": "y = 2\n",
        "app/broken.py": broken,
    }}});
    let mut pane = pane_over(&dir, &[record]);
    draw(&pane);
    assert_eq!(shown_path(&pane), "app/api.py");
    // From the findings, Enter shows the file at its error.
    let at = pane
        .findings
        .items()
        .iter()
        .position(|i| i.finding.kind.name() == "syntax_error")
        .expect("validation finds the error");
    pane.focus = Focus::Findings;
    pane.findings_cursor.pos = at;
    key(&mut pane, KeyCode::Enter);
    assert_eq!(shown_path(&pane), "app/broken.py");
    let sel = selected(&pane);
    assert_eq!(sel.code.error.as_ref().unwrap().line, 41);
    let rows = screen(&draw(&pane));
    assert!(
        rows.iter().any(|r| r.contains("│✗ line 41, column 7")),
        "{rows:#?}"
    );
    assert!(rows.iter().any(|r| r.contains(" 41 def f(:")), "{rows:#?}");
    // Choosing the file in the tree scrolls to the error too.
    key(&mut pane, KeyCode::Tab);
    pane.choose_item(Item::File(0));
    assert_eq!(selected(&pane).scroll, 0);
    pane.choose_item(Item::File(1));
    assert!(selected(&pane).scroll > 0);
    let rows = screen(&draw(&pane));
    assert!(rows.iter().any(|r| r.contains(" 41 def f(:")), "{rows:#?}");
}

#[test]
fn long_code_lines_scroll_sideways_with_h_and_l() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("x = \"{}\"\n", "abcdefghij".repeat(20));
    let record = json!({"prompt": "p", "output": {"files": {"app/long.py": long}}});
    let mut pane = pane_over(&dir, &[record]);
    draw(&pane);
    // The list has focus: l does not scroll the code.
    key(&mut pane, KeyCode::Char('l'));
    assert_eq!(selected(&pane).code.column, 0);
    let rows = screen(&draw(&pane)).join("\n");
    assert!(rows.contains("app/long.py · cols 1–26/206"), "{rows}");
    key(&mut pane, KeyCode::Tab);
    key(&mut pane, KeyCode::Char('l'));
    key(&mut pane, KeyCode::Right);
    assert_eq!(selected(&pane).code.column, 16);
    let rows = screen(&draw(&pane)).join("\n");
    assert!(rows.contains("app/long.py · cols 17–42/206"), "{rows}");
    assert!(rows.contains(&format!("  1 {}", &long[16..42])), "{rows}");
    key(&mut pane, KeyCode::Char('h'));
    key(&mut pane, KeyCode::Left);
    key(&mut pane, KeyCode::Left);
    assert_eq!(selected(&pane).code.column, 0);
    // A sideways wheel over the code scrolls it too.
    let code = pane.areas.get().content;
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollRight,
        column: code.x + 1,
        row: code.y + 1,
        modifiers: KeyModifiers::NONE,
    };
    pane.mouse(wheel, Rect::default());
    assert_eq!(selected(&pane).code.column, COLUMN_STEP);
}
