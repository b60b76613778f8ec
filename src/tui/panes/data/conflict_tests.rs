//! Saving over a file another program changed, or a read-only one: the
//! question, each answer, and the watch on the file.

use super::*;
use crate::tui::panes::data::conflict::Ask;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;

const A: &str = r#"{"text": "first sample"}"#;
const B: &str = r#"{"text": "second sample"}"#;
const MINE: &str = r#"{"text": "edited here"}"#;
const THEIRS: &str = r#"{"text": "appended by another program"}"#;

fn opened() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.jsonl");
    fs::write(&path, format!("{A}\n{B}\n")).unwrap();
    let pane = open_validated(&path);
    Fixture {
        _dir: dir,
        path,
        pane,
    }
}

fn edit_first(pane: &mut DataPane) {
    let effects = pane.perform(history::Op::Set {
        at: 0,
        text: MINE.into(),
    });
    run_jobs(pane, effects);
    assert!(pane.is_dirty());
}

fn append_theirs(path: &std::path::Path) {
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    writeln!(file, "{THEIRS}").unwrap();
}

/// A pending edit, a line appended by another program, and `w`: the
/// question is open.
fn asked_after_an_append() -> Fixture {
    let mut f = opened();
    edit_first(&mut f.pane);
    append_theirs(&f.path);
    key(&mut f.pane, KeyCode::Char('w'));
    f
}

fn notices(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some(n.text.clone()),
            _ => None,
        })
        .collect()
}

fn text_on_screen(pane: &DataPane) -> String {
    screen(&draw(pane)).join("\n")
}

#[test]
fn a_save_over_an_outside_change_asks_and_reload_keeps_both() {
    let mut f = opened();
    let pane = &mut f.pane;
    edit_first(pane);
    append_theirs(&f.path);
    let on_disk = fs::read_to_string(&f.path).unwrap();

    key(pane, KeyCode::Char('w'));
    assert!(matches!(
        pane.watch.ask,
        Some(Ask::Changed { pending: 1, .. })
    ));
    assert!(pane.captures_input());
    assert_eq!(
        fs::read_to_string(&f.path).unwrap(),
        on_disk,
        "nothing written"
    );
    let shown = text_on_screen(pane);
    assert!(shown.contains("data.jsonl changed on disk"), "{shown}");
    assert!(
        shown.contains("reload it and re-apply your 1 pending"),
        "{shown}"
    );
    // Keys other than the answers do nothing.
    key(pane, KeyCode::Char('j'));
    assert!(pane.watch.ask.is_some());

    let effects = key(pane, KeyCode::Char('r'));
    assert!(pane.watch.ask.is_none());
    assert!(
        notices(&effects)[0].contains("reloaded data.jsonl"),
        "{effects:?}"
    );
    assert_eq!(pane.len(), 3);
    assert!(pane.is_dirty());
    key(pane, KeyCode::Char('w'));
    assert_eq!(
        fs::read_to_string(&f.path).unwrap(),
        format!("{MINE}\n{B}\n{THEIRS}\n")
    );
}

#[test]
fn overwriting_takes_a_second_yes() {
    let mut f = opened();
    let pane = &mut f.pane;
    edit_first(pane);
    // Replaced whole, as `sed -i` does.
    let temp = f.path.with_extension("tmp");
    fs::write(&temp, format!("{THEIRS}\n")).unwrap();
    fs::rename(&temp, &f.path).unwrap();
    key(pane, KeyCode::Char('w'));
    key(pane, KeyCode::Char('o'));
    assert_eq!(pane.watch.ask, Some(Ask::ConfirmOverwrite));
    assert!(text_on_screen(pane).contains("Overwrite data.jsonl with your version?"));
    key(pane, KeyCode::Char('o'));
    assert_eq!(fs::read_to_string(&f.path).unwrap(), format!("{THEIRS}\n"));
    let effects = key(pane, KeyCode::Char('y'));
    assert!(notices(&effects)[0].starts_with("saved"), "{effects:?}");
    assert_eq!(
        fs::read_to_string(&f.path).unwrap(),
        format!("{MINE}\n{B}\n")
    );
}

#[test]
fn save_as_writes_elsewhere_and_opens_it() {
    let mut f = asked_after_an_append();
    let pane = &mut f.pane;
    key(pane, KeyCode::Char('a'));
    let mine = f.path.with_file_name("data.mine.jsonl");
    let prompt = pane.prompt.clone().unwrap();
    assert_eq!(prompt.kind, PromptKind::SaveAs);
    assert_eq!(prompt.line.text(), mine.to_string_lossy());
    let effects = key(pane, KeyCode::Enter);
    assert!(
        matches!(effects.as_slice(), [Effect::OpenDataset(p)] if *p == mine),
        "{effects:?}"
    );
    assert_eq!(fs::read_to_string(&mine).unwrap(), format!("{MINE}\n{B}\n"));
    assert_eq!(
        fs::read_to_string(&f.path).unwrap(),
        format!("{A}\n{B}\n{THEIRS}\n")
    );
}

#[test]
fn esc_writes_nothing_and_keeps_the_changes() {
    let mut f = asked_after_an_append();
    let pane = &mut f.pane;
    let effects = key(pane, KeyCode::Esc);
    assert!(notices(&effects)[0].contains("still pending"));
    assert!(pane.watch.ask.is_none() && pane.is_dirty());
    assert_eq!(pane.store.raw(0).unwrap(), MINE.as_bytes());
}

#[test]
fn a_read_only_file_is_written_only_after_yes() {
    let mut f = opened();
    fs::set_permissions(&f.path, fs::Permissions::from_mode(0o444)).unwrap();
    let pane = &mut f.pane;
    edit_first(pane);
    key(pane, KeyCode::Char('w'));
    assert!(matches!(
        pane.watch.ask,
        Some(Ask::ReadOnly { mode: 0o444, .. })
    ));
    assert!(text_on_screen(pane).contains("data.jsonl is read-only (mode 444)"));
    key(pane, KeyCode::Char('n'));
    assert_eq!(fs::read_to_string(&f.path).unwrap(), format!("{A}\n{B}\n"));
    key(pane, KeyCode::Char('w'));
    key(pane, KeyCode::Char('y'));
    assert_eq!(
        fs::read_to_string(&f.path).unwrap(),
        format!("{MINE}\n{B}\n")
    );
    let mode = fs::metadata(&f.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444);
}

#[test]
fn the_watch_reloads_a_clean_file_and_warns_once_about_pending_changes() {
    let mut f = opened();
    let pane = &mut f.pane;
    assert!(pane.watch_disk(true).is_empty(), "nothing changed");
    append_theirs(&f.path);
    // The timer waits for its interval; focus coming back looks at once.
    let effects = pane.watch_disk(true);
    assert!(
        notices(&effects)[0].contains("changed on disk")
            && notices(&effects)[0].ends_with("reloaded"),
        "{effects:?}"
    );
    run_jobs(pane, effects);
    assert_eq!(pane.len(), 3);
    assert!(!pane.is_dirty());

    edit_first(pane);
    append_theirs(&f.path);
    let effects = pane.watch_disk(true);
    assert!(
        notices(&effects)[0].contains("w to reload keeping your changes"),
        "{effects:?}"
    );
    assert_eq!(pane.len(), 3, "not reloaded over pending changes");
    assert!(pane.watch_disk(true).is_empty(), "told once");
    assert!(text_on_screen(pane).contains("changed on disk (w)"));
    assert!(pane.watch_disk(false).is_empty(), "the timer waits");
}
