//! `data convert`: rewrite a dataset in another format. Every record whose
//! content cannot be carried over whole is reported with what it lost.

use super::format::Format;
use super::parse;
use super::sample::{Conversation, Role, Sample, ToolCall};
use super::store::{Layout, RecordWriter, Store, atomic_write};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::io;
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Chat,
    Alpaca,
    ShareGpt,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "chat" | "openai" | "messages" => Ok(Target::Chat),
            "alpaca" => Ok(Target::Alpaca),
            "sharegpt" => Ok(Target::ShareGpt),
            _ => Err(format!(
                "unknown target `{s}`; expected chat, alpaca or sharegpt"
            )),
        }
    }
}

/// What one record lost (or why it was left out) in conversion.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Loss {
    pub line: usize,
    /// The record is not in the output at all.
    pub skipped: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    pub written: usize,
    pub lossy: Vec<Loss>,
}

/// Converts one sample; the notes say what could not be carried over.
pub fn convert_sample(sample: &Sample, target: Target) -> (Option<Value>, Vec<String>) {
    let mut notes = Vec::new();
    let Sample::Chat(conv) = sample else {
        notes.push("raw text has no conversation to write as a chat format".to_string());
        return (None, notes);
    };
    let value = match target {
        Target::Chat => to_chat(conv),
        Target::ShareGpt => to_sharegpt(conv, &mut notes),
        Target::Alpaca => to_alpaca(conv, &mut notes),
    };
    (value, notes)
}

fn to_chat(conv: &Conversation) -> Option<Value> {
    let messages: Vec<Value> = conv
        .with_system_message()
        .iter()
        .map(|m| {
            let mut obj = Map::new();
            obj.insert("role".into(), json!(m.role.as_str()));
            let content = if m.content.is_empty() && !m.tool_calls.is_empty() {
                Value::Null
            } else {
                json!(m.content)
            };
            obj.insert("content".into(), content);
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m.tool_calls.iter().map(openai_call).collect();
                obj.insert("tool_calls".into(), Value::Array(calls));
            }
            if let Some(id) = &m.tool_call_id {
                obj.insert("tool_call_id".into(), json!(id));
            }
            Value::Object(obj)
        })
        .collect();
    let mut record = Map::new();
    record.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = &conv.tools {
        record.insert("tools".into(), tools.clone());
    }
    Some(Value::Object(record))
}

fn openai_call(call: &ToolCall) -> Value {
    let arguments = match &call.arguments {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut obj = Map::new();
    if let Some(id) = &call.id {
        obj.insert("id".into(), json!(id));
    }
    obj.insert("type".into(), json!("function"));
    obj.insert(
        "function".into(),
        json!({"name": call.name, "arguments": arguments}),
    );
    Value::Object(obj)
}

fn to_sharegpt(conv: &Conversation, notes: &mut Vec<String>) -> Option<Value> {
    let mut turns = Vec::new();
    for m in &conv.messages {
        let (from, value) = match m.role {
            Role::System => {
                notes.push("a system message inside the conversation became a human turn".into());
                ("human", m.content.clone())
            }
            Role::User => ("human", m.content.clone()),
            Role::Tool => ("observation", m.content.clone()),
            Role::Assistant if m.tool_calls.is_empty() => ("gpt", m.content.clone()),
            Role::Assistant => {
                if !m.content.trim().is_empty() {
                    notes.push("text beside a tool call was dropped: ShareGPT's function_call turn holds only the call".into());
                }
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"name": c.name, "arguments": c.arguments}))
                    .collect();
                let value = match calls.as_slice() {
                    [one] => one.to_string(),
                    _ => Value::Array(calls).to_string(),
                };
                ("function_call", value)
            }
        };
        turns.push(json!({"from": from, "value": value}));
    }
    let mut record = Map::new();
    record.insert("conversations".into(), Value::Array(turns));
    if let Some(system) = &conv.system {
        record.insert("system".into(), json!(system));
    }
    if let Some(tools) = &conv.tools {
        let text = match tools {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        record.insert("tools".into(), json!(text));
    }
    Some(Value::Object(record))
}

/// Alpaca holds user/assistant pairs only: the last pair is instruction and
/// output, earlier pairs are history.
fn to_alpaca(conv: &Conversation, notes: &mut Vec<String>) -> Option<Value> {
    if conv.tools.is_some() {
        notes.push("tool schemas dropped: Alpaca has no field for them".into());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut pending_user: Option<String> = None;
    for m in &conv.messages {
        match m.role {
            Role::User => {
                if pending_user.replace(m.content.clone()).is_some() {
                    notes.push("a user turn with no reply was dropped".into());
                }
            }
            Role::Assistant if !m.tool_calls.is_empty() => {
                notes.push("a tool call was dropped: Alpaca cannot hold tool calls".into());
            }
            Role::Assistant => match pending_user.take() {
                Some(user) => pairs.push((user, m.content.clone())),
                None => {
                    notes.push("an assistant turn with no user turn before it was dropped".into())
                }
            },
            Role::Tool => {
                notes.push("a tool result was dropped: Alpaca cannot hold tool turns".into())
            }
            Role::System => {
                notes.push("a system message inside the conversation was dropped".into())
            }
        }
    }
    if pending_user.is_some() {
        notes.push("the last user turn has no reply and was dropped".into());
    }
    let (instruction, output) = pairs.pop()?;
    let mut record = Map::new();
    if let Some(system) = &conv.system {
        record.insert("system".into(), json!(system));
    }
    record.insert("instruction".into(), json!(instruction));
    record.insert("input".into(), json!(""));
    record.insert("output".into(), json!(output));
    if !pairs.is_empty() {
        let history: Vec<Value> = pairs.into_iter().map(|(u, a)| json!([u, a])).collect();
        record.insert("history".into(), Value::Array(history));
    }
    Some(Value::Object(record))
}

/// Why [`convert`] stopped writing: no record could be converted, so `out`
/// is left as it was (not created, or not replaced).
#[derive(Debug)]
struct NothingToWrite;

impl std::fmt::Display for NothingToWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no record could be converted")
    }
}

impl std::error::Error for NothingToWrite {}

/// Converts a whole file; `out`'s extension chooses JSON Lines or a JSON array.
/// When no record converts, `out` is not written and the report's `written`
/// is 0.
pub fn convert(
    store: &Store,
    target: Target,
    forced: Option<Format>,
    out: &Path,
) -> io::Result<ConvertReport> {
    store.refuse_as_output(out)?;
    let file_format = match forced {
        Some(f) => Some(f),
        None => parse::detect_file_format(store)?,
    };
    let as_array = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let mut lossy = Vec::new();
    let mut written = 0;
    let result = atomic_write(out, |sink| {
        let (layout, indent) = match as_array {
            true => (Layout::JsonArray, "  "),
            false => (Layout::JsonLines, ""),
        };
        let mut writer = RecordWriter::new(sink, layout, "\n", indent);
        store.visit(|r| {
            let line = r.line.unwrap_or(0);
            let parsed = parse::parse_record(r.bytes, file_format, forced);
            let Some(sample) = parsed.sample else {
                let reason = match (&parsed.syntax, parsed.format) {
                    (Some(s), _) => s.message.clone(),
                    (None, Some(Format::Preference)) => "preference record: not SFT data".into(),
                    _ => "record could not be read as a sample (run `data validate`)".into(),
                };
                lossy.push(Loss {
                    line,
                    skipped: true,
                    reason,
                });
                return Ok(());
            };
            let (value, notes) = convert_sample(&sample, target);
            let skipped = value.is_none();
            if let Some(value) = value {
                let text = match as_array {
                    true => serde_json::to_string_pretty(&value)?.replace('\n', "\n  "),
                    false => value.to_string(),
                };
                writer.push(text.as_bytes())?;
            }
            let mut notes = notes;
            let mut seen = std::collections::HashSet::new();
            notes.retain(|n| seen.insert(n.clone()));
            if !notes.is_empty() || skipped {
                let reason = if notes.is_empty() {
                    "nothing left to write".into()
                } else {
                    notes.join("; ")
                };
                lossy.push(Loss {
                    line,
                    skipped,
                    reason,
                });
            }
            Ok(())
        })?;
        written = writer.finish()?;
        if written == 0 {
            // Abandons the temporary file: an empty output helps no one.
            return Err(io::Error::other(NothingToWrite));
        }
        Ok(())
    });
    match result {
        Err(e)
            if e.get_ref()
                .is_some_and(|inner| inner.is::<NothingToWrite>()) => {}
        other => other?,
    }
    Ok(ConvertReport { written, lossy })
}
