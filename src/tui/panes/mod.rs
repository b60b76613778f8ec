//! The four panes. Each owns its state and changes it only in its own
//! `key`/`mouse`/`message` handlers; what it needs from elsewhere arrives as
//! a message, and what it wants done leaves as an `Effect`. Each pane's
//! message type is its own, so `message` is an inherent method and `Pane`
//! holds what the app calls on whichever pane is on screen.

pub mod chat;
pub mod data;
pub mod esc_guard;
pub mod eval;
pub mod line_edit;
pub mod path_complete;
#[cfg(test)]
mod testing;
pub mod train;

use super::action::{Effect, ModelInfo};
use super::theme::Theme;
use crossterm::event::{KeyEvent, MouseEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

/// Below this many columns a pane stacks its parts (list above detail,
/// one answer above the other) instead of setting them side by side.
pub const NARROW: u16 = 100;

pub fn is_narrow(area: Rect) -> bool {
    area.width < NARROW
}

/// Two parts of `area`: side by side as `wide` says, or, in a narrow area,
/// one above the other as `narrow` says.
pub fn split_two(area: Rect, wide: [Constraint; 2], narrow: [Constraint; 2]) -> [Rect; 2] {
    if is_narrow(area) {
        Layout::vertical(narrow).areas(area)
    } else {
        Layout::horizontal(wide).areas(area)
    }
}

/// A paste for a one-line input: its lines joined by spaces (a path or a
/// filter has no line breaks; a terminal may send `\r` for them).
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with the terminal's `\r` line breaks made `\n`.
pub fn newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// A key binding as the help screen lists it.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static str,
    pub does: &'static str,
}

pub const fn bind(keys: &'static str, does: &'static str) -> Binding {
    Binding { keys, does }
}

pub trait Pane {
    fn key(&mut self, key: KeyEvent) -> Vec<Effect>;
    /// `area` is where the pane was last drawn.
    fn mouse(&mut self, event: MouseEvent, area: Rect) -> Vec<Effect>;
    /// Periodic wake-up; returns whether anything changed.
    fn tick(&mut self) -> bool {
        false
    }
    /// A (new) model is ready.
    fn model_ready(&mut self, _model: &ModelInfo) -> Vec<Effect> {
        Vec::new()
    }
    /// The model `name` failed to load; `message` says why.
    fn model_failed(&mut self, _name: &str, _message: &str) -> Vec<Effect> {
        Vec::new()
    }
    /// Pasted text (bracketed paste): into the focused input as text,
    /// never as keys.
    fn paste(&mut self, _text: &str) -> Vec<Effect> {
        Vec::new()
    }
    /// An editor is open with text that quitting would lose.
    fn has_unapplied_edit(&self) -> bool {
        false
    }
    /// The pane's tab came on screen.
    fn shown(&mut self) -> Vec<Effect> {
        Vec::new()
    }
    /// The pane is typing text (a filter, an editor, a prompt): global keys
    /// like `q` and `1` go to the pane.
    fn captures_input(&self) -> bool {
        false
    }
    /// `Y`: the focused answer or file to copy, and what to call it.
    fn copy_text(&self) -> Option<(String, String)> {
        None
    }
    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme);
    /// Every binding, for the help screen.
    fn bindings(&self) -> &'static [Binding];
    /// The few keys worth showing in the status bar.
    fn hints(&self) -> &'static str;
}
