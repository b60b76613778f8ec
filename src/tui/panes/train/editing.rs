//! Keys and pastes while a form field's editor is open.

use super::TrainPane;
use crate::tui::action::{Effect, Notice};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

impl TrainPane {
    pub(super) fn edit_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let apply = key.code == KeyCode::Enter || (ctrl && key.code == KeyCode::Char('s'));
        if key.code != KeyCode::Esc
            && let Some(editor) = self.form.editor.as_mut()
        {
            editor.esc.settle();
        }
        match key.code {
            _ if apply => {
                if self.form.commit_edit() {
                    return Vec::new();
                }
                let error = self.form.error.clone().unwrap_or_default();
                let first = error.lines().next().unwrap_or("").to_string();
                return vec![Notice::error(first)];
            }
            KeyCode::Esc => {
                let cancels = self
                    .form
                    .editor
                    .as_mut()
                    .is_some_and(|e| e.esc.cancels(e.changed()));
                if cancels {
                    self.form.cancel_edit();
                }
                return Vec::new();
            }
            _ => {}
        }
        if let Some(editor) = self.form.editor.as_mut() {
            editor.line.key(key);
        }
        Vec::new()
    }

    pub(super) fn paste_into_editor(&mut self, text: &str) -> Vec<Effect> {
        if let Some(editor) = self.form.editor.as_mut() {
            editor.line.insert_str(&crate::tui::panes::one_line(text));
        }
        Vec::new()
    }
}
