//! Syntax highlighting of files inside samples, by file extension, with the
//! syntect theme the UI theme names.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use syntect::easy::HighlightLines;
use syntect::highlighting::{FontStyle, ThemeSet};
use syntect::parsing::{SyntaxReference, SyntaxSet};
use syntect::util::LinesWithEndings;

pub struct Highlighter {
    syntaxes: SyntaxSet,
    themes: ThemeSet,
}

impl std::fmt::Debug for Highlighter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Highlighter")
    }
}

impl Default for Highlighter {
    fn default() -> Self {
        Highlighter {
            syntaxes: SyntaxSet::load_defaults_newlines(),
            themes: ThemeSet::load_defaults(),
        }
    }
}

impl Highlighter {
    /// The language syntect would use for `path`, if it knows one.
    pub fn language(&self, path: &str) -> Option<&str> {
        self.syntax_for(path).map(|s| s.name.as_str())
    }

    fn syntax_for(&self, path: &str) -> Option<&SyntaxReference> {
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let extension = match file_name.rsplit_once('.') {
            Some((_, ext)) => ext,
            // Extension-less files are looked up by name (Makefile, ...).
            None => file_name,
        };
        self.syntaxes.find_syntax_by_extension(extension)
    }

    /// `text` as styled lines; plain lines when the language is unknown or
    /// the theme is missing.
    pub fn highlight(&self, path: &str, text: &str, theme: &str) -> Vec<Line<'static>> {
        let (Some(syntax), Some(theme)) = (self.syntax_for(path), self.themes.themes.get(theme))
        else {
            return text.lines().map(|l| Line::raw(l.to_string())).collect();
        };
        let mut highlighter = HighlightLines::new(syntax, theme);
        let mut lines = Vec::new();
        for line in LinesWithEndings::from(text) {
            let spans = match highlighter.highlight_line(line, &self.syntaxes) {
                Ok(regions) => regions
                    .into_iter()
                    .map(|(style, piece)| {
                        Span::styled(
                            piece.trim_end_matches(['\n', '\r']).to_string(),
                            convert(style),
                        )
                    })
                    .collect(),
                Err(_) => vec![Span::raw(line.trim_end_matches(['\n', '\r']).to_string())],
            };
            lines.push(Line::from(spans));
        }
        lines
    }
}

/// syntect's foreground and font style; the background stays the UI's.
fn convert(style: syntect::highlighting::Style) -> Style {
    let fg = style.foreground;
    let mut out = Style::default().fg(Color::Rgb(fg.r, fg.g, fg.b));
    if style.font_style.contains(FontStyle::BOLD) {
        out = out.add_modifier(Modifier::BOLD);
    }
    if style.font_style.contains(FontStyle::ITALIC) {
        out = out.add_modifier(Modifier::ITALIC);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_is_coloured_and_unknown_files_stay_plain() {
        let h = Highlighter::default();
        assert_eq!(h.language("app/main.py"), Some("Python"));
        let lines = h.highlight("app/main.py", "import os\nx = 1\n", "base16-ocean.dark");
        assert_eq!(lines.len(), 2);
        let colours: std::collections::HashSet<_> =
            lines[0].spans.iter().map(|s| s.style.fg).collect();
        assert!(colours.len() > 1, "keyword and name get different colours");
        let plain = h.highlight("notes.unknownext", "a\nb", "base16-ocean.dark");
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[0].spans[0].style, Style::default());
    }
}
