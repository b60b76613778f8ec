//! The Chat pane (being built).

pub mod worker;

use crate::tui::action::{Effect, Exchange};
use crate::tui::panes::{Binding, Pane};
use crate::tui::theme::Theme;
use crossterm::event::{KeyEvent, MouseEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Msg {
    UseSample(Exchange),
}

#[derive(Debug)]
pub enum Job {}

pub struct ChatPane {
    _runs_dir: PathBuf,
}

impl ChatPane {
    pub fn new(runs_dir: PathBuf) -> ChatPane {
        ChatPane {
            _runs_dir: runs_dir,
        }
    }
}

impl Pane for ChatPane {
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
