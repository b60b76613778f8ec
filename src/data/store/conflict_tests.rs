//! Saving when the file is not what was opened: another program appended to
//! it, rewrote it (in place or by replacing it), a link, a read-only file.

use super::*;
use serde_json::json;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;

const LINES: [&str; 3] = [r#"{"t": "a"}"#, r#"{"t": "b"}"#, r#"{"t": "c"}"#];

fn file_with(lines: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.jsonl");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    (dir, path)
}

fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What `sed -i` does: a new file renamed over the old one.
fn replace_file(path: &Path, text: &str) {
    let temp = path.with_extension("sed-tmp");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, path).unwrap();
}

fn document(store: &Store) -> Vec<String> {
    (0..store.len())
        .map(|i| String::from_utf8(store.raw(i).unwrap()).unwrap())
        .collect()
}

fn changed(err: StoreError) -> DiskChange {
    match err {
        StoreError::Changed { change, .. } => change,
        other => panic!("expected a refusal for a changed file, got {other}"),
    }
}

#[test]
fn a_line_appended_while_open_is_detected_and_kept() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    store.set_text(0, r#"{"t": "A"}"#.into());
    let appended = r#"{"t": "appended"}"#;
    // echo '…' >> data.jsonl
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(file, "{appended}").unwrap();
    let before = fs::read(&path).unwrap();

    let err = store.save().unwrap_err();
    assert!(err.to_string().contains("changed on disk"), "{err}");
    assert!(matches!(changed(err), DiskChange::Resized { .. }));
    assert_eq!(fs::read(&path).unwrap(), before, "nothing written");

    let reloaded = store.reload().unwrap();
    assert!(reloaded.unmatched.is_empty());
    assert_eq!(reloaded.reapplied, 1);
    let mut store = reloaded.store;
    store.save().unwrap();
    assert_eq!(
        lines_of(&path),
        [r#"{"t": "A"}"#, LINES[1], LINES[2], appended]
    );
}

#[test]
fn an_outside_edit_of_an_untouched_record_is_not_reverted() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    store.set_text(0, r#"{"t": "A"}"#.into());
    // sed -i 's/"b"/"B"/': same size, a new file.
    replace_file(
        &path,
        &([LINES[0], r#"{"t": "B"}"#, LINES[2]].join("\n") + "\n"),
    );
    assert_eq!(changed(store.save().unwrap_err()), DiskChange::Rewritten);
    let mut store = store.reload().unwrap().store;
    store.save().unwrap();
    assert_eq!(
        lines_of(&path),
        [r#"{"t": "A"}"#, r#"{"t": "B"}"#, LINES[2]]
    );
}

#[test]
fn a_rewrite_in_place_with_the_same_size_and_time_is_detected() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    let time = fs::metadata(&path).unwrap().modified().unwrap();
    store.insert_text(3, r#"{"t": "d"}"#.into());
    fs::write(
        &path,
        [LINES[0], r#"{"t": "X"}"#, LINES[2]].join("\n") + "\n",
    )
    .unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(time)
        .unwrap();
    assert_eq!(changed(store.save().unwrap_err()), DiskChange::Rewritten);
    assert_eq!(lines_of(&path)[1], r#"{"t": "X"}"#);
}

#[test]
fn a_line_added_at_the_top_in_place_then_a_deletion_writes_nothing_corrupt() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    let top = r#"{"t": "new top line"}"#;
    // Rewritten in place (same inode): the store's offsets now point into
    // other records.
    let outside = [top, LINES[0], LINES[1], LINES[2]];
    fs::write(&path, outside.join("\n") + "\n").unwrap();
    store.remove(1).unwrap();
    let err = store.save().unwrap_err();
    assert!(matches!(changed(err), DiskChange::Resized { .. }));
    assert_eq!(lines_of(&path), outside);
    // Overwriting cannot rebuild the untouched records any more.
    let err = store
        .save_with(SaveOptions {
            overwrite_changed: true,
            ..SaveOptions::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::SourceRewritten { .. }), "{err}");
    assert!(store.save_as(&path.with_file_name("mine.jsonl")).is_err());
    assert_eq!(lines_of(&path), outside);

    // The record deleted was read from the shifted offsets: it matches
    // nothing now, so the deletion is not applied and is reported.
    let reloaded = store.reload().unwrap();
    assert_eq!(reloaded.unmatched.len(), 1);
    assert_eq!(reloaded.unmatched[0].kind, UnmatchedKind::Removal);
    let mut store = reloaded.store;
    assert_eq!(document(&store), outside);
    store.set_text(0, top.into());
    store.save().unwrap();
    for line in lines_of(&path) {
        serde_json::from_str::<Value>(&line).unwrap();
    }
}

#[test]
fn a_deletion_made_before_an_outside_rewrite_is_reapplied() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    store.remove(1).unwrap();
    store.insert_text(1, r#"{"t": "after a"}"#.into());
    let top = r#"{"t": "top"}"#;
    fs::write(&path, [top, LINES[0], LINES[1], LINES[2]].join("\n") + "\n").unwrap();
    let reloaded = store.reload().unwrap();
    assert!(reloaded.unmatched.is_empty());
    let mut store = reloaded.store;
    store.save().unwrap();
    assert_eq!(
        lines_of(&path),
        [top, LINES[0], r#"{"t": "after a"}"#, LINES[2]]
    );
}

#[test]
fn an_edit_of_a_record_changed_outside_is_kept_beside_it() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    store.set_text(1, r#"{"t": "mine"}"#.into());
    replace_file(
        &path,
        &[LINES[0], r#"{"t": "theirs"}"#, LINES[2]].join("\n"),
    );
    let reloaded = store.reload().unwrap();
    assert_eq!(
        reloaded.unmatched,
        [Unmatched {
            kind: UnmatchedKind::Edit,
            line: 2,
            kept_at: Some(1),
        }]
    );
    assert_eq!(
        document(&reloaded.store),
        [LINES[0], r#"{"t": "mine"}"#, r#"{"t": "theirs"}"#, LINES[2]]
    );
}

#[test]
fn overwrite_after_a_replacement_writes_the_users_version() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    store.set_text(2, r#"{"t": "C"}"#.into());
    replace_file(&path, "{\"t\": \"theirs\"}\n");
    store
        .save_with(SaveOptions {
            overwrite_changed: true,
            ..SaveOptions::default()
        })
        .unwrap();
    assert_eq!(lines_of(&path), [LINES[0], LINES[1], r#"{"t": "C"}"#]);
}

#[test]
fn save_as_leaves_the_changed_file_alone() {
    let (dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    store.set_text(0, r#"{"t": "A"}"#.into());
    replace_file(&path, "{\"t\": \"theirs\"}\n");
    let taken = dir.path().join("taken.jsonl");
    fs::write(&taken, "keep\n").unwrap();
    let err = store.save_as(&taken).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(fs::read_to_string(&taken).unwrap(), "keep\n");
    let mine = dir.path().join("mine.jsonl");
    store.save_as(&mine).unwrap();
    assert_eq!(store.path(), mine);
    assert!(!store.is_dirty());
    assert_eq!(lines_of(&mine), [r#"{"t": "A"}"#, LINES[1], LINES[2]]);
    assert_eq!(lines_of(&path), [r#"{"t": "theirs"}"#]);
}

#[test]
fn touching_the_file_is_not_a_change() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    store.set_text(0, r#"{"t": "A"}"#.into());
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(store.poll_disk().unwrap(), None);
    store.save().unwrap();
    assert_eq!(lines_of(&path)[0], r#"{"t": "A"}"#);
}

#[test]
fn poll_sees_an_append_and_a_deletion() {
    let (_dir, path) = file_with(&LINES);
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.poll_disk().unwrap(), None);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(file, "{{}}").unwrap();
    assert!(matches!(
        store.poll_disk().unwrap(),
        Some(DiskChange::Resized { .. })
    ));
    fs::remove_file(&path).unwrap();
    assert_eq!(store.poll_disk().unwrap(), Some(DiskChange::Deleted));
}

#[test]
fn saving_through_a_link_writes_its_target() {
    let (dir, path) = file_with(&LINES);
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink("data.jsonl", &link).unwrap();
    let mut store = Store::open(&link).unwrap();
    store.set_text(0, r#"{"t": "A"}"#.into());
    store.save().unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(lines_of(&path)[0], r#"{"t": "A"}"#);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "a temporary file was left");
}

#[test]
fn a_read_only_file_is_written_only_when_confirmed_and_stays_read_only() {
    let (_dir, path) = file_with(&LINES);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let mut store = Store::open(&path).unwrap();
    store.set_text(0, r#"{"t": "A"}"#.into());
    let err = store.save().unwrap_err();
    assert!(
        matches!(err, StoreError::ReadOnly { mode: 0o444, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("read-only (mode 444)"), "{err}");
    assert_eq!(lines_of(&path)[0], LINES[0]);
    store
        .save_with(SaveOptions {
            overwrite_read_only: true,
            ..SaveOptions::default()
        })
        .unwrap();
    assert_eq!(lines_of(&path)[0], r#"{"t": "A"}"#);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444);
}

#[test]
fn a_save_keeps_the_mode_bits() {
    let (_dir, path) = file_with(&LINES);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let mut store = Store::open(&path).unwrap();
    store.insert_value(0, &json!({"t": "z"}));
    store.save().unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn split_and_convert_refuse_to_write_over_their_input() {
    use crate::data::{convert, split};
    let dir = tempfile::tempdir().unwrap();
    // The input is named data.jsonl through a link to what split would
    // write as its training part.
    let real = dir.path().join("data.train.jsonl");
    let text = "{\"text\": \"one\"}\n{\"text\": \"two\"}\n";
    fs::write(&real, text).unwrap();
    let input = dir.path().join("data.jsonl");
    std::os::unix::fs::symlink("data.train.jsonl", &input).unwrap();
    let store = Store::open(&input).unwrap();
    let err = split::split(&store, split::EvalSize::Count(1), 1, dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("data.train.jsonl: it is the input file"),
        "{err}"
    );
    let hard = dir.path().join("hard.jsonl");
    fs::hard_link(&real, &hard).unwrap();
    let err = convert::convert(&store, convert::Target::Chat, None, &hard)
        .unwrap_err()
        .to_string();
    assert!(err.contains("it is the input file"), "{err}");
    assert_eq!(fs::read_to_string(&real).unwrap(), text);
}

#[path = "interleavings.rs"]
mod interleavings;
