//! The canonical form every input record is converted into.
//!
//! Whatever the file format (Alpaca, ShareGPT, OpenAI chat, ...), a training
//! record becomes either raw text or a [`Conversation`]. Everything downstream
//! (templates, token masks, statistics, conversion) works on this form only.

use serde_json::Value;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    pub const ALL: [Role; 4] = [Role::System, Role::User, Role::Assistant, Role::Tool];
}

/// A function call made by the assistant.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: Option<String>,
    pub name: String,
    /// Arguments as JSON (an object when the source held valid JSON, else a string).
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    /// For tool results: the call this message answers, when the source says.
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// What a chat template leaves out when it renders a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The `tools` schemas offered to the model.
    Tools,
    /// The tool calls of `Conversation::messages[i]`.
    ToolCalls(usize),
}

/// A chat: optional system text, then the turns in order, plus any tool
/// schemas the conversation was given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conversation {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    /// Tool (function) schemas offered to the model, as a JSON array.
    pub tools: Option<Value>,
}

impl Conversation {
    /// All messages with the system text first, as chat templates expect them.
    pub fn with_system_message(&self) -> Vec<Message> {
        let mut all = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = &self.system {
            all.push(Message::new(Role::System, system.clone()));
        }
        all.extend(self.messages.iter().cloned());
        all
    }

    /// The last assistant message, which is what most checks call "the answer".
    pub fn last_reply(&self) -> Option<&Message> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
    }

    /// Total characters of all text the conversation holds.
    pub fn char_len(&self) -> usize {
        let system = self.system.as_deref().map_or(0, |s| s.chars().count());
        system
            + self
                .messages
                .iter()
                .map(|m| m.content.chars().count())
                .sum::<usize>()
    }
}

/// A user request, an assistant turn that only calls `name`, the tool's
/// result and the answer, with `name`'s schema offered: for tests.
#[cfg(test)]
pub fn tool_call_exchange(name: &str, arguments: Value) -> Conversation {
    let mut call = Message::new(Role::Assistant, "");
    call.tool_calls.push(ToolCall {
        id: None,
        name: name.to_string(),
        arguments,
    });
    Conversation {
        system: None,
        messages: vec![
            Message::new(Role::User, "I have rice."),
            call,
            Message::new(Role::Tool, "{\"recipes\": []}"),
            Message::new(Role::Assistant, "None found."),
        ],
        tools: Some(serde_json::json!([{ "name": name }])),
    }
}

/// One training record in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Raw text for continued pre-training: every token is trained.
    Text(String),
    Chat(Conversation),
}

impl Sample {
    pub fn char_len(&self) -> usize {
        match self {
            Sample::Text(text) => text.chars().count(),
            Sample::Chat(conv) => conv.char_len(),
        }
    }

    pub fn as_chat(&self) -> Option<&Conversation> {
        match self {
            Sample::Chat(conv) => Some(conv),
            Sample::Text(_) => None,
        }
    }
}

impl Sample {
    /// A 64-bit digest of the canonical content: two records with the same
    /// fingerprint say the same thing, whatever their format or key order.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match self {
            Sample::Text(text) => {
                0u8.hash(&mut h);
                text.hash(&mut h);
            }
            Sample::Chat(conv) => {
                1u8.hash(&mut h);
                conv.system.hash(&mut h);
                for m in &conv.messages {
                    m.role.hash(&mut h);
                    m.content.hash(&mut h);
                    for call in &m.tool_calls {
                        call.name.hash(&mut h);
                        call.arguments.to_string().hash(&mut h);
                    }
                }
                conv.tools.as_ref().map(Value::to_string).hash(&mut h);
            }
        }
        h.finish()
    }
}
