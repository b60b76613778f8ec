//! Findings that follow edits (duplicates made with `d` included), and the
//! checks and token view that follow the Train form's model, template and
//! max_seq_len.

use super::tests::{key, open_validated, run_jobs};
use super::*;
use crate::data::FindingKind;
use crate::model::ChatTokenizer;
use crossterm::event::KeyCode;

/// A small Qwen2-shaped model whose chat template is plain ChatML (no tools).
const CHATML_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/parity/models/qwen2"
);

const FIRST: &str = r#"{"messages": [{"role": "user", "content": "What is Rust?"}, {"role": "assistant", "content": "A systems programming language."}]}"#;
const SECOND: &str = r#"{"messages": [{"role": "user", "content": "What is Go?"}, {"role": "assistant", "content": "A language with garbage collection and goroutines."}]}"#;
/// The shape of glaive_toolcall_en_demo's records: a ShareGPT function call,
/// its observation, and the tool schemas as a JSON string.
const TOOL_CALL: &str = r#"{"conversations": [{"from": "human", "value": "I have chicken and rice. Find me a recipe?"}, {"from": "function_call", "value": "{\"name\": \"search_recipes\", \"arguments\": {\"ingredients\": [\"chicken\", \"rice\"]}}"}, {"from": "observation", "value": "{\"recipes\": [{\"name\": \"Chicken fried rice\"}]}"}, {"from": "gpt", "value": "Try chicken fried rice: fry the rice, then add the chicken."}], "tools": "[{\"name\": \"search_recipes\", \"description\": \"Search recipes by ingredients\", \"parameters\": {\"type\": \"object\", \"properties\": {\"ingredients\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}}}]"}"#;

fn open(lines: &[&str]) -> (tempfile::TempDir, DataPane) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let pane = open_validated(&path);
    (dir, pane)
}

/// (record, field, message) of each finding of `kind`.
fn found(pane: &DataPane, kind: FindingKind) -> Vec<(usize, String, String)> {
    (pane.findings.items().iter())
        .filter(|i| i.finding.kind == kind)
        .map(|i| (i.record, i.finding.field.clone(), i.finding.message.clone()))
        .collect()
}

fn records(found: &[(usize, String, String)]) -> Vec<usize> {
    found.iter().map(|f| f.0).collect()
}

fn use_settings(pane: &mut DataPane, max_seq_len: usize) {
    let settings = TokenSettings {
        model: CHATML_MODEL.into(),
        template: None,
        max_seq_len,
    };
    let effects = pane.message(Msg::Settings(settings));
    run_jobs(pane, effects);
}

#[test]
fn a_duplicate_is_flagged_as_it_is_made_and_follows_later_edits() {
    let (_dir, mut pane) = open(&[FIRST, SECOND]);
    assert!(found(&pane, FindingKind::Duplicate).is_empty());
    key(&mut pane, KeyCode::Char('d'));
    let duplicates = found(&pane, FindingKind::Duplicate);
    assert_eq!(records(&duplicates), vec![1]);
    assert_eq!(duplicates[0].2, "exact duplicate of the record at line 1");

    // Deleting the original leaves the copy alone: no longer a duplicate.
    key(&mut pane, KeyCode::Char('k'));
    key(&mut pane, KeyCode::Char('x'));
    assert!(found(&pane, FindingKind::Duplicate).is_empty());
    key(&mut pane, KeyCode::Char('u'));
    assert_eq!(records(&found(&pane, FindingKind::Duplicate)), vec![1]);
    key(&mut pane, KeyCode::Char('u'));
    assert!(found(&pane, FindingKind::Duplicate).is_empty(), "undone");

    // A duplicate of a sample that is itself new names it.
    key(&mut pane, KeyCode::Char('j'));
    key(&mut pane, KeyCode::Char('d'));
    key(&mut pane, KeyCode::Char('d'));
    let duplicates = found(&pane, FindingKind::Duplicate);
    assert_eq!(records(&duplicates), vec![2, 3]);
    assert!(
        duplicates.iter().all(|d| d.2.ends_with("line 2")),
        "{duplicates:?}"
    );
}

#[test]
fn findings_and_token_view_use_the_forms_model_and_max_seq_len() {
    let (_dir, mut pane) = open(&[FIRST, SECOND]);
    assert!(found(&pane, FindingKind::TooLong).is_empty());
    use_settings(&mut pane, 16);
    let too_long = found(&pane, FindingKind::TooLong);
    assert_eq!(records(&too_long), vec![0, 1]);
    assert!(
        too_long[0].2.contains("over max_seq_len 16"),
        "{too_long:?}"
    );
    assert_eq!(pane.tokens.max_seq_len, 16, "the token view cuts there too");

    // An edit is checked with the same tokenizer at once.
    key(&mut pane, KeyCode::Char('d'));
    assert_eq!(records(&found(&pane, FindingKind::TooLong)), vec![0, 1, 2]);

    use_settings(&mut pane, 4096);
    assert!(found(&pane, FindingKind::TooLong).is_empty());
    assert_eq!(pane.tokens.max_seq_len, 4096);
}

#[test]
fn tool_calls_a_template_cannot_hold_are_named_per_sample() {
    let (_dir, mut pane) = open(&[FIRST, TOOL_CALL]);
    use_settings(&mut pane, 2048);
    let dropped = found(&pane, FindingKind::DroppedByTemplate);
    let fields: Vec<(usize, &str)> = dropped.iter().map(|d| (d.0, d.1.as_str())).collect();
    assert_eq!(
        fields,
        vec![(1, "tools"), (1, "conversations[1]")],
        "{dropped:?}"
    );
    assert!(dropped[1].2.contains("`search_recipes`"), "{dropped:?}");

    // The token view says what is missing from the tokens it shows.
    let tokenizer = ChatTokenizer::load_dir(std::path::Path::new(CHATML_MODEL)).unwrap();
    let raw = pane.store.raw(1).unwrap();
    let sample = crate::data::parse::parse_record(&raw, None, None)
        .sample
        .unwrap();
    let tokens = worker::encode(&tokenizer, &sample).unwrap();
    assert_eq!(tokens.dropped.len(), 2, "{:?}", tokens.dropped);
    assert!(tokens.dropped[1].contains("`search_recipes`"));
}
