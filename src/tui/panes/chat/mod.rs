//! The Chat pane: one prompt answered side by side by the base model and
//! the model with its adapter (and a dataset sample's reference answer),
//! streamed live from two worker threads that share the one model. An
//! answer can be edited and appended to the dataset as a new sample.
//!
//! Keys go to the prompt while it has focus (Esc leaves it); otherwise
//! they are commands. State changes only in `key`, `mouse`, `message` and
//! `model_ready`; `render` draws from `&self`.

pub mod editor;
pub mod input;
mod overlay;
pub mod picker;
mod render;
pub mod settings;
pub mod state;
pub mod worker;
pub(crate) mod wrap;

#[cfg(test)]
mod tests;

use crate::tui::action::{Effect, Exchange, ModelInfo, Notice};
use crate::tui::app::contains;
use crate::tui::panes::{Binding, Pane, bind};
use crate::tui::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use editor::AnswerEditor;
use input::{PromptInput, Typed};
use picker::Picker;
use ratatui::Frame;
use ratatui::layout::Rect;
use settings::{Settings, SettingsEditor};
use state::{Chat, Viewport};
use std::cell::Cell;
use std::path::PathBuf;

pub use state::Side;
pub use worker::{Finished, Generate};

#[derive(Debug)]
pub enum Msg {
    /// A dataset sample to try ("Use sample" in the Data tab).
    UseSample(Exchange),
    /// A piece of a streamed answer.
    Token {
        column: Side,
        generation_id: u64,
        text: String,
    },
    /// An answer ended (or failed).
    Done {
        column: Side,
        generation_id: u64,
        result: Result<Finished, String>,
    },
}

#[derive(Debug)]
pub enum Job {
    /// The columns of one send, answered together.
    Generate(Vec<Generate>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Column(Side),
}

/// A popup over the pane; it takes every key while open.
pub enum Overlay {
    Picker(Picker),
    Settings(SettingsEditor),
    Editor(Box<AnswerEditor>),
}

/// Where things were last drawn (for the mouse) and how many lines each
/// column held (for scrolling).
#[derive(Debug, Default, Clone, Copy)]
pub struct Drawn {
    pub columns: [Rect; 3],
    pub views: [Viewport; 3],
    pub input: Rect,
    /// The picker's rows, and the choice on the first of them.
    pub picker_rows: Rect,
    pub picker_first: usize,
}

const SCROLL_LINES: isize = 3;

pub struct ChatPane {
    runs_dir: PathBuf,
    chat: Chat,
    settings: Settings,
    input: PromptInput,
    focus: Focus,
    overlay: Option<Overlay>,
    model: Option<ModelInfo>,
    /// An adapter was asked for and is loading.
    switching: bool,
    /// Why the model failed to load, until one loads.
    load_error: Option<String>,
    /// The model loaded or last tried, for the `m` prompt to start from.
    model_name: String,
    drawn: Cell<Drawn>,
}

impl ChatPane {
    pub fn new(runs_dir: PathBuf) -> ChatPane {
        ChatPane {
            runs_dir,
            chat: Chat::default(),
            settings: Settings::default(),
            input: PromptInput::default(),
            focus: Focus::Column(Side::Base),
            overlay: None,
            model: None,
            switching: false,
            load_error: None,
            model_name: String::new(),
            drawn: Cell::new(Drawn::default()),
        }
    }

    fn has_adapter(&self) -> bool {
        self.model.as_ref().is_some_and(|m| m.adapter.is_some())
    }

    /// The columns that generate: the base, and the adapter when one is loaded.
    fn generating_sides(&self) -> Vec<Side> {
        if self.has_adapter() {
            vec![Side::Base, Side::Adapter]
        } else {
            vec![Side::Base]
        }
    }

    /// The columns on screen, left to right.
    fn visible_sides(&self) -> Vec<Side> {
        let mut sides = vec![Side::Base, Side::Adapter];
        if self.chat.has_reference() {
            sides.push(Side::Reference);
        }
        sides
    }

    fn set_focus(&mut self, focus: Focus) {
        self.focus = focus;
        self.input.focus(focus == Focus::Input);
    }

    /// Tab order: prompt, then the columns left to right.
    fn cycle_focus(&mut self, forward: bool) {
        let mut order = vec![Focus::Input];
        order.extend(self.visible_sides().into_iter().map(Focus::Column));
        let at = order.iter().position(|f| *f == self.focus).unwrap_or(0);
        let next = if forward {
            (at + 1) % order.len()
        } else {
            (at + order.len() - 1) % order.len()
        };
        self.set_focus(order[next]);
    }

    fn focus_neighbour(&mut self, side: Side, right: bool) {
        let sides = self.visible_sides();
        let at = sides.iter().position(|s| *s == side).unwrap_or(0);
        let next = if right {
            (at + 1).min(sides.len() - 1)
        } else {
            at.saturating_sub(1)
        };
        self.set_focus(Focus::Column(sides[next]));
    }

    fn scroll(&mut self, side: Side, lines: isize) {
        let view = self.drawn.get().views[side.index()];
        self.chat.column_mut(side).scroll_by(lines, view);
    }

    /// PgUp/PgDn: the focused column, or every column from the prompt.
    fn scroll_page(&mut self, down: bool) {
        let sides = match self.focus {
            Focus::Column(side) => vec![side],
            Focus::Input => self.visible_sides(),
        };
        for side in sides {
            let page = self.drawn.get().views[side.index()].height.max(2) as isize - 1;
            self.scroll(side, if down { page } else { -page });
        }
    }

    /// Sends `text` (or, when empty, answers a context that waits for an
    /// answer) to the base and adapter columns.
    fn send(&mut self, text: String) -> Vec<Effect> {
        if self.model.is_none() {
            return vec![Notice::error(
                "the model is still loading; send again in a moment",
            )];
        }
        let text = text.trim();
        let prompt = if text.is_empty() {
            if !self.chat.awaits_answer(Side::Base) {
                return Vec::new();
            }
            None
        } else {
            Some(text.to_string())
        };
        self.input.set_text("");
        let sides = self.generating_sides();
        let columns = self.chat.start(prompt, &sides, &self.settings.params());
        vec![Effect::Chat(Job::Generate(columns))]
    }

    /// Sends the last prompt again, replacing the answers to it.
    fn resend(&mut self) -> Vec<Effect> {
        let Some(prompt) = self.chat.last_prompt.clone() else {
            return vec![Notice::error("nothing sent yet")];
        };
        if self.model.is_none() {
            return vec![Notice::error("the model is still loading")];
        }
        let sides = self.generating_sides();
        self.chat.stop();
        self.chat.forget_last_exchange(&sides);
        let columns = self
            .chat
            .start(Some(prompt), &sides, &self.settings.params());
        vec![Effect::Chat(Job::Generate(columns))]
    }

    /// Stops running answers: they hold the model, which another load
    /// must replace.
    pub fn stop_answers(&mut self) {
        self.chat.stop();
    }

    fn stop(&mut self) -> Vec<Effect> {
        if self.chat.stop() {
            vec![Notice::info("stopping…")]
        } else {
            Vec::new()
        }
    }

    fn clear(&mut self) -> Vec<Effect> {
        self.chat.clear();
        vec![Notice::info("chat history cleared")]
    }

    /// Esc: stops a running answer, else leaves the prompt.
    fn escape(&mut self) -> Vec<Effect> {
        if self.chat.is_generating() {
            return self.stop();
        }
        if self.focus == Focus::Input {
            let side = if self.has_adapter() {
                Side::Adapter
            } else {
                Side::Base
            };
            self.set_focus(Focus::Column(side));
        }
        Vec::new()
    }

    fn edit(&mut self, side: Side) -> Vec<Effect> {
        let side = if side == Side::Reference {
            Side::Adapter
        } else {
            side
        };
        match self.chat.last_answer(side) {
            Some(answer) => {
                self.overlay = Some(Overlay::Editor(Box::new(AnswerEditor::new(side, answer))));
                Vec::new()
            }
            None => vec![Notice::error(format!(
                "no finished {} answer to edit yet",
                side.title().to_lowercase()
            ))],
        }
    }

    /// Keys while the columns have focus.
    fn command(&mut self, key: KeyEvent, side: Side) -> Vec<Effect> {
        match key.code {
            KeyCode::Char('i') | KeyCode::Enter => self.set_focus(Focus::Input),
            KeyCode::Char('a') => {
                let active = self.model.as_ref().and_then(|m| m.adapter.as_deref());
                self.overlay = Some(Overlay::Picker(Picker::open(&self.runs_dir, active)));
            }
            KeyCode::Char('s') => self.overlay = Some(Overlay::Settings(SettingsEditor::default())),
            KeyCode::Char('m') => return vec![Effect::PickModel],
            KeyCode::Char('u') => return vec![Effect::SendSampleToChat],
            KeyCode::Char('e') => return self.edit(side),
            KeyCode::Char('r') => return self.resend(),
            KeyCode::Char('c') => return self.clear(),
            KeyCode::Char('x') => return self.stop(),
            KeyCode::Down | KeyCode::Char('j') => self.scroll(side, 1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll(side, -1),
            KeyCode::Home | KeyCode::Char('g') => self.chat.column_mut(side).scroll = Some(0),
            KeyCode::End | KeyCode::Char('G') => self.chat.column_mut(side).scroll = None,
            KeyCode::Left | KeyCode::Char('h') => self.focus_neighbour(side, false),
            KeyCode::Right | KeyCode::Char('l') => self.focus_neighbour(side, true),
            _ => {}
        }
        Vec::new()
    }

    fn choose_adapter(&mut self, path: Option<PathBuf>) -> Vec<Effect> {
        self.overlay = None;
        let active = self.model.as_ref().and_then(|m| m.adapter.clone());
        if self.model.is_some() && path == active {
            return vec![Notice::info("that adapter is already active")];
        }
        // A running answer holds the model; stop it so the swap can start.
        self.chat.stop();
        self.switching = true;
        let label = path
            .as_ref()
            .map_or("no adapter".to_string(), |p| p.display().to_string());
        vec![
            Effect::SetAdapter(path),
            Notice::info(format!("loading {label}…")),
        ]
    }
}

impl ChatPane {
    /// A worker's report or a message routed from the app.
    pub fn message(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::UseSample(exchange) => {
                let source = exchange.source.clone();
                let has_reference = exchange.reference.is_some();
                let prompt = self.chat.use_sample(exchange);
                self.input.set_text(prompt.as_deref().unwrap_or(""));
                self.set_focus(Focus::Input);
                let mut note = format!("sample {source} loaded: Enter sends its prompt");
                if !has_reference {
                    note.push_str(" (it has no reference answer)");
                }
                vec![Notice::info(note)]
            }
            Msg::Token {
                column,
                generation_id,
                text,
            } => {
                self.chat.token(column, generation_id, &text);
                Vec::new()
            }
            Msg::Done {
                column,
                generation_id,
                result,
            } => {
                let error = result.as_ref().err().cloned();
                if self.chat.finish(column, generation_id, result)
                    && let Some(message) = error
                {
                    return vec![Notice::error(format!(
                        "{} column: {message}",
                        column.title()
                    ))];
                }
                Vec::new()
            }
        }
    }
}

impl Pane for ChatPane {
    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if self.overlay.is_some() {
            return self.overlay_key(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return self.escape(),
            KeyCode::Char('l') if ctrl => return self.clear(),
            KeyCode::PageUp => self.scroll_page(false),
            KeyCode::PageDown => self.scroll_page(true),
            KeyCode::Tab => self.cycle_focus(true),
            KeyCode::BackTab => self.cycle_focus(false),
            _ => {
                return match self.focus {
                    Focus::Input => match self.input.key(key) {
                        Typed::Send(text) => self.send(text),
                        Typed::Edited => Vec::new(),
                    },
                    Focus::Column(side) => self.command(key, side),
                };
            }
        }
        Vec::new()
    }

    fn mouse(&mut self, event: MouseEvent, _area: Rect) -> Vec<Effect> {
        if self.overlay.is_some() {
            return self.overlay_mouse(event);
        }
        let drawn = self.drawn.get();
        let (column, row) = (event.column, event.row);
        let under = self
            .visible_sides()
            .into_iter()
            .find(|s| contains(drawn.columns[s.index()], column, row));
        match event.kind {
            MouseEventKind::ScrollDown => {
                if let Some(side) = under {
                    self.scroll(side, SCROLL_LINES);
                }
            }
            MouseEventKind::ScrollUp => {
                if let Some(side) = under {
                    self.scroll(side, -SCROLL_LINES);
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                if contains(drawn.input, column, row) {
                    self.set_focus(Focus::Input);
                } else if let Some(side) = under {
                    self.set_focus(Focus::Column(side));
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn model_ready(&mut self, model: &ModelInfo) -> Vec<Effect> {
        self.switching = false;
        self.load_error = None;
        self.model_name = model.name.clone();
        let changed = self
            .model
            .as_ref()
            .is_some_and(|old| old.adapter != model.adapter);
        self.model = Some(model.clone());
        if changed {
            // Answers from the old adapter would mislead the new one.
            self.chat.restart_columns();
            return vec![Notice::info(format!(
                "{} ready; the columns start afresh",
                render::adapter_label(model.adapter.as_deref())
            ))];
        }
        Vec::new()
    }

    /// A paste is text in whatever takes text: the answer editor, the
    /// else the chat prompt (focused for it): a multi-line
    /// paste is one prompt, never one turn per line.
    fn paste(&mut self, text: &str) -> Vec<Effect> {
        match &mut self.overlay {
            Some(Overlay::Editor(editor)) => {
                editor.area.insert_str(crate::tui::panes::newlines(text));
            }
            Some(_) => {}
            None => {
                self.set_focus(Focus::Input);
                self.input
                    .area
                    .insert_str(crate::tui::panes::newlines(text));
            }
        }
        Vec::new()
    }

    fn copy_text(&self) -> Option<(String, String)> {
        let Focus::Column(side) = self.focus else {
            return None;
        };
        let answer = self.chat.last_answer(side)?;
        Some((
            format!("the {} answer", side.title().to_lowercase()),
            answer.to_string(),
        ))
    }

    fn has_unapplied_edit(&self) -> bool {
        matches!(&self.overlay, Some(Overlay::Editor(editor)) if editor.changed())
    }

    fn model_failed(&mut self, name: &str, message: &str) -> Vec<Effect> {
        self.switching = false;
        self.model_name = name.to_string();
        self.load_error = Some(message.to_string());
        Vec::new()
    }

    fn captures_input(&self) -> bool {
        self.focus == Focus::Input || self.overlay.is_some()
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        render::render(self, frame, area, theme);
    }

    fn bindings(&self) -> &'static [Binding] {
        BINDINGS
    }

    fn hints(&self) -> &'static str {
        if self.focus == Focus::Input {
            "Enter send  Alt+Enter newline  Esc stop/leave  PgUp/PgDn scroll"
        } else {
            "i type  a adapter  s settings  u use sample  e edit→dataset"
        }
    }
}

const BINDINGS: &[Binding] = &[
    bind(
        "Enter",
        "in the prompt: send it to the base and adapter columns",
    ),
    bind("Alt/Shift+Enter", "in the prompt: new line"),
    bind("Esc", "stop the running answers; else leave the prompt"),
    bind("Tab / Shift+Tab", "focus the prompt or a column"),
    bind(
        "PgUp / PgDn",
        "scroll the focused column (all, from the prompt)",
    ),
    bind("Ctrl+l", "clear the history of every column"),
    bind("i / Enter", "type in the prompt"),
    bind(
        "a",
        "choose the adapter or checkpoint (from the runs folder)",
    ),
    bind("s", "sampling settings (temperature, top-p, top-k, ...)"),
    bind(
        "m",
        "pick another model: cached, Ollama, GGUF, a path, or a hub repo to download",
    ),
    bind("u", "use the sample selected in the Data tab"),
    bind(
        "e",
        "edit the column's last answer; Ctrl+s adds it to the dataset",
    ),
    bind("r", "send the last prompt again"),
    bind("x", "stop the running answers"),
    bind("c", "clear the history"),
    bind("j k / ↑ ↓", "scroll the focused column"),
    bind("g G", "top / follow the end of the focused column"),
    bind("h l / ← →", "focus the column to the left / right"),
    bind("mouse", "wheel scrolls the column under it; click focuses"),
];
