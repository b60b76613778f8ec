//! Keys and clicks while a popup (adapter picker, sampling settings,
//! answer editor) is open over the chat: it takes them all.

use super::editor::Edited;
use super::picker::Picked;
use super::{ChatPane, Overlay, SCROLL_LINES};
use crate::tui::action::{Effect, Notice};
use crate::tui::app::contains;
use crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};

impl ChatPane {
    pub(super) fn overlay_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(overlay) = &mut self.overlay else {
            return Vec::new();
        };
        match overlay {
            Overlay::Picker(picker) => match picker.key(key) {
                Picked::Stay => {}
                Picked::Close => self.overlay = None,
                Picked::Choose(path) => return self.choose_adapter(path),
            },
            Overlay::Settings(editor) => {
                if !editor.key(key, &mut self.settings) {
                    self.overlay = None;
                }
            }
            Overlay::Editor(editor) => match editor.key(key) {
                Edited::Typing => {}
                Edited::Cancel => self.overlay = None,
                Edited::Save(text) => {
                    let side = editor.side;
                    self.overlay = None;
                    return match self.chat.edit_last_answer(side, text) {
                        Some(sample) => vec![
                            Effect::AppendToDataset(sample),
                            Notice::info("answer edited; the exchange was added to the dataset"),
                        ],
                        None => vec![Notice::error("that answer is gone; nothing was added")],
                    };
                }
            },
        }
        Vec::new()
    }

    pub(super) fn overlay_mouse(&mut self, event: MouseEvent) -> Vec<Effect> {
        let drawn = self.drawn.get();
        match (&mut self.overlay, event.kind) {
            (Some(Overlay::Picker(picker)), MouseEventKind::Down(MouseButton::Left)) => {
                let rows = drawn.picker_rows;
                if contains(rows, event.column, event.row) {
                    let index = drawn.picker_first + (event.row - rows.y) as usize;
                    if let Some(path) = picker.click(index) {
                        return self.choose_adapter(path);
                    }
                } else {
                    self.overlay = None;
                }
            }
            (Some(Overlay::Picker(picker)), MouseEventKind::ScrollDown) => {
                picker.key(KeyEvent::from(KeyCode::Down));
            }
            (Some(Overlay::Picker(picker)), MouseEventKind::ScrollUp) => {
                picker.key(KeyEvent::from(KeyCode::Up));
            }
            (Some(Overlay::Editor(editor)), MouseEventKind::ScrollDown) => {
                editor.area.scroll((SCROLL_LINES as i16, 0));
            }
            (Some(Overlay::Editor(editor)), MouseEventKind::ScrollUp) => {
                editor.area.scroll((-SCROLL_LINES as i16, 0));
            }
            _ => {}
        }
        Vec::new()
    }
}
