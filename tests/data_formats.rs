//! Each input format is detected and read into the canonical conversation,
//! and conversions between formats carry every sample over unchanged.

use serde_json::{Value, json};
use tunebench::data::convert::{Target, convert_sample};
use tunebench::data::parse::parse_record;
use tunebench::data::{Format, Message, Role, Sample};

fn read(record: &Value) -> (Option<Format>, Sample) {
    let parsed = parse_record(record.to_string().as_bytes(), None, None);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    (parsed.format, parsed.sample.expect("a sample"))
}

fn roles_and_text(sample: &Sample) -> Vec<(Role, String)> {
    let conv = sample.as_chat().unwrap();
    conv.with_system_message()
        .iter()
        .map(|m: &Message| (m.role, m.content.clone()))
        .collect()
}

#[test]
fn text_and_completion() {
    let (format, sample) = read(&json!({"text": "plain words"}));
    assert_eq!(format, Some(Format::Text));
    assert_eq!(sample, Sample::Text("plain words".into()));
    let (format, sample) = read(&json!({"prompt": "2+2?", "completion": "4, of course."}));
    assert_eq!(format, Some(Format::Completion));
    assert_eq!(
        roles_and_text(&sample),
        vec![
            (Role::User, "2+2?".into()),
            (Role::Assistant, "4, of course.".into())
        ]
    );
}

#[test]
fn alpaca_with_system_history_and_input() {
    let (format, sample) = read(&json!({
        "instruction": "Summarise", "input": "Long text.", "output": "Short.",
        "system": "Be brief.", "history": [["Hi", "Hello!"]]
    }));
    assert_eq!(format, Some(Format::Alpaca));
    assert_eq!(
        roles_and_text(&sample),
        vec![
            (Role::System, "Be brief.".into()),
            (Role::User, "Hi".into()),
            (Role::Assistant, "Hello!".into()),
            (Role::User, "Summarise\nLong text.".into()),
            (Role::Assistant, "Short.".into()),
        ]
    );
}

#[test]
fn openai_chat_with_parts_and_tool_calls() {
    let (format, sample) = read(&json!({"messages": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "value": "Oslo?"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"},
        {"role": "assistant", "content": "It is 3 degrees in Oslo."}
    ]}));
    assert_eq!(format, Some(Format::Chat));
    let conv = sample.as_chat().unwrap();
    assert_eq!(conv.system.as_deref(), Some("Use tools."));
    assert_eq!(conv.messages[0].content, "Weather in Oslo?");
    let call = &conv.messages[1].tool_calls[0];
    assert_eq!(
        (call.id.as_deref(), call.name.as_str()),
        (Some("c1"), "get_weather")
    );
    assert_eq!(call.arguments, json!({"city": "Oslo"}));
    assert_eq!(conv.messages[2].role, Role::Tool);
    assert_eq!(conv.messages[2].tool_call_id.as_deref(), Some("c1"));
}

#[test]
fn sharegpt_with_function_calls_and_tools() {
    let (format, sample) = read(&json!({
        "conversations": [
            {"from": "human", "value": "Convert 5 USD to EUR"},
            {"from": "function_call", "value": "{\"name\": \"convert\", \"arguments\": {\"amount\": 5}}"},
            {"from": "observation", "value": "{\"eur\": 4.6}"},
            {"from": "gpt", "value": "5 USD is about 4.60 EUR."}
        ],
        "system": "You convert money.",
        "tools": "[{\"name\": \"convert\", \"parameters\": {}}]"
    }));
    assert_eq!(format, Some(Format::ShareGpt));
    let conv = sample.as_chat().unwrap();
    assert_eq!(conv.system.as_deref(), Some("You convert money."));
    assert_eq!(conv.messages[1].tool_calls[0].name, "convert");
    assert_eq!(conv.messages[2].role, Role::Tool);
    assert_eq!(
        conv.tools,
        Some(json!([{"name": "convert", "parameters": {}}]))
    );
}

#[test]
fn multifile_renders_request_and_files_answer() {
    let (format, sample) = read(&json!({
        "id": "x-1", "prompt": "Build a tiny API.",
        "context": {"domain": "demo", "tech_stack": ["python", "fastapi"], "constraints": ["no database"]},
        "output": {"files": {"app/main.py": "print(1)\n", "README.md": "# Demo\n"}},
        "quality_score": 0.9
    }));
    assert_eq!(format, Some(Format::MultiFile));
    let conv = sample.as_chat().unwrap();
    assert!(conv.system.as_deref().unwrap().contains("\"files\""));
    let request = &conv.messages[0].content;
    assert!(
        request.starts_with("## Request\nBuild a tiny API.\n"),
        "{request}"
    );
    assert!(
        request.contains(
            "- Domain: demo\n- Stack: python, fastapi\n- Constraints:\n  - no database\n"
        ),
        "{request}"
    );
    assert!(request.contains("## Expected output"));
    let answer: Value = serde_json::from_str(&conv.messages[1].content).unwrap();
    assert_eq!(
        answer,
        json!({"files": {"app/main.py": "print(1)\n", "README.md": "# Demo\n"}})
    );
}

#[test]
fn preference_records_are_recognised_not_read() {
    let record = json!({"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}});
    let parsed = parse_record(record.to_string().as_bytes(), None, None);
    assert_eq!(parsed.format, Some(Format::Preference));
    assert!(parsed.sample.is_none());
    assert_eq!(
        parsed.problems[0].kind,
        tunebench::data::FindingKind::PreferenceRecord
    );
}

#[test]
fn forced_format_reads_records_as_told() {
    let record = json!({"text": "hello", "prompt": "p", "completion": "c"});
    let parsed = parse_record(
        record.to_string().as_bytes(),
        None,
        Some(Format::Completion),
    );
    assert_eq!(parsed.format, Some(Format::Completion));
    assert!(matches!(parsed.sample, Some(Sample::Chat(_))));
}

/// Converting to a format and reading the result back gives the same
/// canonical sample.
fn assert_round_trip(record: Value, target: Target) {
    let (_, sample) = read(&record);
    let (converted, notes) = convert_sample(&sample, target);
    assert!(notes.is_empty(), "{target:?} lost: {notes:?}");
    let (_, back) = read(&converted.unwrap());
    assert_eq!(back, sample, "{target:?}");
}

#[test]
fn conversions_round_trip() {
    let alpaca =
        json!({"instruction": "Q2", "output": "A2", "system": "S", "history": [["Q1", "A1"]]});
    let chat_tools = json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{\"c\": 1}"}}]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."}
    ], "tools": [{"name": "w"}]});
    let code = json!({"prompt": "Make it", "output": {"files": {"a.py": "x = 1\n"}}});
    for target in [Target::Chat, Target::Alpaca, Target::ShareGpt] {
        assert_round_trip(alpaca.clone(), target);
        assert_round_trip(code.clone(), target);
    }
    assert_round_trip(chat_tools.clone(), Target::Chat);
    assert_round_trip(chat_tools.clone(), Target::ShareGpt);
}

#[test]
fn lossy_conversions_say_what_was_lost() {
    let (_, sample) = read(&json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."}
    ]}));
    let (value, notes) = convert_sample(&sample, Target::Alpaca);
    assert_eq!(
        value.unwrap(),
        json!({"instruction": "Weather?", "input": "", "output": "It is sunny."})
    );
    assert!(notes.iter().any(|n| n.contains("tool call")), "{notes:?}");
    let (value, notes) = convert_sample(&Sample::Text("t".into()), Target::Chat);
    assert!(value.is_none() && !notes.is_empty());
}
