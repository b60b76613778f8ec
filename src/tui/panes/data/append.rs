//! A conversation from the Chat pane (`{"messages": [...]}`, OpenAI chat
//! style) rewritten in the open file's own format, where that format can
//! hold it.

use crate::data::Format;
use crate::data::convert::{Target, convert_sample};
use crate::data::read::to_sample;
use crate::data::sample::{Role, Sample};
use serde_json::{Value, json};

/// The record to append, and notes on anything the format could not hold.
pub fn to_file_format(
    chat: &Value,
    file_format: Option<Format>,
) -> Result<(Value, Vec<String>), String> {
    let mut problems = Vec::new();
    let sample =
        to_sample(Format::Chat, chat, &mut problems).ok_or_else(|| match problems.first() {
            Some(p) => format!(
                "the conversation to append is not valid chat data: {}",
                p.message
            ),
            None => "the conversation to append is not valid chat data".to_string(),
        })?;
    let Sample::Chat(conv) = &sample else {
        return Err("the conversation to append holds no messages".to_string());
    };
    let target = match file_format {
        None | Some(Format::Chat) => Target::Chat,
        Some(Format::Alpaca) => Target::Alpaca,
        Some(Format::ShareGpt) => Target::ShareGpt,
        Some(Format::Completion) => {
            return match (conv.system.as_ref(), conv.messages.as_slice()) {
                (None, [user, answer])
                    if user.role == Role::User && answer.role == Role::Assistant =>
                {
                    Ok((
                        json!({"prompt": user.content, "completion": answer.content}),
                        Vec::new(),
                    ))
                }
                _ => Err("this file is prompt/completion: only one question with one answer (no system text) can be appended".to_string()),
            };
        }
        Some(Format::MultiFile) => return to_multifile(conv),
        Some(other) => {
            return Err(format!(
                "this file is {}: a chat conversation cannot be appended to it",
                other.label()
            ));
        }
    };
    let (value, notes) = convert_sample(&sample, target);
    let value = value.ok_or_else(|| format!("cannot append: {}", notes.join("; ")))?;
    Ok((value, notes))
}

/// A request answered with `{"files": {...}}` becomes a multi-file record.
fn to_multifile(conv: &crate::data::Conversation) -> Result<(Value, Vec<String>), String> {
    let user = conv.messages.iter().rev().find(|m| m.role == Role::User);
    let files = conv
        .last_reply()
        .and_then(|m| serde_json::from_str::<Value>(&m.content).ok())
        .and_then(|v| v.get("files").filter(|f| f.is_object()).cloned());
    match (user, files) {
        (Some(user), Some(files)) => Ok((
            json!({"prompt": user.content, "output": {"files": files}}),
            vec!["the request was kept as the prompt; its context is not split out".to_string()],
        )),
        _ => Err(
            "this file is multi-file code: only an answer that is a JSON object {\"files\": {...}} can be appended"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> Value {
        json!({"messages": [
            {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."}]})
    }

    #[test]
    fn converts_to_each_format_that_can_hold_it() {
        let (v, _) = to_file_format(&chat(), Some(Format::Alpaca)).unwrap();
        assert_eq!(v["instruction"], "Hi?");
        assert_eq!(v["output"], "Hello.");
        let (v, _) = to_file_format(&chat(), Some(Format::ShareGpt)).unwrap();
        assert_eq!(v["conversations"][1]["from"], "gpt");
        let (v, _) = to_file_format(&chat(), Some(Format::Completion)).unwrap();
        assert_eq!(v["completion"], "Hello.");
        let (v, _) = to_file_format(&chat(), None).unwrap();
        assert_eq!(v["messages"][0]["content"], "Hi?");
        let err = to_file_format(&chat(), Some(Format::Text)).unwrap_err();
        assert!(err.contains("raw text"), "{err}");
        assert!(to_file_format(&chat(), Some(Format::MultiFile)).is_err());
        let code = json!({"messages": [
            {"role": "user", "content": "Make it"},
            {"role": "assistant", "content": "{\"files\": {\"a.py\": \"x\"}}"}]});
        let (v, _) = to_file_format(&code, Some(Format::MultiFile)).unwrap();
        assert_eq!(v["output"]["files"]["a.py"], "x");
    }
}
