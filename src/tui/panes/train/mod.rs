//! The Train pane (being built).

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

/// What the Train pane starts from.
#[derive(Debug, Clone)]
pub struct TrainSetup {
    pub runs_dir: PathBuf,
    /// Model the form's model.name starts with.
    pub model: String,
    /// Dataset the form's data.train starts with.
    pub data: PathBuf,
    /// Config file the form is prefilled from (else the defaults).
    pub config: Option<PathBuf>,
}

pub struct TrainPane {
    _setup: TrainSetup,
}

impl TrainPane {
    pub fn new(setup: TrainSetup) -> TrainPane {
        TrainPane { _setup: setup }
    }
    pub fn run_summary(&self) -> String {
        "no run".to_string()
    }
}

impl Pane for TrainPane {
    type Msg = Msg;
    fn key(&mut self, _key: KeyEvent) -> Vec<Effect> {
        Vec::new()
    }
    fn mouse(&mut self, _event: MouseEvent, _area: Rect) -> Vec<Effect> {
        Vec::new()
    }
    fn message(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {}
    }
    fn render(&self, _frame: &mut Frame, _area: Rect, _theme: &Theme) {}
    fn bindings(&self) -> &'static [Binding] {
        &[]
    }
    fn hints(&self) -> &'static str {
        ""
    }
}
