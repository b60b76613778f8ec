//! What the model's chat template leaves out of a sample. A template that
//! never renders tool calls or tool schemas makes them vanish from training
//! without a trace, so each sample where that happens gets a finding.

use crate::data::finding::{FindingKind, Problem};
use crate::data::sample::{Conversation, Dropped};
use serde_json::Value;

/// Which parts of a conversation the model's chat template drops
/// (supplied by the model layer).
pub type TemplateCheck<'a> = &'a (dyn Fn(&Conversation) -> Vec<Dropped> + Sync);

/// One problem per dropped part, at its field in the record `value`.
pub fn problems(dropped: &[Dropped], conv: &Conversation, value: Option<&Value>) -> Vec<Problem> {
    let kind = FindingKind::DroppedByTemplate;
    dropped
        .iter()
        .map(|&part| {
            let what = describe(part, conv);
            match part {
                Dropped::Tools => Problem::warning(
                    kind,
                    "tools",
                    format!(
                        "{what}: the model never sees the functions it learns to call; a template that takes `tools` (Qwen2.5's, say) keeps them"
                    ),
                ),
                Dropped::ToolCalls(i) => {
                    let field = call_field(value, conv, i);
                    if conv.messages[i].content.trim().is_empty() {
                        Problem::error(
                            kind,
                            field,
                            format!("{what}: this assistant turn trains as an empty reply"),
                        )
                    } else {
                        Problem::warning(
                            kind,
                            field,
                            format!("{what}: only the turn's text is trained"),
                        )
                    }
                }
            }
        })
        .collect()
}

/// "the chat template drops the tool call `f` (message 4)", for findings
/// and the token view.
pub fn describe(part: Dropped, conv: &Conversation) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match part {
        Dropped::Tools => {
            let n = conv
                .tools
                .as_ref()
                .and_then(Value::as_array)
                .map_or(1, Vec::len);
            format!(
                "the chat template drops the `tools` schemas ({n} tool{})",
                plural(n)
            )
        }
        Dropped::ToolCalls(i) => {
            let calls = &conv.messages[i].tool_calls;
            let names: Vec<String> = calls.iter().map(|c| format!("`{}`", c.name)).collect();
            format!(
                "the chat template drops the tool call{} {} (message {})",
                plural(calls.len()),
                names.join(", "),
                i + 1
            )
        }
    }
}

/// JSON path of the turn holding message `i`'s calls: the turns that carry
/// calls (`tool_calls`, or ShareGPT's `function_call`) in order match the
/// messages that hold them.
fn call_field(value: Option<&Value>, conv: &Conversation, i: usize) -> String {
    let Some((key, turns)) = ["messages", "conversations"]
        .iter()
        .find_map(|key| Some((*key, value?.get(*key)?.as_array()?)))
    else {
        return String::new();
    };
    let nth = conv.messages[..i]
        .iter()
        .filter(|m| !m.tool_calls.is_empty())
        .count();
    let carries_calls = |turn: &Value| {
        let calls = turn.get("tool_calls").and_then(Value::as_array);
        let role = turn.get("from").or_else(|| turn.get("role"));
        calls.is_some_and(|c| !c.is_empty())
            || role.and_then(Value::as_str) == Some("function_call")
    };
    turns
        .iter()
        .enumerate()
        .filter(|(_, turn)| carries_calls(turn))
        .nth(nth)
        .map_or(key.to_string(), |(at, _)| format!("{key}[{at}]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sample::tool_call_exchange;
    use serde_json::json;

    #[test]
    fn each_dropped_part_names_its_field() {
        let value = json!({"conversations": [
            {"from": "human", "value": "find a recipe"},
            {"from": "function_call", "value": "{\"name\": \"search\", \"arguments\": {}}"},
            {"from": "observation", "value": "{}"},
            {"from": "gpt", "value": "Found one."}
        ], "tools": "[{\"name\": \"search\"}]"});
        let conv = tool_call_exchange("search", json!({}));
        let found = problems(
            &[Dropped::Tools, Dropped::ToolCalls(1)],
            &conv,
            Some(&value),
        );
        assert_eq!(found[0].field, "tools");
        assert!(
            found[0].message.contains("(1 tool)"),
            "{}",
            found[0].message
        );
        assert_eq!(found[1].field, "conversations[1]");
        assert_eq!(found[1].severity, crate::data::Severity::Error);
        assert!(
            found[1]
                .message
                .starts_with("the chat template drops the tool call `search` (message 2)"),
            "{}",
            found[1].message
        );
    }
}
