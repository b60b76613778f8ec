use super::*;
use serde_json::json;
use std::fs;

fn store_with(name: &str, text: &[u8]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, text).unwrap();
    let store = Store::open(&path).unwrap();
    (dir, store)
}

fn saved(store: &mut Store) -> Vec<u8> {
    store.save().unwrap();
    fs::read(store.path()).unwrap()
}

#[test]
fn unedited_save_is_byte_identical() {
    let odd = b"\xEF\xBB\xBF{\"b\": 1, \"a\": \"\\u00e9\\n\"}\r\n\r\n  {\"text\":\"x\"}  \r\n{\"text\": \"no newline\"}";
    let (_dir, mut store) = store_with("odd.jsonl", odd);
    assert_eq!(store.len(), 3);
    assert_eq!(store.line(1), Some(3));
    assert_eq!(store.line(2), Some(4));
    assert!(store.has_bom());
    assert_eq!(saved(&mut store), odd);
}

#[test]
fn editing_one_record_keeps_every_other_byte() {
    let text = b"{\"z\": 1, \"a\": \"caf\\u00e9\"}\r\n{\"text\": \"old\"}\r\n\r\n{\"q\": \"\\/\"}";
    let (_dir, mut store) = store_with("crlf.jsonl", text);
    let mut value = store.value(1).unwrap().unwrap();
    value["text"] = json!("new");
    value["extra"] = json!(true);
    store.set_value(1, &value);
    assert!(store.is_dirty());
    // The edited line follows the file's spacing (Python's here).
    let expected = b"{\"z\": 1, \"a\": \"caf\\u00e9\"}\r\n{\"text\": \"new\", \"extra\": true}\r\n\r\n{\"q\": \"\\/\"}";
    assert_eq!(saved(&mut store), expected);
    assert!(!store.is_dirty());
}

#[test]
fn insert_and_remove_keep_trailing_newline_state() {
    let (_dir, mut store) = store_with("a.jsonl", b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
    store.insert_value(1, &json!({"text": "between"}));
    let removed = store.remove(2).unwrap();
    assert_eq!(removed, b"{\"text\": \"b\"}");
    store.insert_value(2, &json!({"text": "end"}));
    assert_eq!(
        saved(&mut store),
        b"{\"text\": \"a\"}\n{\"text\": \"between\"}\n{\"text\": \"end\"}\n"
    );
}

#[test]
fn records_added_to_an_empty_file_end_with_a_newline() {
    let (_dir, mut store) = store_with("empty.jsonl", b"");
    assert!(store.is_empty());
    store.insert_value(0, &json!({"text": "first"}));
    assert_eq!(saved(&mut store), b"{\"text\":\"first\"}\n");
}

#[test]
fn pretty_array_edits_match_their_neighbours() {
    let text = "[\n  {\n    \"instruction\": \"a\",\n    \"output\": \"b\"\n  },\n  {\n    \"instruction\": \"c\",\n    \"output\": \"d\"\n  }\n]\n";
    let (_dir, mut store) = store_with("alpaca.json", text.as_bytes());
    assert_eq!(store.layout(), Layout::JsonArray);
    assert_eq!(store.line(1), Some(6));
    let mut value = store.value(0).unwrap().unwrap();
    value["output"] = json!("B");
    store.set_value(0, &value);
    store.insert_value(2, &json!({"instruction": "e", "output": "f"}));
    let out = String::from_utf8(saved(&mut store)).unwrap();
    let expected = "[\n  {\n    \"instruction\": \"a\",\n    \"output\": \"B\"\n  },\n  {\n    \"instruction\": \"c\",\n    \"output\": \"d\"\n  },\n  {\n    \"instruction\": \"e\",\n    \"output\": \"f\"\n  }\n]\n";
    assert_eq!(out, expected);
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 3);
}

#[test]
fn invalid_lines_are_kept_verbatim() {
    let text = b"{\"text\": \"ok\"}\nthis is not json\n{\"text\": \"also ok\"}\n";
    let (_dir, mut store) = store_with("bad.jsonl", text);
    assert_eq!(store.len(), 3);
    assert!(store.value(1).unwrap().is_err());
    store.set_value(2, &json!({"text": "changed"}));
    assert_eq!(
        saved(&mut store),
        b"{\"text\": \"ok\"}\nthis is not json\n{\"text\": \"changed\"}\n"
    );
}

#[test]
fn visit_sees_edits_and_lines() {
    let (_dir, mut store) = store_with("v.jsonl", b"{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n");
    store.set_text(0, "{\"text\": \"A\"}".to_string());
    let mut seen = Vec::new();
    store
        .visit(|r| {
            seen.push((
                r.index,
                r.line,
                String::from_utf8_lossy(r.bytes).into_owned(),
            ));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![
            (0, Some(1), "{\"text\": \"A\"}".to_string()),
            (1, Some(3), "{\"text\": \"b\"}".to_string()),
        ]
    );
}

#[test]
fn broken_array_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    fs::write(&path, "[\n  {\"a\": 1}\n  {\"b\": 2}\n]").unwrap();
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(
        err.ends_with("broken.json:3:3: expected `,` or `]` after a record"),
        "{err}"
    );
}

#[test]
fn compact_files_get_compact_records() {
    let (_dir, mut store) = store_with("c.jsonl", b"{\"text\":\"a\"}\n");
    store.insert_value(1, &json!({"text": "b", "n": [1, 2]}));
    assert_eq!(
        saved(&mut store),
        b"{\"text\":\"a\"}\n{\"text\":\"b\",\"n\":[1,2]}\n"
    );
}

#[test]
fn pretty_printed_objects_are_records_and_edits_keep_their_style() {
    let text = "{\n  \"text\": \"a\"\n}\n\n{\n  \"text\": \"b\"\n}\n";
    let (_dir, mut store) = store_with("two.json", text.as_bytes());
    assert_eq!(store.layout(), Layout::JsonValues);
    assert_eq!((store.len(), store.line(1)), (2, Some(5)));
    assert_eq!(store.value(1).unwrap().unwrap(), json!({"text": "b"}));
    store.set_value(0, &json!({"text": "A"}));
    store.insert_value(2, &json!({"text": "c"}));
    let expected = "{\n  \"text\": \"A\"\n}\n\n{\n  \"text\": \"b\"\n}\n{\n  \"text\": \"c\"\n}\n";
    assert_eq!(String::from_utf8(saved(&mut store)).unwrap(), expected);
    // An unclosed first line is broken JSON Lines, reported line by line.
    let (_dir, store) = store_with("bad.jsonl", b"{\"text\": \"a\"\n{\"text\": \"b\"}\n");
    assert_eq!((store.layout(), store.len()), (Layout::JsonLines, 2));
}

#[test]
fn what_is_not_a_utf8_text_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let open_err = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        Store::open(&path).err().unwrap()
    };
    let utf16: Vec<u8> = "\u{feff}{\"text\": \"x\"}\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert!(matches!(
        open_err("u.jsonl", &utf16),
        StoreError::Utf16 { bom: true, .. }
    ));
    assert!(matches!(
        open_err("b.jsonl", b"{\"text\": \"x\"}\n\0\0\x01"),
        StoreError::Binary { offset: 14, .. }
    ));
    let err = Store::open(dir.path()).err().unwrap();
    assert!(
        matches!(
            err,
            StoreError::NotAFile {
                what: "a folder",
                ..
            }
        ),
        "{err}"
    );
}
