//! Alpaca: `instruction`, `input`, `output`, optional `system` and `history`.

use super::fields::{Fields, join_index, wrong_type};
use crate::data::finding::{FindingKind, Problem};
use crate::data::sample::{Conversation, Message, Role};
use serde_json::Value;

pub fn read(f: &mut Fields) -> Option<Conversation> {
    let instruction = f.string("instruction");
    let input = f.optional_string("input").unwrap_or("");
    let output = f.string("output");
    let system = f.optional_string("system").filter(|s| !s.is_empty());
    let mut messages = read_history(f);

    // The user turn is the instruction and the input, one per line.
    let user = [instruction.unwrap_or(""), input]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    if instruction.is_some() && user.trim().is_empty() {
        let path = f.at("instruction");
        f.push(Problem::error(
            FindingKind::EmptyField,
            path,
            "instruction and input are both empty",
        ));
    }
    if output.is_some_and(|o| o.trim().is_empty()) {
        let path = f.at("output");
        f.push(Problem::error(
            FindingKind::EmptyReply,
            path,
            "output is empty",
        ));
    }
    messages.push(Message::new(Role::User, user));
    messages.push(Message::new(Role::Assistant, output?));
    instruction?;
    Some(Conversation {
        system: system.map(str::to_string),
        messages,
        tools: None,
    })
}

/// `history`: earlier `[user, assistant]` pairs, oldest first.
fn read_history(f: &mut Fields) -> Vec<Message> {
    let mut messages = Vec::new();
    let Some(history) = f.obj.get("history").filter(|h| !h.is_null()) else {
        return messages;
    };
    let path = f.at("history");
    let Value::Array(pairs) = history else {
        f.push(wrong_type(
            &path,
            "a list of [user, assistant] pairs",
            history,
        ));
        return messages;
    };
    for (i, pair) in pairs.iter().enumerate() {
        match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(user), Value::String(reply)]) => {
                messages.push(Message::new(Role::User, user.clone()));
                messages.push(Message::new(Role::Assistant, reply.clone()));
            }
            _ => f.push(wrong_type(
                &join_index(&path, i),
                "a pair of strings [user, assistant]",
                pair,
            )),
        }
    }
    messages
}
