//! The "load another model" prompt (`m`): a model directory or hub repo id,
//! typed on one line. Offered when the model failed to load.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

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
    pub text: String,
}

impl ModelPrompt {
    /// Starts from the current model's name, so a typo is fixed in place.
    pub fn new(current: &str) -> ModelPrompt {
        ModelPrompt {
            text: current.to_string(),
        }
    }

    pub fn key(&mut self, key: KeyEvent) -> Prompted {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return Prompted::Cancel,
            KeyCode::Enter => {
                let name = self.text.trim();
                if !name.is_empty() {
                    return Prompted::Load(name.to_string());
                }
            }
            KeyCode::Backspace => {
                self.text.pop();
            }
            KeyCode::Char('u') if ctrl => self.text.clear(),
            KeyCode::Char(c) if !ctrl => self.text.push(c),
            _ => {}
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
        prompt.text.clear();
        assert_eq!(prompt.key(key(KeyCode::Enter)), Prompted::Typing, "empty");
        assert_eq!(prompt.key(key(KeyCode::Esc)), Prompted::Cancel);
    }
}
