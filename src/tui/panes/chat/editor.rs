//! Editing a column's last answer before it becomes a training sample:
//! Ctrl+s keeps the edit and appends the exchange to the dataset, Esc
//! leaves without changing anything.

use super::input::{show_cursor, text_area, text_of};
use super::state::Side;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;

pub struct AnswerEditor {
    pub side: Side,
    pub area: TextArea<'static>,
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
        AnswerEditor { side, area }
    }

    pub fn key(&mut self, key: KeyEvent) -> Edited {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => Edited::Cancel,
            KeyCode::Char('s') if ctrl => Edited::Save(text_of(&self.area)),
            _ => {
                self.area.input(key);
                Edited::Typing
            }
        }
    }
}
