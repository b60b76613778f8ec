//! Chat templates: the Jinja text a model ships (rendered the way
//! transformers renders it: trim_blocks, lstrip_blocks, Python string
//! methods, `raise_exception`, Python-style `tojson`), or a built-in one for
//! base models that have none.

use super::ModelError;
use super::pyjson;
use crate::data::sample::{Conversation, Dropped, Message};
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, Value, context};
use serde_json::{Map, Value as Json, json};
use std::str::FromStr;

/// Prompt layouts for models without a chat template of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTemplate {
    /// `<|im_start|>role\n...<|im_end|>` turns (the default).
    ChatMl,
    /// `### Instruction:` / `### Response:` sections.
    Alpaca,
    /// The turns' text one after another, each answer closed by EOS.
    Plain,
}

impl BuiltinTemplate {
    pub fn source(self) -> &'static str {
        match self {
            BuiltinTemplate::ChatMl => concat!(
                "{% for message in messages %}",
                "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}",
                "{% endfor %}",
                "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
            ),
            BuiltinTemplate::Alpaca => concat!(
                "{% for message in messages %}",
                "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}",
                "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}",
                "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}",
                "{% else %}{{ '### Input:\\n' + message['content'] + '\\n\\n' }}",
                "{% endif %}{% endfor %}",
                "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
            ),
            BuiltinTemplate::Plain => concat!(
                "{% for message in messages %}",
                "{{ message['content'] }}{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}",
                "{% endfor %}"
            ),
        }
    }
}

impl FromStr for BuiltinTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "chatml" => Ok(BuiltinTemplate::ChatMl),
            "alpaca" => Ok(BuiltinTemplate::Alpaca),
            "plain" => Ok(BuiltinTemplate::Plain),
            _ => Err(format!(
                "unknown built-in template `{s}`; expected chatml, alpaca or plain"
            )),
        }
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ModelError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| ModelError::Template(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Renders the messages (system first, if any) as the model sees them.
    pub fn render(
        &self,
        messages: &[Message],
        tools: Option<&Json>,
        add_generation_prompt: bool,
    ) -> Result<String, ModelError> {
        let messages: Vec<Json> = messages.iter().map(message_json).collect();
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| ModelError::Template(describe(&e)))?;
        template
            .render(context! {
                messages => Value::from_serialize(&messages),
                tools => tools.map(Value::from_serialize),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| ModelError::Template(describe(&e)))
    }
}

impl ChatTemplate {
    /// The tool calls and tool schemas of `conv` that the chat template
    /// leaves out: rendering without them gives the same text. (A sample
    /// the template cannot render at all is the token count's to report.)
    pub fn dropped(&self, conv: &Conversation) -> Vec<Dropped> {
        let messages = conv.with_system_message();
        let offset = messages.len() - conv.messages.len();
        let tools = conv.tools.as_ref();
        let render =
            |messages: &[Message], tools: Option<&Json>| self.render(messages, tools, false);
        let Ok(full) = render(&messages, tools) else {
            return Vec::new();
        };
        let mut dropped = Vec::new();
        // An empty list offers nothing to drop.
        let offered = tools.is_some_and(|t| t.as_array().is_none_or(|list| !list.is_empty()));
        if offered && render(&messages, None).is_ok_and(|text| text == full) {
            dropped.push(Dropped::Tools);
        }
        for (i, message) in messages.iter().enumerate() {
            if message.tool_calls.is_empty() {
                continue;
            }
            let mut without = messages.clone();
            without[i].tool_calls.clear();
            if render(&without, tools).is_ok_and(|text| text == full) {
                dropped.push(Dropped::ToolCalls(i - offset));
            }
        }
        dropped
    }
}

/// A message as transformers passes it to templates.
fn message_json(m: &Message) -> Json {
    let mut obj = Map::new();
    obj.insert("role".into(), json!(m.role.as_str()));
    obj.insert("content".into(), json!(m.content));
    if !m.tool_calls.is_empty() {
        let calls: Vec<Json> = m
            .tool_calls
            .iter()
            .map(|c| json!({"type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        obj.insert("tool_calls".into(), Json::Array(calls));
    }
    if let Some(id) = &m.tool_call_id {
        obj.insert("tool_call_id".into(), json!(id));
    }
    Json::Object(obj)
}

fn describe(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// `tojson`, `tojson(4)` and `tojson(indent=4)`, as Llama 3 templates write it.
fn tojson(value: Value, indent: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let indent = match indent {
        Some(n) => Some(n),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(pyjson::dumps(&json, indent))
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now` as Llama 3 templates call it, for the common directives.
fn strftime_now(format: String) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let now = crate::clock::UtcTime::now();
    let (y, m, d) = (now.year, now.month, now.day);
    let month = MONTHS[(m - 1) as usize];
    format
        .replace("%d", &format!("{d:02}"))
        .replace("%m", &format!("{m:02}"))
        .replace("%Y", &y.to_string())
        .replace("%B", month)
        .replace("%b", &month[..3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sample::Role;

    #[test]
    fn chatml_renders_turns_and_generation_prompt() {
        let t = ChatTemplate::new(BuiltinTemplate::ChatMl.source(), "", "<|im_end|>").unwrap();
        let messages = [Message::new(Role::User, "hi")];
        assert_eq!(
            t.render(&messages, None, true).unwrap(),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_idioms_used_by_real_templates() {
        let source = "{%- set ns = namespace(n=0) -%}{% for m in messages[::-1] %}{% set ns.n = ns.n + 1 %}{{ m['content'].strip().split(' ')[0] }}|{% endfor %}{{ ns.n }}{{ {'a': 1}|tojson }}{% for k, v in {'x': 2}.items() %}{{ k }}{{ v }}{% endfor %}{% if not messages[0]['content'].startswith(' h') %}{{ raise_exception('bad') }}{% endif %}";
        let t = ChatTemplate::new(source, "", "").unwrap();
        let messages = [
            Message::new(Role::User, " hello world "),
            Message::new(Role::Assistant, "ok"),
        ];
        assert_eq!(
            t.render(&messages, None, false).unwrap(),
            "ok|hello|2{\"a\": 1}x2"
        );
        let err = t
            .render(&[Message::new(Role::User, "x")], None, false)
            .unwrap_err();
        assert!(err.to_string().contains("bad"), "{err}");
    }

    #[test]
    fn tojson_takes_indent_by_position_or_name() {
        let t = ChatTemplate::new(
            "{{ {'a': [1]} | tojson(indent=2) }}|{{ {'b': 2} | tojson(2) }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[], None, false).unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}|{\n  \"b\": 2\n}"
        );
    }
}

#[cfg(test)]
mod dropped_tests {
    use super::*;
    use crate::data::sample::tool_call_exchange;
    use serde_json::json;

    /// The tool parts of Qwen2.5's template: schemas in the system turn,
    /// calls as `<tool_call>` JSON.
    const WITH_TOOLS: &str = concat!(
        "{% if tools %}<|im_start|>system\n# Tools\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}",
        "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}",
        "{% if message.tool_calls %}{% for call in message.tool_calls %}<tool_call>\n",
        "{\"name\": \"{{ call.function.name }}\", \"arguments\": {{ call.function.arguments | tojson }}}\n</tool_call>",
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    );

    fn with_a_call() -> Conversation {
        let mut conv = tool_call_exchange("search_recipes", json!({"ingredients": ["rice"]}));
        conv.system = Some("Be brief.".into());
        conv
    }

    #[test]
    fn chatml_drops_tools_and_calls_a_tool_template_keeps_them() {
        let conv = with_a_call();
        let chatml = ChatTemplate::new(BuiltinTemplate::ChatMl.source(), "", "").unwrap();
        assert_eq!(
            chatml.dropped(&conv),
            vec![Dropped::Tools, Dropped::ToolCalls(1)]
        );
        let mut no_tools = conv.clone();
        no_tools.tools = Some(json!([]));
        assert_eq!(chatml.dropped(&no_tools), vec![Dropped::ToolCalls(1)]);
        let qwen = ChatTemplate::new(WITH_TOOLS, "", "").unwrap();
        assert_eq!(qwen.dropped(&conv), vec![]);
        let text = qwen
            .render(&conv.with_system_message(), conv.tools.as_ref(), false)
            .unwrap();
        assert!(
            text.contains(
                "\"name\": \"search_recipes\", \"arguments\": {\"ingredients\": [\"rice\"]}"
            ),
            "{text}"
        );
        assert!(
            text.contains("# Tools\n{\"name\": \"search_recipes\"}"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod builtin_tests {
    use super::*;
    use crate::data::sample::Role;

    #[test]
    fn alpaca_and_plain_layouts() {
        let messages = [
            Message::new(Role::System, "Be kind."),
            Message::new(Role::User, "Greet me"),
            Message::new(Role::Assistant, "Hello!"),
        ];
        let alpaca = ChatTemplate::new(BuiltinTemplate::Alpaca.source(), "", "</s>").unwrap();
        assert_eq!(
            alpaca.render(&messages, None, false).unwrap(),
            "Be kind.\n\n### Instruction:\nGreet me\n\n### Response:\nHello!</s>\n\n"
        );
        assert_eq!(
            alpaca.render(&messages[..2], None, true).unwrap(),
            "Be kind.\n\n### Instruction:\nGreet me\n\n### Response:\n"
        );
        let plain = ChatTemplate::new(BuiltinTemplate::Plain.source(), "", "</s>").unwrap();
        assert_eq!(
            plain.render(&messages[1..], None, false).unwrap(),
            "Greet me\nHello!</s>\n"
        );
        assert_eq!(
            "ChatML".parse::<BuiltinTemplate>().unwrap(),
            BuiltinTemplate::ChatMl
        );
    }
}
