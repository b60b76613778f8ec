//! The Data pane (being built).

pub mod worker;

use crate::tui::action::{Effect, Exchange};
use crate::tui::highlight::Highlighter;
use crate::tui::panes::{Binding, Pane};
use crate::tui::theme::Theme;
use crossterm::event::{KeyEvent, MouseEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug)]
pub enum Msg {
    Append(serde_json::Value),
    SyntaxTheme(String),
}

#[derive(Debug)]
pub enum Job {}

pub struct DataPane {
    path: PathBuf,
    _highlighter: Arc<Highlighter>,
}

impl DataPane {
    pub fn open(
        path: &Path,
        highlighter: Arc<Highlighter>,
        _syntax: String,
    ) -> Result<DataPane, String> {
        Ok(DataPane {
            path: path.to_path_buf(),
            _highlighter: highlighter,
        })
    }
    pub fn is_dirty(&self) -> bool {
        false
    }
    pub fn file_label(&self) -> String {
        self.path.display().to_string()
    }
    pub fn save(&mut self) -> Result<(), String> {
        Ok(())
    }
    pub fn selected_exchange(&self) -> Option<Exchange> {
        None
    }
}

impl Pane for DataPane {
    type Msg = Msg;
    fn key(&mut self, _key: KeyEvent) -> Vec<Effect> {
        Vec::new()
    }
    fn mouse(&mut self, _event: MouseEvent, _area: Rect) -> Vec<Effect> {
        Vec::new()
    }
    fn message(&mut self, _msg: Msg) -> Vec<Effect> {
        Vec::new()
    }
    fn render(&self, _frame: &mut Frame, _area: Rect, _theme: &Theme) {}
    fn bindings(&self) -> &'static [Binding] {
        &[]
    }
    fn hints(&self) -> &'static str {
        ""
    }
}
