//! Mouse: a click selects a row, a file or a finding (and focuses that
//! part); the wheel scrolls the part under the pointer.

use super::sample_view::Item;
use super::state::{DataPane, Focus};
use crate::tui::action::Effect;
use crate::tui::app::contains;
use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

const WHEEL_STEP: isize = 3;

impl DataPane {
    pub(super) fn on_mouse(&mut self, event: MouseEvent) -> Vec<Effect> {
        let areas = self.areas.get();
        let (x, y) = (event.column, event.row);
        let part = if contains(areas.list, x, y) {
            Some(Focus::List)
        } else if contains(areas.findings, x, y) {
            Some(Focus::Findings)
        } else if contains(areas.tree, x, y)
            || contains(areas.content, x, y)
            || contains(areas.fields, x, y)
        {
            Some(Focus::Sample)
        } else {
            None
        };
        let Some(part) = part else {
            return Vec::new();
        };
        match event.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if self.editor.is_some() || self.prompt.is_some() {
                    return Vec::new();
                }
                self.focus = part;
                self.click(part, areas.list, areas.findings, areas.tree, y)
            }
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let step = if event.kind == MouseEventKind::ScrollDown {
                    WHEEL_STEP
                } else {
                    -WHEEL_STEP
                };
                match part {
                    Focus::Sample if contains(areas.fields, x, y) => {
                        let (width, height) = (areas.fields.width, areas.fields.height);
                        if let Some(sel) = &mut self.selected {
                            sel.scroll_fields(step, width as usize, height as usize);
                        }
                    }
                    Focus::Sample => self.scroll_content(step),
                    _ => {
                        let focus = std::mem::replace(&mut self.focus, part);
                        self.move_in_focus(step, false);
                        self.focus = focus;
                    }
                }
                Vec::new()
            }
            MouseEventKind::ScrollLeft | MouseEventKind::ScrollRight
                if contains(areas.content, x, y) =>
            {
                let direction = if event.kind == MouseEventKind::ScrollRight {
                    1
                } else {
                    -1
                };
                self.scroll_code_columns(direction)
            }
            _ => Vec::new(),
        }
    }

    fn click(
        &mut self,
        part: Focus,
        list: Rect,
        findings: Rect,
        tree: Rect,
        y: u16,
    ) -> Vec<Effect> {
        match part {
            Focus::List => {
                let offset = self.list.visible_offset(list.height as usize);
                let pos = offset + (y - list.y) as usize;
                if pos < self.visible_len() {
                    self.list.pos = pos;
                    self.list.follow(list.height as usize);
                }
                Vec::new()
            }
            Focus::Findings => {
                let offset = self
                    .findings_cursor
                    .visible_offset(findings.height as usize);
                let pos = offset + (y - findings.y) as usize;
                if pos < self.findings.len() {
                    self.findings_cursor.pos = pos;
                    return self.jump_to_finding();
                }
                Vec::new()
            }
            Focus::Sample => {
                if !contains(tree, tree.x, y) {
                    return Vec::new();
                }
                let file = self.selected.as_ref().and_then(|s| {
                    let row = s.tree_offset(tree.height as usize) + (y - tree.y) as usize;
                    s.tree.get(row)?.file
                });
                if let Some(file) = file {
                    self.choose_item(Item::File(file));
                }
                Vec::new()
            }
        }
    }
}
