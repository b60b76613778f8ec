//! The model picker (`O` anywhere, `m` in Chat): models on this machine
//! (Hugging Face cache, Ollama, GGUF files), a line to filter them or type a
//! path (Tab completes) or a hub repo id, and a download from the hub with a
//! live gauge that leaves the workbench usable and can be cancelled.

pub mod entries;
pub mod flow;
pub mod render;

use crate::tui::panes::line_edit::LineEdit;
use crate::tui::panes::path_complete::PathCompletion;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use entries::{Entry, Source};

/// What a key did in the picker.
#[derive(Debug, PartialEq)]
pub enum Picked {
    Stay,
    Close,
    /// Load this model (a local one, or a repo id already cached).
    Load(String),
    /// Fetch this repo from the hub, then load it.
    Download(String),
    CancelDownload,
}

#[derive(Debug)]
pub struct ModelPicker {
    pub line: LineEdit,
    pub completion: PathCompletion,
    found: Vec<Entry>,
    /// Index into [`ModelPicker::shown`].
    pub selected: usize,
}

impl ModelPicker {
    pub fn new(found: Vec<Entry>) -> ModelPicker {
        ModelPicker {
            line: LineEdit::new(""),
            completion: PathCompletion::default(),
            found,
            selected: 0,
        }
    }

    /// The entries the typed text lets through.
    pub fn shown(&self) -> Vec<Entry> {
        entries::matching(&self.found, self.line.text())
    }

    pub fn key(&mut self, key: KeyEvent) -> Picked {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('x') {
            return Picked::CancelDownload;
        }
        if key.code == KeyCode::Tab {
            self.completion.tab(&mut self.line);
            self.selected = 0;
            return Picked::Stay;
        }
        self.completion.reset();
        let shown = self.shown();
        match key.code {
            KeyCode::Esc => return Picked::Close,
            KeyCode::Down => self.selected = (self.selected + 1).min(shown.len().saturating_sub(1)),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Enter => return self.choose(shown.get(self.selected)),
            _ => {
                if self.line.key(key) {
                    self.selected = 0;
                }
            }
        }
        Picked::Stay
    }

    /// The row at `index` of the shown list, as Enter on it would choose.
    pub fn click(&mut self, index: usize) -> Picked {
        let shown = self.shown();
        if index >= shown.len() {
            return Picked::Stay;
        }
        self.selected = index;
        self.choose(shown.get(index))
    }

    fn choose(&self, entry: Option<&Entry>) -> Picked {
        match entry {
            Some(entry) if entry.source == Source::Download => Picked::Download(entry.name.clone()),
            // A partial cache entry resumes its download.
            Some(entry) if entry.source == (Source::Cache { whole: false }) => {
                Picked::Download(entry.name.clone())
            }
            Some(entry) => Picked::Load(entry.name.clone()),
            None => {
                let typed = self.line.text().trim();
                if typed.is_empty() {
                    Picked::Stay
                } else {
                    Picked::Load(typed.to_string())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn picker() -> ModelPicker {
        let entry = |name: &str, source| Entry {
            name: name.into(),
            bytes: Some(10),
            source,
        };
        ModelPicker::new(vec![
            entry("acme/cached", Source::Cache { whole: true }),
            entry("acme/half", Source::Cache { whole: false }),
            entry("ollama:smollm2:135m", Source::Ollama),
        ])
    }

    fn type_text(picker: &mut ModelPicker, text: &str) {
        for c in text.chars() {
            picker.key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn enter_loads_the_selected_model_and_arrows_move() {
        let mut p = picker();
        assert_eq!(
            p.key(key(KeyCode::Enter)),
            Picked::Load("acme/cached".into())
        );
        p.key(key(KeyCode::Down));
        assert_eq!(
            p.key(key(KeyCode::Enter)),
            Picked::Download("acme/half".into()),
            "a partial download resumes"
        );
        p.key(key(KeyCode::Down));
        p.key(key(KeyCode::Down));
        assert_eq!(p.selected, 2, "the selection stops at the last row");
        assert_eq!(p.click(0), Picked::Load("acme/cached".into()));
        assert_eq!(p.click(9), Picked::Stay);
    }

    #[test]
    fn typing_filters_and_a_new_repo_id_downloads() {
        let mut p = picker();
        type_text(&mut p, "smol");
        assert_eq!(p.shown().len(), 1);
        assert_eq!(
            p.key(key(KeyCode::Enter)),
            Picked::Load("ollama:smollm2:135m".into())
        );
        p.line.set_text("");
        type_text(&mut p, "someorg/brand-new-model");
        assert_eq!(
            p.key(key(KeyCode::Enter)),
            Picked::Download("someorg/brand-new-model".into())
        );
        p.line.set_text("");
        type_text(&mut p, "./no/such/dir/x");
        assert_eq!(
            p.key(key(KeyCode::Enter)),
            Picked::Load("./no/such/dir/x".into()),
            "anything else typed is tried as a path, and its load says what is wrong"
        );
        let ctrl_x = KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL);
        assert_eq!(p.key(ctrl_x), Picked::CancelDownload);
        assert_eq!(p.key(key(KeyCode::Esc)), Picked::Close);
    }
}
