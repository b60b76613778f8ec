//! Text boxes: the prompt at the bottom (Enter sends, Alt+Enter or
//! Shift+Enter starts a new line) and the answer editor (Enter is a new
//! line). Both are a `TextArea` with soft wrapping.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui_textarea::{TextArea, WrapMode};

/// A wrapping text area holding `text`, cursor at the end.
pub fn text_area(text: &str) -> TextArea<'static> {
    let lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let mut area = TextArea::new(lines);
    area.set_wrap_mode(WrapMode::WordOrGlyph);
    area.set_cursor_line_style(Style::default());
    area.move_cursor(ratatui_textarea::CursorMove::Bottom);
    area.move_cursor(ratatui_textarea::CursorMove::End);
    area
}

/// The text of a text area, lines joined.
pub fn text_of(area: &TextArea) -> String {
    area.lines().join("\n")
}

/// Shows or hides the cursor (only the focused box shows one).
pub fn show_cursor(area: &mut TextArea, shown: bool) {
    let style = if shown {
        Style::default().add_modifier(Modifier::REVERSED)
    } else {
        Style::default()
    };
    area.set_cursor_style(style);
}

/// What a key did to the prompt.
#[derive(Debug, PartialEq)]
pub enum Typed {
    /// Enter: the prompt (possibly empty) is to be sent.
    Send(String),
    Edited,
}

pub struct PromptInput {
    pub area: TextArea<'static>,
}

impl Default for PromptInput {
    fn default() -> Self {
        let mut area = text_area("");
        area.set_placeholder_text("Type a prompt…  (Enter sends, Alt+Enter new line)");
        show_cursor(&mut area, false);
        PromptInput { area }
    }
}

impl PromptInput {
    pub fn key(&mut self, key: KeyEvent) -> Typed {
        if key.code == KeyCode::Enter {
            if key
                .modifiers
                .intersects(KeyModifiers::ALT | KeyModifiers::SHIFT)
            {
                self.area.insert_newline();
                return Typed::Edited;
            }
            return Typed::Send(self.text());
        }
        self.area.input(key);
        Typed::Edited
    }

    pub fn text(&self) -> String {
        text_of(&self.area)
    }

    /// Replaces the text (cursor at the end), keeping the look.
    pub fn set_text(&mut self, text: &str) {
        let style = self.area.cursor_style();
        let placeholder = self.area.placeholder_text().to_string();
        self.area = text_area(text);
        self.area.set_placeholder_text(placeholder);
        self.area.set_cursor_style(style);
    }

    pub fn focus(&mut self, focused: bool) {
        show_cursor(&mut self.area, focused);
    }

    /// Rows the box wants (text lines, 1 to 6), before borders.
    pub fn rows(&self) -> u16 {
        self.area.lines().len().clamp(1, 6) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_sends_and_alt_enter_breaks_the_line() {
        let mut input = PromptInput::default();
        for c in "hi".chars() {
            input.key(KeyEvent::from(KeyCode::Char(c)));
        }
        input.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
        input.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::SHIFT));
        input.key(KeyEvent::from(KeyCode::Char('x')));
        assert_eq!(input.rows(), 3);
        assert_eq!(
            input.key(KeyEvent::from(KeyCode::Enter)),
            Typed::Send("hi\n\nx".into())
        );
        input.set_text("a\nb");
        assert_eq!(input.text(), "a\nb");
    }
}
