//! Editing a column's last answer before it becomes a training sample:
//! Ctrl+s keeps the edit and appends the exchange to the dataset, Esc
//! leaves without changing anything (asking first when the text changed).

use super::input::{show_cursor, text_area, text_of};
use super::state::Side;
use crate::tui::panes::esc_guard::EscGuard;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;

pub struct AnswerEditor {
    pub side: Side,
    pub area: TextArea<'static>,
    original: String,
    pub esc: EscGuard,
}

/// What a key did in the editor.
#[derive(Debug, PartialEq)]
pub enum Edited {
    Typing,
    Cancel,
    /// Keep this text and append the exchange.
    Save(String),
}

impl AnswerEditor {
    pub fn new(side: Side, answer: &str) -> AnswerEditor {
        let mut area = text_area(answer);
        show_cursor(&mut area, true);
        AnswerEditor {
            side,
            area,
            original: answer.to_string(),
            esc: EscGuard::default(),
        }
    }

    pub fn changed(&self) -> bool {
        text_of(&self.area) != self.original
    }

    pub fn key(&mut self, key: KeyEvent) -> Edited {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc if self.esc.cancels(self.changed()) => Edited::Cancel,
            KeyCode::Esc => Edited::Typing,
            KeyCode::Char('s') if ctrl => Edited::Save(text_of(&self.area)),
            _ => {
                self.esc.settle();
                self.area.input(key);
                Edited::Typing
            }
        }
    }
}
