//! The one-line text input every prompt and form field uses: readline's
//! keys (Ctrl-A/E/U/W, Home/End, Left/Right, Backspace/Delete) and a view
//! that scrolls sideways so the cursor stays on screen.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

/// Text and a cursor (a char index, 0..=len).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineEdit {
    text: String,
    cursor: usize,
}

impl LineEdit {
    /// `text` with the cursor at its end.
    pub fn new(text: &str) -> LineEdit {
        LineEdit {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replaces the text, cursor at its end.
    pub fn set_text(&mut self, text: &str) {
        *self = LineEdit::new(text);
    }

    /// An editing key: returns whether it was one (the text or cursor may
    /// not have moved, e.g. Backspace at the start).
    pub fn key(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.len(),
            KeyCode::Char('u') if ctrl => self.delete_back_to(0),
            KeyCode::Char('w') if ctrl => self.delete_back_to(self.word_start()),
            KeyCode::Char(c) if !ctrl => self.insert(c),
            KeyCode::Backspace => self.delete_back_to(self.cursor.saturating_sub(1)),
            KeyCode::Delete => {
                if self.cursor < self.len() {
                    let at = self.byte(self.cursor);
                    self.text.remove(at);
                }
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.len(),
            _ => return false,
        }
        true
    }

    pub fn insert(&mut self, c: char) {
        let at = self.byte(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    /// Inserts `text` at the cursor (a paste).
    pub fn insert_str(&mut self, text: &str) {
        text.chars().for_each(|c| self.insert(c));
    }

    fn len(&self) -> usize {
        self.text.chars().count()
    }

    fn byte(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(i, _)| i)
    }

    /// Deletes from char `start` to the cursor.
    fn delete_back_to(&mut self, start: usize) {
        let (from, to) = (self.byte(start), self.byte(self.cursor));
        self.text.replace_range(from..to, "");
        self.cursor = start;
    }

    /// Where Ctrl-W deletes back to: over separators, then over the word
    /// before them. A `/` separates too, so Ctrl-W in a path drops its
    /// last component.
    fn word_start(&self) -> usize {
        let chars: Vec<char> = self.text.chars().take(self.cursor).collect();
        let separator = |c: &char| c.is_whitespace() || *c == '/';
        let mut at = chars.len();
        while at > 0 && separator(&chars[at - 1]) {
            at -= 1;
        }
        while at > 0 && !separator(&chars[at - 1]) {
            at -= 1;
        }
        at
    }

    /// What fits in `width` columns: the first char shown and the cursor's
    /// column. The view starts at the text's start while the cursor fits,
    /// else it keeps the cursor on the last column (one char per column).
    pub fn window(&self, width: usize) -> (usize, usize) {
        let width = width.max(1);
        let skip = (self.cursor + 1).saturating_sub(width);
        (skip, self.cursor - skip)
    }

    /// The text as spans for `width` columns, the cursor's cell reversed.
    pub fn spans(&self, width: usize, style: Style) -> Vec<Span<'static>> {
        let (skip, column) = self.window(width);
        let shown: Vec<char> = self.text.chars().skip(skip).take(width.max(1)).collect();
        let before: String = shown[..column.min(shown.len())].iter().collect();
        let at = shown.get(column).map_or(" ".to_string(), char::to_string);
        let after: String = shown.iter().skip(column + 1).collect();
        vec![
            Span::styled(before, style),
            Span::styled(at, style.add_modifier(Modifier::REVERSED)),
            Span::styled(after, style),
        ]
    }
}

/// A prompt's row: `label`, the input scrolled to fit `width`, and `hint`
/// after it (cut where the row ends).
pub fn prompt_line(
    label: Span<'static>,
    line: &LineEdit,
    style: Style,
    hint: Span<'static>,
    width: u16,
) -> Line<'static> {
    let room = (width as usize).saturating_sub(label.width());
    let mut spans = vec![label];
    spans.extend(line.spans(room, style));
    spans.push(hint);
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(line: &mut LineEdit, code: KeyCode) {
        line.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn ctrl(line: &mut LineEdit, c: char) {
        line.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    }

    #[test]
    fn moves_and_edits_by_char() {
        let mut line = LineEdit::new("héllo");
        assert_eq!(line.cursor(), 5);
        press(&mut line, KeyCode::Left);
        press(&mut line, KeyCode::Backspace);
        assert_eq!((line.text(), line.cursor()), ("hélo", 3));
        press(&mut line, KeyCode::Home);
        press(&mut line, KeyCode::Delete);
        press(&mut line, KeyCode::Char('H'));
        assert_eq!((line.text(), line.cursor()), ("Hélo", 1));
        press(&mut line, KeyCode::End);
        press(&mut line, KeyCode::Right);
        press(&mut line, KeyCode::Delete);
        assert_eq!((line.text(), line.cursor()), ("Hélo", 4));
        ctrl(&mut line, 'a');
        assert_eq!(line.cursor(), 0);
        press(&mut line, KeyCode::Backspace);
        assert_eq!(line.text(), "Hélo");
        ctrl(&mut line, 'e');
        assert_eq!(line.cursor(), 4);
        assert!(!line.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)));
    }

    #[test]
    fn ctrl_u_and_ctrl_w_delete_before_the_cursor() {
        let mut line = LineEdit::new("data/runs/old.jsonl");
        ctrl(&mut line, 'w');
        assert_eq!(line.text(), "data/runs/");
        ctrl(&mut line, 'w');
        assert_eq!(line.text(), "data/");
        let mut line = LineEdit::new("two words  ");
        ctrl(&mut line, 'w');
        assert_eq!(line.text(), "two ");
        let mut line = LineEdit::new("keep this");
        for _ in 0..4 {
            press(&mut line, KeyCode::Left);
        }
        ctrl(&mut line, 'u');
        assert_eq!((line.text(), line.cursor()), ("this", 0));
    }

    #[test]
    fn a_long_text_scrolls_to_keep_the_cursor_shown() {
        let mut line = LineEdit::new("/home/user/datasets/projects.jsonl");
        let (skip, column) = line.window(10);
        assert_eq!(
            (skip, column),
            (25, 9),
            "the end, cursor in the last column"
        );
        let text = |line: &LineEdit| -> String {
            line.spans(10, Style::default())
                .iter()
                .map(|s| s.content.as_ref())
                .collect()
        };
        assert_eq!(text(&line), "cts.jsonl ");
        ctrl(&mut line, 'a');
        assert_eq!(line.window(10), (0, 0));
        assert_eq!(text(&line), "/home/user");
        let short = LineEdit::new("ab");
        assert_eq!(short.window(10), (0, 2));
        assert_eq!(text(&short), "ab ");
    }
}
