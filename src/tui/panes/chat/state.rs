//! The conversation: a shared preamble (a dataset sample's earlier turns),
//! then each column's own turns. The base column's history holds base
//! answers, the adapter column's holds adapter answers; the reference column
//! holds a sample's reference answer. Answers stream in by generation id, so
//! reports from a stopped or replaced generation are dropped.

use super::worker::{Finished, Generate};
use crate::data::{Conversation, Message, Role};
use crate::model::decoder::Mode;
use crate::model::generate::GenerateParams;
use crate::tui::action::{Appended, Exchange};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One of the three columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Base,
    Adapter,
    Reference,
}

impl Side {
    pub const ALL: [Side; 3] = [Side::Base, Side::Adapter, Side::Reference];

    pub fn index(self) -> usize {
        match self {
            Side::Base => 0,
            Side::Adapter => 1,
            Side::Reference => 2,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Side::Base => "Base",
            Side::Adapter => "Adapter",
            Side::Reference => "Reference",
        }
    }

    /// How the model runs for this column (the reference never generates).
    pub fn mode(self) -> Mode {
        match self {
            Side::Adapter => Mode::ADAPTED,
            Side::Base | Side::Reference => Mode::BASE,
        }
    }
}

/// How a column's last answer ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Idle,
    Streaming,
    Done(Finished),
    Failed(String),
}

/// An answer being streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: u64,
    pub text: String,
}

/// Where a column is scrolled: `None` follows the end (new text stays in
/// view), `Some(top)` holds the first visible line.
pub type Scroll = Option<usize>;

#[derive(Debug, Clone)]
pub struct Column {
    pub side: Side,
    /// This column's turns after the shared preamble.
    pub turns: Vec<Message>,
    pub pending: Option<Pending>,
    pub status: Status,
    pub scroll: Scroll,
}

impl Column {
    fn new(side: Side) -> Column {
        Column {
            side,
            turns: Vec::new(),
            pending: None,
            status: Status::Idle,
            // History (a sample's turns, its reference) reads from the top;
            // a generation switches to following the end.
            scroll: Some(0),
        }
    }

    pub fn is_streaming(&self) -> bool {
        self.pending.is_some()
    }

    /// Scrolls by `delta` lines, given how many lines the column had and
    /// showed when last drawn; reaching the end follows it again.
    pub fn scroll_by(&mut self, delta: isize, view: Viewport) {
        let max = view.total.saturating_sub(view.height);
        let top = self.scroll.unwrap_or(max).min(max);
        let next = top.saturating_add_signed(delta).min(max);
        self.scroll = (next < max).then_some(next);
    }
}

/// Lines a column held and showed when last drawn (for scrolling).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    pub total: usize,
    pub height: usize,
}

pub struct Chat {
    pub system: Option<String>,
    pub tools: Option<Value>,
    /// Turns every column starts from (a dataset sample's earlier turns).
    pub preamble: Vec<Message>,
    pub columns: [Column; 3],
    /// Where the preamble and reference came from.
    pub source: Option<String>,
    /// The sample's record as the dataset holds it.
    pub origin: Option<Value>,
    /// The last prompt sent, for sending it again.
    pub last_prompt: Option<String>,
    next_id: u64,
    cancel: Arc<AtomicBool>,
}

impl Default for Chat {
    fn default() -> Self {
        Chat {
            system: None,
            tools: None,
            preamble: Vec::new(),
            columns: Side::ALL.map(Column::new),
            source: None,
            origin: None,
            last_prompt: None,
            next_id: 0,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Chat {
    pub fn column(&self, side: Side) -> &Column {
        &self.columns[side.index()]
    }

    pub fn column_mut(&mut self, side: Side) -> &mut Column {
        &mut self.columns[side.index()]
    }

    pub fn is_generating(&self) -> bool {
        self.columns.iter().any(Column::is_streaming)
    }

    pub fn has_reference(&self) -> bool {
        !self.column(Side::Reference).turns.is_empty()
    }

    /// Every message a column's model sees: system, preamble, its own turns.
    pub fn messages(&self, side: Side) -> Vec<Message> {
        let mut all = Vec::new();
        if let Some(system) = &self.system {
            all.push(Message::new(Role::System, system.clone()));
        }
        all.extend(self.preamble.iter().cloned());
        all.extend(self.column(side).turns.iter().cloned());
        all
    }

    /// Whether a column's context waits for an answer (it ends with a user
    /// or tool turn), so it can be sent without a new prompt.
    pub fn awaits_answer(&self, side: Side) -> bool {
        let column = &self.column(side).turns;
        let last = column.last().or(self.preamble.last());
        last.is_some_and(|m| m.role != Role::Assistant)
    }

    /// Starts a generation in `sides` with `prompt` as a new user turn (or
    /// none: answer the context as it is). Any running one is stopped first.
    pub fn start(
        &mut self,
        prompt: Option<String>,
        sides: &[Side],
        params: &GenerateParams,
    ) -> Vec<Generate> {
        self.stop();
        self.next_id += 1;
        let id = self.next_id;
        self.cancel = Arc::new(AtomicBool::new(false));
        if prompt.is_some() {
            self.last_prompt = prompt.clone();
        }
        let mut jobs = Vec::new();
        for &side in sides {
            let column = self.column_mut(side);
            // An answer cut short by this send stays, so far as it got.
            if let Some(cut) = column.pending.take() {
                column.turns.push(Message::new(Role::Assistant, cut.text));
            }
            if let Some(text) = &prompt {
                column.turns.push(Message::new(Role::User, text.clone()));
            }
            column.pending = Some(Pending {
                id,
                text: String::new(),
            });
            column.status = Status::Streaming;
            column.scroll = None;
            jobs.push(Generate {
                column: side,
                generation_id: id,
                mode: side.mode(),
                messages: self.messages(side),
                tools: self.tools.clone(),
                params: params.clone(),
                cancel: Arc::clone(&self.cancel),
            });
        }
        jobs
    }

    /// Drops the last exchange of `sides` (the answer and the prompt before
    /// it) so the same prompt can be sent again.
    pub fn forget_last_exchange(&mut self, sides: &[Side]) {
        for &side in sides {
            let column = self.column_mut(side);
            column.pending = None;
            let turns = &mut column.turns;
            if turns.last().is_some_and(|m| m.role == Role::Assistant) {
                turns.pop();
            }
            if turns.last().is_some_and(|m| m.role == Role::User) {
                turns.pop();
            }
        }
    }

    /// Asks the running generation to stop; returns whether one was running.
    pub fn stop(&mut self) -> bool {
        self.cancel.store(true, Ordering::Relaxed);
        self.is_generating()
    }

    /// A streamed piece of an answer; stale ids are ignored.
    pub fn token(&mut self, side: Side, id: u64, text: &str) -> bool {
        match &mut self.column_mut(side).pending {
            Some(pending) if pending.id == id => {
                pending.text.push_str(text);
                true
            }
            _ => false,
        }
    }

    /// A generation ended; the answer joins the column's history (also
    /// when stopped, so far as it got). Stale ids are ignored.
    pub fn finish(&mut self, side: Side, id: u64, result: Result<Finished, String>) -> bool {
        let column = self.column_mut(side);
        let Some(pending) = column.pending.take_if(|p| p.id == id) else {
            return false;
        };
        match result {
            Ok(finished) => {
                column
                    .turns
                    .push(Message::new(Role::Assistant, pending.text));
                column.status = Status::Done(finished);
            }
            Err(message) => {
                // The history stays as it was before the send.
                if column.turns.last().is_some_and(|m| m.role == Role::User) {
                    column.turns.pop();
                }
                column.status = Status::Failed(message);
            }
        }
        true
    }

    /// Forgets every turn, the sample and its reference.
    pub fn clear(&mut self) {
        self.stop();
        let cancel = Arc::clone(&self.cancel);
        let next_id = self.next_id;
        *self = Chat {
            next_id,
            cancel,
            ..Chat::default()
        };
    }

    /// Forgets the columns' own turns, keeping the sample.
    pub fn restart_columns(&mut self) {
        self.stop();
        for side in [Side::Base, Side::Adapter] {
            let column = self.column_mut(side);
            column.turns.clear();
            column.pending = None;
            column.status = Status::Idle;
            column.scroll = Some(0);
        }
    }

    /// Takes a dataset sample: its earlier turns become the preamble, its
    /// reference answer the third column; returns the prompt to send (the
    /// final user turn), if it ends with one.
    pub fn use_sample(&mut self, exchange: Exchange) -> Option<String> {
        self.clear();
        let Conversation {
            system,
            mut messages,
            tools,
        } = exchange.conversation;
        let prompt = match messages.last() {
            Some(m) if m.role == Role::User => messages.pop().map(|m| m.content),
            _ => None,
        };
        self.system = system;
        self.tools = tools;
        self.preamble = messages;
        self.source = Some(exchange.source);
        self.origin = exchange.record;
        if let Some(reference) = exchange.reference {
            let turns = &mut self.column_mut(Side::Reference).turns;
            if let Some(prompt) = &prompt {
                turns.push(Message::new(Role::User, prompt.clone()));
            }
            turns.push(Message::new(Role::Assistant, reference));
        }
        prompt
    }

    /// The last answer of a column, for editing.
    pub fn last_answer(&self, side: Side) -> Option<&str> {
        let column = self.column(side);
        if column.is_streaming() {
            return None;
        }
        column
            .turns
            .last()
            .filter(|m| m.role == Role::Assistant)
            .map(|m| m.content.as_str())
    }

    /// Replaces a column's last answer with `text` and returns the whole
    /// exchange (OpenAI chat style, with the sample it started from) for the
    /// dataset.
    pub fn edit_last_answer(&mut self, side: Side, text: String) -> Option<Appended> {
        self.last_answer(side)?;
        let column = self.column_mut(side);
        let last = column.turns.last_mut()?;
        last.content = text;
        Some(Appended {
            chat: self.as_sample(side),
            origin: self.origin.clone(),
        })
    }

    /// A column's conversation as `{"messages": [...]}` (and `tools`).
    pub fn as_sample(&self, side: Side) -> Value {
        let messages: Vec<Value> = self.messages(side).iter().map(openai_message).collect();
        let mut sample = json!({ "messages": messages });
        if let Some(tools) = &self.tools {
            sample["tools"] = tools.clone();
        }
        sample
    }
}

fn openai_message(message: &Message) -> Value {
    let mut value = json!({
        "role": message.role.as_str(),
        "content": message.content,
    });
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|call| {
                let arguments = match &call.arguments {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let mut value = json!({
                    "type": "function",
                    "function": { "name": call.name, "arguments": arguments },
                });
                if let Some(id) = &call.id {
                    value["id"] = json!(id);
                }
                value
            })
            .collect();
        value["tool_calls"] = Value::Array(calls);
    }
    if let Some(id) = &message.tool_call_id {
        value["tool_call_id"] = json!(id);
    }
    value
}
