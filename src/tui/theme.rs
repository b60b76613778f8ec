//! Colour themes: the shipped ones from themes/*.toml, or a user's file of
//! the same shape. Each names the syntect theme its code view uses.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::path::Path;
use std::str::FromStr;

/// Shipped themes, in the order `t` cycles through them.
const BUILTIN: [&str; 2] = [
    include_str!("../../themes/dark.toml"),
    include_str!("../../themes/light.toml"),
];

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    /// Name of a syntect default theme.
    pub syntax: String,
    pub background: Color,
    pub text: Color,
    pub dim: Color,
    pub accent: Color,
    pub border: Color,
    pub selection: Color,
    pub error: Color,
    pub warning: Color,
    pub info: Color,
    pub ok: Color,
    pub trained: Color,
    pub masked: Color,
    pub cut: Color,
    pub user: Color,
    pub assistant: Color,
    pub system: Color,
    pub chart_loss: Color,
    pub chart_smooth: Color,
    pub chart_eval: Color,
    pub chart_lr: Color,
    pub chart_speed: Color,
    pub chart_grad: Color,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    syntax: String,
    colors: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("theme {file}: {message}")]
    Invalid { file: String, message: String },
    #[error("theme {0}: {1}")]
    Read(String, std::io::Error),
}

impl Theme {
    /// The shipped themes, dark first.
    pub fn builtin() -> Vec<Theme> {
        BUILTIN
            .iter()
            .map(|text| Theme::parse(text, "builtin").expect("shipped themes parse"))
            .collect()
    }

    /// A shipped theme by name, or a theme file.
    pub fn find(name_or_path: &str) -> Result<Theme, ThemeError> {
        if let Some(theme) = Theme::builtin()
            .into_iter()
            .find(|t| t.name == name_or_path)
        {
            return Ok(theme);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path)
            .map_err(|e| ThemeError::Read(name_or_path.to_string(), e))?;
        Theme::parse(&text, name_or_path)
    }

    pub fn parse(text: &str, file: &str) -> Result<Theme, ThemeError> {
        let invalid = |message: String| ThemeError::Invalid {
            file: file.to_string(),
            message,
        };
        let raw: ThemeFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let color = |key: &str| -> Result<Color, ThemeError> {
            let value = raw
                .colors
                .get(key)
                .ok_or_else(|| invalid(format!("colors.{key} is missing")))?;
            Color::from_str(value)
                .map_err(|_| invalid(format!("colors.{key} = {value:?} is not a colour")))
        };
        Ok(Theme {
            name: raw.name.clone(),
            syntax: raw.syntax.clone(),
            background: color("background")?,
            text: color("text")?,
            dim: color("dim")?,
            accent: color("accent")?,
            border: color("border")?,
            selection: color("selection")?,
            error: color("error")?,
            warning: color("warning")?,
            info: color("info")?,
            ok: color("ok")?,
            trained: color("trained")?,
            masked: color("masked")?,
            cut: color("cut")?,
            user: color("user")?,
            assistant: color("assistant")?,
            system: color("system")?,
            chart_loss: color("chart_loss")?,
            chart_smooth: color("chart_smooth")?,
            chart_eval: color("chart_eval")?,
            chart_lr: color("chart_lr")?,
            chart_speed: color("chart_speed")?,
            chart_grad: color("chart_grad")?,
        })
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.text).bg(self.background)
    }

    pub fn dimmed(&self) -> Style {
        Style::default().fg(self.dim)
    }

    pub fn selected(&self) -> Style {
        Style::default()
            .bg(self.selection)
            .add_modifier(Modifier::BOLD)
    }

    pub fn border(&self, focused: bool) -> Style {
        Style::default().fg(if focused { self.accent } else { self.border })
    }

    pub fn title(&self) -> Style {
        Style::default()
            .fg(self.accent)
            .add_modifier(Modifier::BOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_themes_parse_and_differ() {
        let themes = Theme::builtin();
        assert_eq!(themes.len(), 2);
        assert_ne!(themes[0].background, themes[1].background);
        let syntaxes = syntect::highlighting::ThemeSet::load_defaults();
        for theme in &themes {
            assert!(
                syntaxes.themes.contains_key(&theme.syntax),
                "{}",
                theme.syntax
            );
        }
    }

    #[test]
    fn a_missing_colour_is_named() {
        let text = "name = \"x\"\nsyntax = \"InspiredGitHub\"\n[colors]\ntext = \"#ffffff\"\n";
        let err = Theme::parse(text, "my.toml").unwrap_err().to_string();
        assert!(
            err.contains("my.toml") && err.contains("colors.background"),
            "{err}"
        );
    }
}
