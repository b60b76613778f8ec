//! The token view: the selected sample as the model's chat template and
//! tokenizer see it, trained tokens set apart from masked ones, every token
//! boundary visible, and the point where `max_seq_len` cuts.

use crate::tui::theme::Theme;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

pub const DEFAULT_MAX_SEQ_LEN: usize = 2048;
const MIN_SEQ_LEN: usize = 16;
const MAX_SEQ_LEN: usize = 1 << 20;

/// One sample's tokens, decoded one by one.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub pieces: Vec<String>,
    pub trained: Vec<bool>,
    /// What the chat template left out of the rendering (tool calls, tool
    /// schemas), in words.
    pub dropped: Vec<String>,
}

#[derive(Debug)]
pub struct TokenView {
    pub on: bool,
    pub max_seq_len: usize,
    /// For the selection it was asked for (by sequence number).
    pub result: Option<(u64, Result<Tokens, String>)>,
    pub scroll: u16,
}

impl Default for TokenView {
    fn default() -> Self {
        TokenView {
            on: false,
            max_seq_len: DEFAULT_MAX_SEQ_LEN,
            result: None,
            scroll: 0,
        }
    }
}

impl TokenView {
    /// Doubles (`up`) or halves `max_seq_len`.
    pub fn adjust(&mut self, up: bool) {
        self.max_seq_len = if up {
            (self.max_seq_len * 2).min(MAX_SEQ_LEN)
        } else {
            (self.max_seq_len / 2).max(MIN_SEQ_LEN)
        };
    }

    /// The result for selection `seq`, if it has come.
    pub fn for_seq(&self, seq: u64) -> Option<&Result<Tokens, String>> {
        self.result
            .as_ref()
            .filter(|(s, _)| *s == seq)
            .map(|(_, r)| r)
    }
}

/// The summary line above the tokens.
pub fn header(tokens: &Tokens, max_seq_len: usize, theme: &Theme) -> Line<'static> {
    let total = tokens.pieces.len();
    let trained = tokens.trained.iter().filter(|t| **t).count();
    let mut spans = vec![
        Span::styled(
            format!("{total} tokens · "),
            Style::default().fg(theme.text),
        ),
        Span::styled(
            format!("{trained} trained"),
            Style::default().fg(theme.trained),
        ),
        Span::raw(" · "),
        Span::styled(
            format!("{} masked", total - trained),
            Style::default().fg(theme.masked),
        ),
        Span::styled(
            format!(" · max_seq_len {max_seq_len} (+/-)"),
            theme.dimmed(),
        ),
    ];
    if total > max_seq_len {
        let lost = tokens.trained[max_seq_len..].iter().filter(|t| **t).count();
        spans.push(Span::styled(
            format!(
                " · cut: {} tokens dropped, {lost} trained",
                total - max_seq_len
            ),
            Style::default().fg(theme.cut).add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

/// A warning line for each part of the sample the chat template left out.
pub fn dropped(tokens: &Tokens, theme: &Theme) -> Vec<Line<'static>> {
    let style = Style::default()
        .fg(theme.warning)
        .add_modifier(Modifier::BOLD);
    (tokens.dropped.iter())
        .map(|what| Line::styled(format!("⚠ {what}: not in the tokens below"), style))
        .collect()
}

/// The first `max_lines` lines of the tokens: trained in `theme.trained`,
/// masked in `theme.masked`, every other token underlined so boundaries
/// show, line breaks as `↵`, and a marker where `max_seq_len` cuts.
pub fn lines(
    tokens: &Tokens,
    max_seq_len: usize,
    theme: &Theme,
    max_lines: usize,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut spans: Vec<Span<'static>> = Vec::new();
    for (i, piece) in tokens.pieces.iter().enumerate() {
        if lines.len() >= max_lines {
            return lines;
        }
        if i == max_seq_len {
            spans.push(Span::styled(
                format!("✂ {max_seq_len} "),
                Style::default()
                    .fg(theme.cut)
                    .add_modifier(Modifier::BOLD | Modifier::REVERSED),
            ));
        }
        let mut style = Style::default().fg(if tokens.trained[i] {
            theme.trained
        } else {
            theme.masked
        });
        if i % 2 == 1 {
            style = style.add_modifier(Modifier::UNDERLINED);
        }
        if i >= max_seq_len {
            style = style.add_modifier(Modifier::CROSSED_OUT | Modifier::DIM);
        }
        let mut parts = piece.split('\n').peekable();
        while let Some(part) = parts.next() {
            let last = parts.peek().is_none();
            let shown = if last {
                part.to_string()
            } else {
                format!("{part}↵")
            };
            if !shown.is_empty() {
                spans.push(Span::styled(shown.replace('\t', "→   "), style));
            }
            if !last {
                lines.push(Line::from(std::mem::take(&mut spans)));
            }
        }
    }
    lines.push(Line::from(spans));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_marker_and_line_breaks() {
        let theme = &Theme::builtin()[0];
        let tokens = Tokens {
            pieces: vec!["a".into(), "b\nc".into(), "d".into()],
            trained: vec![false, true, true],
            dropped: Vec::new(),
        };
        assert_eq!(lines(&tokens, 2, theme, 1).len(), 1);
        let lines = lines(&tokens, 2, theme, usize::MAX);
        assert_eq!(lines.len(), 2);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, vec!["ab↵", "c✂ 2 d"]);
        let mut view = TokenView::default();
        view.adjust(false);
        assert_eq!(view.max_seq_len, 1024);
        assert!(header(&tokens, 2, theme).to_string().contains("cut: 1"));
    }
}
