//! Conversations given as a list of turns: OpenAI chat (`messages` with
//! `role`/`content`) and ShareGPT (`conversations` with `from`/`value`).
//! Both readers accept either key spelling, as real files mix them.

use super::fields::{Fields, join_index, type_name, wrong_type};
use crate::data::finding::{FindingKind, Problem};
use crate::data::sample::{Conversation, Message, Role, ToolCall};
use serde_json::Value;

pub fn read_chat(f: &mut Fields) -> Option<Conversation> {
    let tools = f.obj.get("tools").cloned().filter(|t| !t.is_null());
    read_turns(f, "messages", None, tools)
}

pub fn read_sharegpt(f: &mut Fields) -> Option<Conversation> {
    let system = f.optional_string("system").filter(|s| !s.is_empty());
    let tools = match f.obj.get("tools") {
        // ShareGPT keeps tool schemas as a JSON string; parse it when we can.
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(serde_json::from_str(s).unwrap_or(Value::String(s.clone()))),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.clone()),
    };
    read_turns(f, "conversations", system.map(str::to_string), tools)
}

fn role_of(name: &str) -> Option<Role> {
    Some(match name {
        "system" => Role::System,
        "user" | "human" => Role::User,
        "assistant" | "gpt" | "model" | "bot" | "function_call" => Role::Assistant,
        "tool" | "observation" | "function" | "ipython" => Role::Tool,
        _ => return None,
    })
}

fn read_turns(
    f: &mut Fields,
    key: &str,
    system: Option<String>,
    tools: Option<Value>,
) -> Option<Conversation> {
    let items = f.array(key)?;
    let list_path = f.at(key);
    let mut conv = Conversation {
        system,
        messages: Vec::with_capacity(items.len()),
        tools,
    };
    let mut paths = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = join_index(&list_path, i);
        let Value::Object(obj) = item else {
            f.push(wrong_type(&path, "an object", item));
            continue;
        };
        let mut turn = f.element(path.clone(), obj);
        if let Some(message) = read_turn(&mut turn) {
            // A leading system turn is the conversation's system text.
            if message.role == Role::System && conv.messages.is_empty() && conv.system.is_none() {
                conv.system = Some(message.content);
            } else {
                conv.messages.push(message);
                paths.push(path);
            }
        }
    }
    check_order(f, &conv.messages, &paths, &list_path);
    Some(conv)
}

fn read_turn(t: &mut Fields) -> Option<Message> {
    let role_key = if t.obj.contains_key("from") {
        "from"
    } else {
        "role"
    };
    let role_name = t.string(role_key)?;
    let Some(role) = role_of(role_name) else {
        let path = t.at(role_key);
        t.push(Problem::error(
            FindingKind::UnknownShape,
            path,
            format!("unknown role `{role_name}`; expected system, user, assistant or tool (or human, gpt, function_call, observation)"),
        ));
        return None;
    };
    let content_key = if t.obj.contains_key("value") {
        "value"
    } else {
        "content"
    };
    let content_path = t.at(content_key);
    let mut tool_calls = read_tool_calls(t);
    let content = match t.obj.get(content_key) {
        None | Some(Value::Null) if !tool_calls.is_empty() => String::new(),
        None | Some(Value::Null) => {
            t.push(Problem::error(
                FindingKind::MissingField,
                content_path,
                format!("required field `{content_key}` is missing"),
            ));
            return None;
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => join_parts(t, parts, &content_path)?,
        Some(other) => {
            t.push(wrong_type(
                &content_path,
                "a string or a list of parts",
                other,
            ));
            return None;
        }
    };
    let mut message = Message::new(role, content);
    // ShareGPT's function_call turn holds the call as JSON text in its value.
    if role_name == "function_call"
        && let Some(calls) = parse_call_text(&message.content)
    {
        tool_calls = calls;
        message.content.clear();
    }
    message.tool_calls = tool_calls;
    message.tool_call_id = t
        .obj
        .get("tool_call_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    if message.content.trim().is_empty() && message.tool_calls.is_empty() {
        let problem = match role {
            Role::Assistant => Problem::error(
                FindingKind::EmptyReply,
                content_path,
                "assistant reply is empty",
            ),
            _ => Problem::warning(
                FindingKind::EmptyField,
                content_path,
                format!("{} message is empty", role.as_str()),
            ),
        };
        t.push(problem);
    }
    Some(message)
}

/// Content given as parts (`[{"type": "text", "text": ...}]`): text parts are
/// concatenated; other part types (images, audio) cannot be trained on here.
fn join_parts(t: &mut Fields, parts: &[Value], path: &str) -> Option<String> {
    let mut text = String::new();
    for (i, part) in parts.iter().enumerate() {
        let part_path = join_index(path, i);
        let piece = match part {
            Value::String(s) => Some(s.as_str()),
            Value::Object(obj) => obj
                .get("text")
                .or_else(|| obj.get("value"))
                .and_then(Value::as_str),
            _ => None,
        };
        match piece {
            Some(s) => text.push_str(s),
            None => {
                let kind = part
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or(type_name(part));
                t.push(Problem::error(
                    FindingKind::WrongType,
                    part_path,
                    format!("content part of type `{kind}` has no text; only text parts can be trained on"),
                ));
                return None;
            }
        }
    }
    Some(text)
}

fn read_tool_calls(t: &mut Fields) -> Vec<ToolCall> {
    let Some(value) = t.obj.get("tool_calls").filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    let path = t.at("tool_calls");
    let Value::Array(items) = value else {
        t.push(wrong_type(&path, "an array", value));
        return Vec::new();
    };
    let mut calls = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let function = item.get("function").unwrap_or(item);
        match function.get("name").and_then(Value::as_str) {
            Some(name) => calls.push(ToolCall {
                id: item.get("id").and_then(Value::as_str).map(str::to_string),
                name: name.to_string(),
                arguments: arguments_value(function.get("arguments")),
            }),
            None => t.push(Problem::error(
                FindingKind::MissingField,
                format!("{}.function.name", join_index(&path, i)),
                "tool call has no function name",
            )),
        }
    }
    calls
}

/// Arguments arrive as a JSON object or as JSON text; keep them as a value.
fn arguments_value(arguments: Option<&Value>) -> Value {
    match arguments {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        Some(other) => other.clone(),
        None => Value::Object(Default::default()),
    }
}

/// `{"name", "arguments"}` (or a list of them) written as text.
fn parse_call_text(text: &str) -> Option<Vec<ToolCall>> {
    let value: Value = serde_json::from_str(text).ok()?;
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    items
        .iter()
        .map(|item| {
            Some(ToolCall {
                id: None,
                name: item.get("name")?.as_str()?.to_string(),
                arguments: arguments_value(item.get("arguments")),
            })
        })
        .collect()
}

/// Role order a chat template can render and a trainer can learn from.
fn check_order(f: &mut Fields, messages: &[Message], paths: &[String], list_path: &str) {
    let mut previous: Option<Role> = None;
    for (message, path) in messages.iter().zip(paths) {
        match (previous, message.role) {
            (Some(Role::User), Role::User) => f.push(Problem::error(
                FindingKind::RoleOrder,
                path.clone(),
                "two user turns in a row",
            )),
            (Some(Role::Assistant), Role::Assistant) => f.push(Problem::warning(
                FindingKind::RoleOrder,
                path.clone(),
                "two assistant turns in a row",
            )),
            (None | Some(Role::User | Role::System), Role::Tool) => f.push(Problem::error(
                FindingKind::RoleOrder,
                path.clone(),
                "tool result that follows no assistant tool call",
            )),
            (Some(_), Role::System) => f.push(Problem::warning(
                FindingKind::RoleOrder,
                path.clone(),
                "system message in the middle of the conversation; many chat templates reject it",
            )),
            _ => {}
        }
        previous = Some(message.role);
    }
    if !messages.iter().any(|m| m.role == Role::Assistant) {
        f.push(Problem::error(
            FindingKind::NoAssistantReply,
            list_path.to_string(),
            "conversation has no assistant reply, so nothing would be trained",
        ));
    } else if let Some(last) = messages.last().filter(|m| m.role != Role::Assistant) {
        let path = paths.last().cloned().unwrap_or_default();
        f.push(Problem::error(
            FindingKind::RoleOrder,
            path,
            format!(
                "conversation ends with a {} turn, not an assistant reply",
                last.role.as_str()
            ),
        ));
    }
}
