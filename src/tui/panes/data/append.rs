//! A conversation from the Chat pane (`{"messages": [...]}`, OpenAI chat
//! style) rewritten in the open file's own format, where that format can
//! hold it. An answer to a dataset sample's own request keeps that sample's
//! record: only the answer changes, every other field stays as it was.

use crate::data::Format;
use crate::data::convert::{Target, convert_sample};
use crate::data::read::to_sample;
use crate::data::sample::{Conversation, Role, Sample};
use crate::tui::action::Appended;
use serde_json::{Value, json};

/// The record to append for an exchange, and notes on anything the format
/// could not hold.
pub fn to_record(
    appended: &Appended,
    file_format: Option<Format>,
) -> Result<(Value, Vec<String>), String> {
    // The sample's own shape, while the open file still holds that format
    // (another file may have been opened since).
    let origin = appended
        .origin
        .as_ref()
        .and_then(|origin| Some((origin, Format::detect(origin)?)))
        .filter(|(_, format)| file_format.is_none_or(|f| f == *format));
    if let Some((origin, format)) = origin {
        let conv = chat_conversation(&appended.chat)?;
        if let Some(answer) = new_answer_to(origin, format, &conv) {
            return with_answer(origin.clone(), format, answer).map(|record| (record, Vec::new()));
        }
    }
    to_file_format(&appended.chat, file_format)
}

/// The answer `conv` gives when it asks exactly what `origin` asked (same
/// system text, same turns up to the sample's final answer).
fn new_answer_to<'a>(origin: &Value, format: Format, conv: &'a Conversation) -> Option<&'a str> {
    let Some(Sample::Chat(asked)) = to_sample(format, origin, &mut Vec::new()) else {
        return None;
    };
    let (answer, before) = conv.messages.split_last()?;
    let (_, asked_before) = asked.messages.split_last()?;
    let same_request = asked.system == conv.system
        && asked.messages.last()?.role == Role::Assistant
        && before == asked_before;
    (same_request && answer.role == Role::Assistant).then_some(answer.content.as_str())
}

/// `record` with its answer replaced by `answer`, where its format keeps it.
fn with_answer(mut record: Value, format: Format, answer: &str) -> Result<Value, String> {
    let answer = match format {
        Format::MultiFile => answer_files(answer).ok_or_else(not_files)?,
        _ => Value::String(answer.to_string()),
    };
    let slot = match format {
        Format::Completion => record.get_mut("completion"),
        Format::Alpaca => record.get_mut("output"),
        Format::MultiFile => record.pointer_mut("/output/files"),
        Format::Chat => last_turn(&mut record, "messages").and_then(|t| t.get_mut("content")),
        Format::ShareGpt => {
            last_turn(&mut record, "conversations").and_then(|t| t.get_mut("value"))
        }
        Format::Text | Format::Preference => None,
    };
    let slot = slot.ok_or_else(|| {
        format!(
            "cannot append: the sample's answer has no place in {} records",
            format.label()
        )
    })?;
    *slot = answer;
    Ok(record)
}

fn last_turn<'a>(record: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    record.get_mut(key)?.as_array_mut()?.last_mut()
}

fn chat_conversation(chat: &Value) -> Result<Conversation, String> {
    let mut problems = Vec::new();
    match to_sample(Format::Chat, chat, &mut problems) {
        Some(Sample::Chat(conv)) => Ok(conv),
        Some(_) => Err("the conversation to append holds no messages".to_string()),
        None => Err(match problems.first() {
            Some(p) => format!(
                "the conversation to append is not valid chat data: {}",
                p.message
            ),
            None => "the conversation to append is not valid chat data".to_string(),
        }),
    }
}

/// A multi-file answer: the `files` object of `{"files": {...}}`.
fn answer_files(answer: &str) -> Option<Value> {
    serde_json::from_str::<Value>(answer)
        .ok()?
        .get("files")
        .filter(|f| f.is_object())
        .cloned()
}

fn not_files() -> String {
    "this file is multi-file code: only an answer that is a JSON object {\"files\": {...}} can be appended"
        .to_string()
}

/// The conversation alone in the file's format (a free prompt: no sample's
/// fields to keep).
fn to_file_format(
    chat: &Value,
    file_format: Option<Format>,
) -> Result<(Value, Vec<String>), String> {
    let conv = chat_conversation(chat)?;
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
        Some(Format::MultiFile) => return to_multifile(&conv),
        Some(other) => {
            return Err(format!(
                "this file is {}: a chat conversation cannot be appended to it",
                other.label()
            ));
        }
    };
    let (value, notes) = convert_sample(&Sample::Chat(conv), target);
    let value = value.ok_or_else(|| format!("cannot append: {}", notes.join("; ")))?;
    Ok((value, notes))
}

/// A request answered with `{"files": {...}}` becomes a multi-file record
/// whose prompt is the request alone.
fn to_multifile(conv: &Conversation) -> Result<(Value, Vec<String>), String> {
    let user = conv.messages.iter().rev().find(|m| m.role == Role::User);
    let files = conv.last_reply().and_then(|m| answer_files(&m.content));
    match (user, files) {
        (Some(user), Some(files)) => Ok((
            json!({"prompt": user.content, "output": {"files": files}}),
            Vec::new(),
        )),
        _ => Err(not_files()),
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

    fn project() -> Value {
        json!({"id": "p-1", "prompt": "Build a todo API",
            "context": {"domain": "todo", "task": "create"},
            "expected_architecture": ["app.py"],
            "output": {"files": {"app.py": "old"}}, "quality_score": 4})
    }

    /// The exchange the Chat pane builds from `record`: its conversation up
    /// to the answer, answered with `answer`.
    fn answered(record: &Value, format: Format, answer: &str) -> Appended {
        let Some(Sample::Chat(mut conv)) = to_sample(format, record, &mut Vec::new()) else {
            panic!("not a conversation: {record}");
        };
        conv.messages.last_mut().unwrap().content = answer.to_string();
        let mut messages = vec![json!({"role": "system", "content": conv.system})];
        for m in &conv.messages {
            messages.push(json!({"role": m.role.as_str(), "content": m.content}));
        }
        if conv.system.is_none() {
            messages.remove(0);
        }
        Appended {
            chat: json!({ "messages": messages }),
            origin: Some(record.clone()),
        }
    }

    #[test]
    fn an_answer_to_a_samples_request_keeps_the_samples_fields() {
        let new = answered(
            &project(),
            Format::MultiFile,
            r#"{"files": {"app.py": "new"}}"#,
        );
        let (record, notes) = to_record(&new, Some(Format::MultiFile)).unwrap();
        let mut expected = project();
        expected["output"]["files"]["app.py"] = json!("new");
        assert_eq!(record, expected);
        assert!(notes.is_empty(), "{notes:?}");

        let alpaca = json!({"instruction": "Sum", "input": "1 2", "output": "3", "source": "x"});
        let (record, _) = to_record(
            &answered(&alpaca, Format::Alpaca, "three"),
            Some(Format::Alpaca),
        )
        .unwrap();
        assert_eq!(
            record,
            json!({"instruction": "Sum", "input": "1 2", "output": "three", "source": "x"})
        );

        let sharegpt = json!({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}], "id": 7});
        let (record, _) = to_record(
            &answered(&sharegpt, Format::ShareGpt, "Hello"),
            Some(Format::ShareGpt),
        )
        .unwrap();
        assert_eq!(
            record["conversations"][1],
            json!({"from": "gpt", "value": "Hello"})
        );
        assert_eq!(record["id"], 7);
    }

    #[test]
    fn a_changed_request_is_a_free_prompt() {
        let mut edited = answered(&project(), Format::MultiFile, r#"{"files": {"b.py": "x"}}"#);
        edited.chat["messages"][1]["content"] = json!("Build a notes API");
        let (record, _) = to_record(&edited, Some(Format::MultiFile)).unwrap();
        assert_eq!(
            record,
            json!({"prompt": "Build a notes API", "output": {"files": {"b.py": "x"}}})
        );
    }

    #[test]
    fn a_sample_from_a_file_of_another_format_is_converted() {
        let alpaca = json!({"instruction": "Sum", "output": "3", "source": "x"});
        let new = answered(&alpaca, Format::Alpaca, "three");
        let (record, _) = to_record(&new, Some(Format::Chat)).unwrap();
        assert_eq!(
            record,
            json!({"messages": [
                {"role": "user", "content": "Sum"},
                {"role": "assistant", "content": "three"}]})
        );
    }

    #[test]
    fn a_multi_file_answer_that_is_not_files_is_refused() {
        let prose = answered(&project(), Format::MultiFile, "Here is the code: ...");
        let err = to_record(&prose, Some(Format::MultiFile)).unwrap_err();
        assert!(err.contains("{\"files\""), "{err}");
    }
}
