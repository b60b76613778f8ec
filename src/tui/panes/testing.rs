//! Helpers the panes' tests share.

use super::Pane;
use crate::tui::theme::Theme;
use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// A left click at a cell.
pub fn left_click(column: u16, row: u16) -> MouseEvent {
    MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }
}

/// `pane` drawn over a `width` x `height` screen with the dark theme.
pub fn draw_pane<P: Pane>(pane: &P, width: u16, height: u16) -> Terminal<TestBackend> {
    let theme = &Theme::builtin()[0];
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| pane.render(frame, frame.area(), theme))
        .unwrap();
    terminal
}
