//! Syntax highlighting of files inside samples, by file extension, with the
//! syntect theme the UI theme names.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use syntect::easy::HighlightLines;
use syntect::highlighting::{FontStyle, ThemeSet};
use syntect::parsing::{SyntaxReference, SyntaxSet};
use syntect::util::LinesWithEndings;

mod own;

pub struct Highlighter {
    syntaxes: SyntaxSet,
    /// Languages syntect's defaults lack (Dockerfile, TOML, ...).
    own: SyntaxSet,
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
            own: own::syntax_set(),
            themes: ThemeSet::load_defaults(),
        }
    }
}

impl Highlighter {
    /// The language `path` is coloured as, if one is known.
    pub fn language(&self, path: &str) -> Option<&str> {
        self.syntax_for(path, "").map(|(_, s)| s.name.as_str())
    }

    /// The syntax for `path` and the set it belongs to: by the file's name
    /// (Dockerfile, requirements.txt, .env), by its extension, or by its
    /// first line (`#!/bin/sh`).
    fn syntax_for(&self, path: &str, first_line: &str) -> Option<(&SyntaxSet, &SyntaxReference)> {
        let file_name = path.rsplit('/').next().unwrap_or(path);
        if let Some(name) = own::language_by_name(path, file_name) {
            return Some((&self.own, self.own.find_syntax_by_name(name)?));
        }
        // Extension-less files are looked up by name (Makefile, ...).
        let extension = file_name.rsplit_once('.').map_or(file_name, |(_, ext)| ext);
        if let Some(syntax) = self.own.find_syntax_by_extension(extension) {
            return Some((&self.own, syntax));
        }
        let syntax = self
            .syntaxes
            .find_syntax_by_extension(extension)
            .or_else(|| self.syntaxes.find_syntax_by_first_line(first_line))?;
        Some((&self.syntaxes, syntax))
    }

    /// `text` as styled lines; plain lines when the language is unknown or
    /// the theme is missing.
    pub fn highlight(&self, path: &str, text: &str, theme: &str) -> Vec<Line<'static>> {
        let first_line = text.lines().next().unwrap_or_default();
        let (Some((set, syntax)), Some(theme)) = (
            self.syntax_for(path, first_line),
            self.themes.themes.get(theme),
        ) else {
            return text.lines().map(|l| Line::raw(l.to_string())).collect();
        };
        let mut highlighter = HighlightLines::new(syntax, theme);
        let mut lines = Vec::new();
        for line in LinesWithEndings::from(text) {
            let spans = match highlighter.highlight_line(line, set) {
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

    fn colours(line: &Line) -> Vec<Option<Color>> {
        line.spans
            .iter()
            .filter(|s| !s.content.trim().is_empty())
            .map(|s| s.style.fg)
            .collect()
    }

    #[test]
    fn every_file_of_the_fastapi_samples_is_coloured_in_every_theme() {
        let h = Highlighter::default();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sample-data/fastapi_projects.jsonl"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let themes: Vec<String> = crate::tui::theme::Theme::builtin()
            .into_iter()
            .map(|t| t.syntax)
            .collect();
        let mut checked = std::collections::BTreeSet::new();
        for record in text.lines() {
            let value: serde_json::Value = serde_json::from_str(record).unwrap();
            for (path, content) in value["output"]["files"].as_object().unwrap() {
                let content = content.as_str().unwrap();
                let language = h.language(path);
                assert!(
                    language.is_some_and(|l| l != "Plain Text"),
                    "{path}: {language:?}"
                );
                if content.trim().is_empty() {
                    continue;
                }
                for theme in &themes {
                    let lines = h.highlight(path, content, theme);
                    let distinct: std::collections::HashSet<_> =
                        lines.iter().flat_map(colours).collect();
                    // A docstring-only `__init__.py` is one colour, but not
                    // the plain text's.
                    let plain = h.themes.themes[theme].settings.foreground;
                    let plain = plain.map(|c| Color::Rgb(c.r, c.g, c.b));
                    assert!(distinct.iter().any(|c| *c != plain), "{path} in {theme}");
                    if lines.len() >= 5 {
                        assert!(distinct.len() > 1, "{path} in {theme}: {distinct:?}");
                    }
                }
                checked.insert(language.unwrap().to_string());
            }
        }
        for language in [
            "Python",
            "Dockerfile",
            "pip requirements",
            "TOML",
            "YAML",
            "JSON",
        ] {
            assert!(checked.contains(language), "{checked:?}");
        }
    }

    #[test]
    fn project_files_without_a_default_syntax_get_ours() {
        let h = Highlighter::default();
        for (path, language) in [
            ("Dockerfile", "Dockerfile"),
            ("docker/Dockerfile.dev", "Dockerfile"),
            ("api.dockerfile", "Dockerfile"),
            ("requirements.txt", "pip requirements"),
            ("requirements-dev.txt", "pip requirements"),
            ("requirements/base.txt", "pip requirements"),
            ("pyproject.toml", "TOML"),
            ("setup.cfg", "INI"),
            ("tox.ini", "INI"),
            (".env", "dotenv"),
            (".env.example", "dotenv"),
            ("Makefile", "Makefile"),
            ("scripts/run", "Bourne Again Shell (bash)"),
        ] {
            let first_line = if path == "scripts/run" {
                "#!/bin/sh"
            } else {
                ""
            };
            assert_eq!(
                h.syntax_for(path, first_line).map(|(_, s)| s.name.as_str()),
                Some(language),
                "{path}"
            );
        }
        let theme = "base16-ocean.dark";
        let docker = h.highlight(
            "Dockerfile",
            "# base\nFROM python:3.12-slim AS build\nRUN pip install -r requirements.txt && echo \"$HOME\"\n",
            theme,
        );
        let from = colours(&docker[1]);
        assert_ne!(from[0], from[1], "FROM stands out from the image");
        assert_ne!(colours(&docker[0])[0], from[1], "comments stand out");
        let run = colours(&docker[2]);
        assert!(run.len() >= 3 && run[0] != run[1], "{:?}", docker[2]);
        let toml = h.highlight(
            "pyproject.toml",
            "[tool.x]\nname = \"a\" # c\nn = 3\n",
            theme,
        );
        assert_ne!(colours(&toml[0]), colours(&toml[2])[..1]);
        let line = colours(&toml[1]);
        assert_eq!(line.len(), 4, "key, =, string, comment: {:?}", toml[1]);
        assert!(line[0] != line[2] && line[2] != line[3]);
        let env = h.highlight(".env", "export DB_URL=\"sqlite://\"\n", theme);
        let env = colours(&env[0]);
        assert!(env[0] != env[1] && env[1] != env[3], "{env:?}");
    }
}
