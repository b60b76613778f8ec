//! The text fields of a record: every string with its JSON pointer, the
//! path validation names it by and the role it speaks for; a list of short
//! one-line strings is one field. Of a huge record only what `bounds` lets
//! the views show is kept.

use super::bounds::{self, FIELD_BYTES, FIELDS, RECORD_BYTES};
use crate::data::read::{join_index, join_key};
use crate::data::sample::Role;
use serde_json::Value;

/// A string anywhere in the record (file contents aside).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// JSON pointer, for writing it back.
    pub pointer: String,
    /// JSON path as validation names it, e.g. `messages[1].content`.
    pub label: String,
    pub role: Option<Role>,
    /// The text shown: all of it, or its first `FIELD_BYTES` (less when the
    /// record's budget runs out).
    pub text: String,
    /// The whole text's length in bytes.
    pub len: usize,
    /// The number of items of a list of one-line strings, shown as one
    /// field (`text` joins them) and edited one item per line.
    pub list: Option<usize>,
}

impl Field {
    pub fn is_cut(&self) -> bool {
        self.text.len() < self.len
    }
}

/// What is left of a record's display budget while its fields are collected.
struct Budget {
    bytes: usize,
    fields: usize,
    /// Fields past the count, not listed.
    omitted: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            bytes: RECORD_BYTES,
            fields: FIELDS,
            omitted: 0,
        }
    }
}

/// The fields of `value` (leaving out the subtree at the pointer `skip`),
/// and how many strings past `FIELDS` were not listed.
pub fn collect(value: &Value, skip: Option<&str>) -> (Vec<Field>, usize) {
    let mut budget = Budget::default();
    let mut fields = Vec::new();
    walk(value, "", "", None, skip, &mut budget, &mut fields);
    (fields, budget.omitted)
}

/// Collects every string of `value` with its pointer, path and role.
fn walk(
    value: &Value,
    label: &str,
    pointer: &str,
    role: Option<Role>,
    skip: Option<&str>,
    budget: &mut Budget,
    out: &mut Vec<Field>,
) {
    if skip == Some(pointer) {
        return;
    }
    match value {
        Value::Object(obj) => {
            let speaker = ["role", "from"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(Value::as_str))
                .and_then(role_named);
            let here = speaker.or(role);
            for (key, child) in obj {
                if speaker.is_some() && (key == "role" || key == "from") {
                    continue;
                }
                let child_role = if speaker.is_some() {
                    here
                } else {
                    key_role(key).or(here)
                };
                let child_pointer = format!("{pointer}/{}", escape_pointer(key));
                walk(
                    child,
                    &join_key(label, key),
                    &child_pointer,
                    child_role,
                    skip,
                    budget,
                    out,
                );
            }
        }
        Value::Array(items) if is_plain_list(label, items) => {
            let (text, len) = join_list(items, FIELD_BYTES.min(budget.bytes));
            push_field(&text, len, pointer, label, role, budget, out);
            if let Some(field) = out.last_mut() {
                field.list = Some(items.len());
            }
        }
        Value::Array(items) => {
            let pairs = label.ends_with("history");
            for (i, child) in items.iter().enumerate() {
                let child_label = join_index(label, i);
                let child_role = if label.contains("history[") && label.ends_with(']') {
                    Some(if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    })
                } else if pairs {
                    None
                } else {
                    role
                };
                walk(
                    child,
                    &child_label,
                    &format!("{pointer}/{i}"),
                    child_role,
                    skip,
                    budget,
                    out,
                );
            }
        }
        Value::String(text) => push_field(text, text.len(), pointer, label, role, budget, out),
        _ => {}
    }
}

/// Items longer than this keep a field each.
const LIST_ITEM_BYTES: usize = 200;

/// Whether an array is a list of short one-line strings (`tech_stack`, a
/// project's paths) that is shown as one field; a history's `[question,
/// answer]` pair stays two fields, one per speaker.
fn is_plain_list(label: &str, items: &[Value]) -> bool {
    let short_line =
        |s: &str| !s.is_empty() && s.len() <= LIST_ITEM_BYTES && !s.contains(['\n', '\r']);
    !items.is_empty()
        && !label.contains("history[")
        && items
            .iter()
            .all(|item| item.as_str().is_some_and(short_line))
}

/// A list's items joined by commas: at least its first `max` bytes, and
/// the whole text's length.
fn join_list(items: &[Value], max: usize) -> (String, usize) {
    const SEPARATOR: &str = ", ";
    let mut text = String::new();
    let mut len = 0;
    for (i, item) in items.iter().filter_map(Value::as_str).enumerate() {
        let separator = if i == 0 { "" } else { SEPARATOR };
        if text.len() <= max {
            text.push_str(separator);
            text.push_str(item);
        }
        len += separator.len() + item.len();
    }
    (text, len)
}

/// Adds one field of `text` (of `len` bytes in all), as much of it as the
/// record's budget shows.
fn push_field(
    text: &str,
    len: usize,
    pointer: &str,
    label: &str,
    role: Option<Role>,
    budget: &mut Budget,
    out: &mut Vec<Field>,
) {
    if budget.fields == 0 {
        budget.omitted += 1;
        return;
    }
    budget.fields -= 1;
    let shown = bounds::cut(text, FIELD_BYTES.min(budget.bytes));
    budget.bytes -= shown.len();
    out.push(Field {
        pointer: pointer.to_string(),
        label: label.to_string(),
        role,
        text: shown.to_string(),
        len,
        list: None,
    });
}

fn role_named(name: &str) -> Option<Role> {
    match name {
        "user" | "human" => Some(Role::User),
        "assistant" | "gpt" | "model" | "bot" | "function_call" => Some(Role::Assistant),
        "system" => Some(Role::System),
        "tool" | "observation" | "function" => Some(Role::Tool),
        _ => None,
    }
}

/// The role a field speaks for by its name in the common formats.
fn key_role(key: &str) -> Option<Role> {
    match key {
        "system" => Some(Role::System),
        "prompt" | "instruction" | "input" | "question" => Some(Role::User),
        "completion" | "output" | "response" | "answer" | "chosen" | "rejected" => {
            Some(Role::Assistant)
        }
        _ => None,
    }
}

/// A key as one step of a JSON pointer (RFC 6901).
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(value: Value, skip: Option<&str>) -> Vec<(String, String, Option<Role>)> {
        let mut out = Vec::new();
        walk(&value, "", "", None, skip, &mut Budget::default(), &mut out);
        out.into_iter()
            .map(|f| (f.pointer, f.label, f.role))
            .collect()
    }

    #[test]
    fn fields_know_their_roles() {
        let chat = json!({"messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"}]});
        assert_eq!(
            fields_of(chat, None),
            vec![
                (
                    "/messages/0/content".into(),
                    "messages[0].content".into(),
                    Some(Role::System)
                ),
                (
                    "/messages/1/content".into(),
                    "messages[1].content".into(),
                    Some(Role::User)
                ),
                (
                    "/messages/2/content".into(),
                    "messages[2].content".into(),
                    Some(Role::Assistant)
                ),
            ]
        );
        let alpaca = json!({"instruction": "i", "output": "o", "history": [["u", "a"]]});
        let roles: Vec<_> = fields_of(alpaca, None).into_iter().map(|f| f.2).collect();
        assert_eq!(
            roles,
            vec![
                Some(Role::User),
                Some(Role::Assistant),
                Some(Role::User),
                Some(Role::Assistant)
            ]
        );
        let code = json!({"prompt": "p", "output": {"files": {"a/b.py": "x"}, "note": "n"}});
        let labels: Vec<_> = fields_of(code, Some("/output/files"))
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(labels, vec!["prompt", "output.note"]);
    }

    #[test]
    fn lists_of_one_line_strings_are_one_field() {
        let record = json!({"stack": ["python", "fastapi"], "history": [["q", "a"]]});
        let (out, _) = collect(&record, None);
        let shown: Vec<_> = out
            .iter()
            .map(|f| (f.label.as_str(), f.text.as_str(), f.list))
            .collect();
        assert_eq!(
            shown,
            [
                ("stack", "python, fastapi", Some(2)),
                ("history[0][0]", "q", None),
                ("history[0][1]", "a", None),
            ]
        );
        // A long list shows its first part, like a long string.
        let many: Vec<String> = (0..100_000).map(|i| format!("item{i}")).collect();
        let (out, _) = collect(&json!({"many": many}), None);
        assert_eq!(out[0].text.len(), FIELD_BYTES);
        assert!(out[0].is_cut() && out[0].len > FIELD_BYTES);
    }

    #[test]
    fn a_huge_record_keeps_a_bounded_part_of_each_field() {
        let huge = "x".repeat(3 * FIELD_BYTES);
        let mut many: Vec<Value> = vec![json!({"role": "user", "content": huge})];
        many.extend((0..FIELDS).map(|i| json!({"role": "assistant", "content": format!("m{i}")})));
        let mut budget = Budget::default();
        let mut out = Vec::new();
        walk(
            &json!({"messages": many}),
            "",
            "",
            None,
            None,
            &mut budget,
            &mut out,
        );
        assert_eq!(out.len(), FIELDS);
        assert_eq!(budget.omitted, 1);
        assert_eq!(
            (out[0].text.len(), out[0].len),
            (FIELD_BYTES, 3 * FIELD_BYTES)
        );
        assert!(out[0].is_cut() && !out[1].is_cut());
        // Four huge fields use up the record's budget; later ones show nothing.
        let fields: Vec<Value> = (0..6).map(|_| json!(huge)).collect();
        let mut out = Vec::new();
        walk(
            &json!(fields),
            "",
            "",
            None,
            None,
            &mut Budget::default(),
            &mut out,
        );
        let shown: usize = out.iter().map(|f| f.text.len()).sum();
        assert_eq!(shown, RECORD_BYTES);
        assert_eq!(out[5].text, "");
    }
}
