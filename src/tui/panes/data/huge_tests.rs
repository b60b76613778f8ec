//! Records too large to display whole: the views keep and draw a bounded
//! part, say so, and never lose the rest.

use super::bounds::{EDIT_BYTES, FIELD_BYTES, FILE_BYTES, HIGHLIGHT_LINES, TOKEN_BYTES};
use super::tests::{key, open_validated, screen};
use super::*;
use crate::tui::theme::Theme;
use crossterm::event::KeyCode;
use serde_json::json;

/// A file whose first record is `huge`, then a small chat sample.
fn pane_over(dir: &tempfile::TempDir, huge: &serde_json::Value) -> DataPane {
    let path = dir.path().join("huge.jsonl");
    let small = json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]});
    std::fs::write(&path, format!("{huge}\n{small}\n")).unwrap();
    open_validated(&path)
}

/// The screen, wide enough for titles and notices.
fn text_of(pane: &DataPane) -> String {
    screen(&crate::tui::panes::testing::draw_pane(pane, 200, 40)).join("\n")
}

fn model_ready(pane: &mut DataPane) -> Vec<Effect> {
    pane.model_ready(&ModelInfo {
        name: "tiny".into(),
        adapter: None,
        precision: "f32 · cpu".into(),
        generation: 1,
    })
}

#[test]
fn a_huge_message_is_shown_in_part_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let message = "The quick brown fox. ".repeat(150_000);
    let record = json!({"messages": [
        {"role": "user", "content": message},
        {"role": "assistant", "content": "Noted."}]});
    let pane = pane_over(&dir, &record);
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(sel.fields[0].text.len(), FIELD_BYTES);
    assert_eq!(sel.fields[0].len, message.len());
    assert_eq!(sel.fields[1].text, "Noted.");
    let shown = text_of(&pane);
    assert!(
        shown.contains("record too large to display whole (3.2 MB)"),
        "{shown}"
    );
    assert!(shown.contains("[3.2 MB] The quick brown fox."), "{shown}");
    // A frame builds the lines on screen, not the field's thousands.
    let theme = &Theme::builtin()[0];
    let lines = sample_lines::field_lines(sel, 80, false, theme, 3000, 20);
    assert_eq!(lines.len(), 20);
    // The end of the shown part says how much more there is.
    let rows = sample_view::field_rows(&sel.fields[0], 80);
    let tail = sample_lines::field_lines(sel, 80, false, theme, rows, 1);
    assert_eq!(tail[0].to_string(), "… 2.9 MB more not shown");
}

#[test]
fn editing_a_field_shown_in_part_edits_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let message = "word ".repeat(2 * FIELD_BYTES);
    let record = json!({"text": message});
    let mut pane = pane_over(&dir, &record);
    key(&mut pane, KeyCode::Tab);
    key(&mut pane, KeyCode::Char('e'));
    let editor = pane.editor.as_ref().expect("the editor opens");
    assert_eq!(editor.text(), message);
    key(&mut pane, KeyCode::Esc);
    assert!(!pane.is_dirty(), "nothing changed, nothing to save");
}

#[test]
fn a_text_larger_than_the_editor_takes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let record = json!({"text": "y".repeat(EDIT_BYTES + 1)});
    let mut pane = pane_over(&dir, &record);
    key(&mut pane, KeyCode::Tab);
    let effects = key(&mut pane, KeyCode::Char('e'));
    assert!(pane.editor.is_none());
    let said = format!("{effects:?}");
    assert!(
        said.contains("too large to edit here (8.0 MB; the editor takes up to 8.0 MB)"),
        "{said}"
    );
}

#[test]
fn a_huge_file_is_coloured_in_part_and_counted_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let code = "def f(x):\n    return x\n".repeat(150_000);
    let record = json!({"prompt": "p", "output": {"files": {
        "app/main.py": code, "app/util.py": "X = 1\n"}}});
    let mut pane = pane_over(&dir, &record);
    let sel = pane.selected.as_ref().unwrap();
    assert_eq!(sel.files[sel.file.unwrap()].path, "app/main.py");
    assert_eq!(sel.code.highlighted.len(), HIGHLIGHT_LINES);
    assert_eq!(sel.files[0].content.len(), FILE_BYTES);
    let shown = text_of(&pane);
    assert!(shown.contains("first 1.0 MB of 3.5 MB"), "{shown}");
    // The files that fit the budget are counted; the huge one is not.
    key(&mut pane, KeyCode::Char('t'));
    let effects = model_ready(&mut pane);
    let mut file_jobs = 0;
    for effect in effects {
        match effect {
            Effect::Data(Job::FileTokens { contents, .. }) => {
                file_jobs += 1;
                let sizes: Vec<Option<usize>> = contents
                    .iter()
                    .map(|c| c.as_ref().map(String::len))
                    .collect();
                assert_eq!(sizes, vec![None, Some(6)]);
            }
            Effect::Data(Job::Tokens { .. }) => panic!("the record is over {TOKEN_BYTES} bytes"),
            _ => {}
        }
    }
    assert_eq!(file_jobs, 1);
    let shown = text_of(&pane);
    assert!(
        shown.contains("the token view takes records up to"),
        "{shown}"
    );
}
