//! The Eval pane (being built).

pub mod worker;

use crate::tui::action::Effect;
use crate::tui::panes::{Binding, Pane};
use crate::tui::theme::Theme;
use crossterm::event::{KeyEvent, MouseEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Msg {}

#[derive(Debug)]
pub enum Job {}

pub struct EvalPane {
    _runs_dir: PathBuf,
}

impl EvalPane {
    pub fn new(runs_dir: PathBuf) -> EvalPane {
        EvalPane {
            _runs_dir: runs_dir,
        }
    }
}

impl Pane for EvalPane {
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
