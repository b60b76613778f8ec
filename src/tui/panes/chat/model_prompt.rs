//! The "load another model" prompt (`m`): a model directory or hub repo id,
//! typed on one line (Tab completes a directory). Offered when the model
//! failed to load.

use crate::tui::panes::line_edit::LineEdit;
use crate::tui::panes::path_complete::PathCompletion;
use crossterm::event::{KeyCode, KeyEvent};

/// What a key did to the prompt.
#[derive(Debug, PartialEq)]
pub enum Prompted {
    Typing,
    Cancel,
    /// Enter on a non-empty name.
    Load(String),
}

#[derive(Debug, Default)]
pub struct ModelPrompt {
    pub line: LineEdit,
    pub completion: PathCompletion,
}

impl ModelPrompt {
    /// Starts from the current model's name, so a typo is fixed in place.
    pub fn new(current: &str) -> ModelPrompt {
        ModelPrompt {
            line: LineEdit::new(current),
            completion: PathCompletion::default(),
        }
    }

    pub fn key(&mut self, key: KeyEvent) -> Prompted {
        if key.code == KeyCode::Tab {
            self.completion.tab(&mut self.line);
            return Prompted::Typing;
        }
        self.completion.reset();
        match key.code {
            KeyCode::Esc => return Prompted::Cancel,
            KeyCode::Enter => {
                let name = self.line.text().trim();
                if !name.is_empty() {
                    return Prompted::Load(name.to_string());
                }
            }
            _ => {
                self.line.key(key);
            }
        }
        Prompted::Typing
    }
}

#[cfg(test)]
mod tests {
    use super::{ModelPrompt, Prompted};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn edits_the_current_name_and_loads_on_enter() {
        let mut prompt = ModelPrompt::new("/nope");
        for _ in 0..4 {
            prompt.key(key(KeyCode::Backspace));
        }
        assert_eq!(prompt.key(key(KeyCode::Char('m'))), Prompted::Typing);
        assert_eq!(prompt.key(key(KeyCode::Enter)), Prompted::Load("/m".into()));
        prompt.line.set_text("");
        assert_eq!(prompt.key(key(KeyCode::Enter)), Prompted::Typing, "empty");
        assert_eq!(prompt.key(key(KeyCode::Esc)), Prompted::Cancel);
    }
}
