//! The editor: one field, one list (an item per line), one file or the
//! whole record in a textarea.
//! Ctrl+s applies; Esc cancels (asking first when something changed, see
//! `EscGuard`); Ctrl+g discards at once.

use crate::tui::panes::esc_guard::EscGuard;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui_textarea::TextArea;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A string inside the record, by JSON pointer.
    Field { pointer: String },
    /// A list of one-line strings inside the record, edited one item per
    /// line.
    List { pointer: String },
    /// The whole record as (pretty) JSON, or its raw text when broken.
    Record,
}

impl Target {
    /// Where in the record the edited value goes (`None`: the record).
    pub fn pointer(&self) -> Option<&str> {
        match self {
            Target::Field { pointer } | Target::List { pointer } => Some(pointer),
            Target::Record => None,
        }
    }

    /// The value the edited text of a field or list stands for: the text,
    /// or a list of its lines (blank lines dropped: a list shown here has
    /// no empty item).
    pub fn value(&self, text: String) -> Value {
        match self {
            Target::List { .. } => Value::Array(
                text.split('\n')
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| Value::String(line.to_string()))
                    .collect(),
            ),
            _ => Value::String(text),
        }
    }
}

pub struct Editor {
    pub record: usize,
    pub target: Target,
    /// What is edited, for the title.
    pub label: String,
    pub area: TextArea<'static>,
    original: String,
    /// Why the last apply was refused (invalid JSON), shown under the text.
    pub error: Option<String>,
    pub esc: EscGuard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Apply,
    Discard,
}

impl Editor {
    pub fn new(record: usize, target: Target, label: String, text: String) -> Editor {
        let mut area = TextArea::new(text.split('\n').map(str::to_string).collect());
        area.set_line_number_style(Style::default().add_modifier(Modifier::DIM));
        area.set_cursor_line_style(Style::default());
        Editor {
            record,
            target,
            label,
            area,
            original: text,
            error: None,
            esc: EscGuard::default(),
        }
    }

    pub fn text(&self) -> String {
        self.area.lines().join("\n")
    }

    pub fn changed(&self) -> bool {
        self.text() != self.original
    }

    pub fn key(&mut self, key: KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => {
                if self.esc.cancels(self.changed()) {
                    Outcome::Discard
                } else {
                    Outcome::Continue
                }
            }
            KeyCode::Char('s') if ctrl => Outcome::Apply,
            KeyCode::Char('g') if ctrl => Outcome::Discard,
            _ => {
                self.esc.settle();
                self.area.input(key);
                self.error = None;
                Outcome::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_s_applies_and_escape_cancels_after_asking() {
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        let mut e = Editor::new(0, Target::Record, "r".into(), "ab\ncd".into());
        assert_eq!(e.key(esc), Outcome::Discard, "unchanged: Esc closes");
        e.key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE));
        assert_eq!(e.text(), "xab\ncd");
        assert_eq!(e.key(esc), Outcome::Continue, "changed: Esc asks first");
        assert_eq!(e.key(esc), Outcome::Discard, "a second Esc discards");
        assert_eq!(
            e.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL)),
            Outcome::Apply
        );
        assert_eq!(
            e.key(KeyEvent::new(KeyCode::Char('g'), KeyModifiers::CONTROL)),
            Outcome::Discard
        );
    }
}
