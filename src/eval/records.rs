//! The records an evaluation generates answers for: the prompt (every turn
//! before the final assistant answer, as `generate --data F --index N` uses
//! it), the reference (that final answer), and two optional top-level
//! fields: `label` (a string: the record is a classification example) and
//! `expected_architecture` (the file paths a multi-file answer should hold).
//! A multi-file record that refines another (`context.base_id` naming the
//! `id` of a record in the same file) carries that record's files as its base.

use crate::data::parse;
use crate::data::sample::{Conversation, Message, Role, Sample};
use crate::data::store::Store;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// A project's files, path and content, in order.
pub type Files = Vec<(String, String)>;

pub struct EvalRecord {
    /// Position in the file (0-based).
    pub index: usize,
    /// 1-based line where the record starts.
    pub line: usize,
    /// The prompt turns, system text first.
    pub prompt: Vec<Message>,
    pub tools: Option<Value>,
    pub reference: String,
    pub label: Option<String>,
    pub expected_files: Option<Vec<String>>,
    /// For a refinement: the files of the project it starts from.
    pub base_files: Files,
}

impl EvalRecord {
    /// The last user turn (what a reader calls "the prompt").
    pub fn user_text(&self) -> &str {
        self.prompt
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str())
    }
}

/// Something about a record the user should know: it was skipped, or a
/// field of it was ignored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub line: usize,
    pub message: String,
}

/// The turns before a conversation's final assistant answer, and that answer;
/// `None` when it has no assistant answer.
pub fn prompt_and_answer(conv: &Conversation) -> Option<(Vec<Message>, Message)> {
    let mut messages = conv.with_system_message();
    let last = messages.iter().rposition(|m| m.role == Role::Assistant)?;
    let answer = messages.remove(last);
    messages.truncate(last);
    Some((messages, answer))
}

/// Reads every record of `store` that has a prompt and a reference answer;
/// the others come back as notes.
pub fn read_records(store: &Store) -> std::io::Result<(Vec<EvalRecord>, Vec<Note>)> {
    let format = parse::detect_file_format(store)?;
    let mut records = Vec::new();
    let mut notes = Vec::new();
    let mut projects: HashMap<String, Files> = HashMap::new();
    let mut base_ids = Vec::new();
    store.visit(|r| {
        let line = r.line.unwrap_or(0);
        let parsed = parse::parse_record(r.bytes, format, None);
        if let Some(value) = &parsed.value {
            remember_project(value, &mut projects);
        }
        let skip = |why: String| Note {
            line,
            message: format!("skipped: {why}"),
        };
        let conv = match parsed.sample {
            Some(Sample::Chat(conv)) => conv,
            Some(Sample::Text(_)) => {
                notes.push(skip("a raw-text record has no prompt to answer".into()));
                return Ok(());
            }
            None => {
                let why = parsed.syntax.map(|s| s.message).or_else(|| {
                    parsed.problems.first().map(|p| match p.field.as_str() {
                        "" => p.message.clone(),
                        field => format!("field `{field}`: {}", p.message),
                    })
                });
                notes.push(skip(why.unwrap_or_else(|| "not a usable sample".into())));
                return Ok(());
            }
        };
        let Some((prompt, answer)) = prompt_and_answer(&conv) else {
            notes.push(skip(
                "the conversation has no assistant answer to compare with".into(),
            ));
            return Ok(());
        };
        let value = parsed.value.unwrap_or(Value::Null);
        let mut field_note = |field: &str, expected: &str| {
            notes.push(Note {
                line,
                message: format!("field `{field}`: expected {expected}; ignored"),
            })
        };
        let label = match value.get("label") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                field_note("label", "a string");
                None
            }
        };
        let expected_files = match value.get("expected_architecture") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            Some(_) => {
                field_note("expected_architecture", "an array of file paths");
                None
            }
        };
        let base_id = value.pointer("/context/base_id").and_then(Value::as_str);
        base_ids.push(base_id.map(str::to_string));
        records.push(EvalRecord {
            index: r.index,
            line,
            prompt,
            tools: conv.tools.clone(),
            reference: answer.content,
            label,
            expected_files,
            base_files: Vec::new(),
        });
        Ok(())
    })?;
    for (record, base_id) in records.iter_mut().zip(base_ids) {
        let Some(id) = base_id else { continue };
        match projects.get(&id) {
            Some(files) => record.base_files = files.clone(),
            None => notes.push(Note {
                line: record.line,
                message: format!(
                    "field `context.base_id`: no record with id `{id}` holds files; the answer is checked on its own"
                ),
            }),
        }
    }
    Ok((records, notes))
}

/// Keeps the files of a multi-file record with an `id`, for the records that refine it.
fn remember_project(value: &Value, projects: &mut HashMap<String, Files>) {
    let (Some(id), Some(files)) = (
        value.get("id").and_then(Value::as_str),
        crate::data::read::code_files(value),
    ) else {
        return;
    };
    let files = files
        .iter()
        .filter_map(|(path, content)| Some((path.clone(), content.as_str()?.to_string())))
        .collect();
    projects.insert(id.to_string(), files);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_everything_before_the_final_answer() {
        let conv = Conversation {
            system: Some("be brief".into()),
            messages: vec![
                Message::new(Role::User, "hi"),
                Message::new(Role::Assistant, "hello"),
                Message::new(Role::User, "2+2?"),
                Message::new(Role::Assistant, "4"),
            ],
            tools: None,
        };
        let (prompt, answer) = prompt_and_answer(&conv).unwrap();
        assert_eq!(prompt.len(), 4);
        assert_eq!(prompt[0].role, Role::System);
        assert_eq!(answer.content, "4");
        let no_answer = Conversation {
            messages: vec![Message::new(Role::User, "hi")],
            ..Default::default()
        };
        assert!(prompt_and_answer(&no_answer).is_none());
    }

    #[test]
    fn records_with_labels_and_bad_fields() {
        let dir = std::env::temp_dir().join(format!("tunebench-records-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"great film\", \"completion\": \"positive\", \"label\": \"positive\"}\n\
             {\"prompt\": \"meh\", \"completion\": \"negative\", \"label\": 3}\n\
             {\"text\": \"raw\"}\n\
             {\"prompt\": \"no answer\"}\n",
        )
        .unwrap();
        let store = Store::open(&path).unwrap();
        let (records, notes) = read_records(&store).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].label.as_deref(), Some("positive"));
        assert_eq!(records[0].user_text(), "great film");
        assert_eq!(records[1].label, None);
        let lines: Vec<usize> = notes.iter().map(|n| n.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(notes[0].message.contains("`label`"));
        assert!(
            notes[2].message.contains("completion"),
            "{}",
            notes[2].message
        );
    }
}
