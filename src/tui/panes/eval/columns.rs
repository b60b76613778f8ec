//! The selected sample: its prompt, and base | adapter | reference side by
//! side, each with its metrics above and its text below, the words the
//! word diff found outside the reference (or, in the reference, missed by
//! the answer) marked.

use super::diff::WordDiff;
use super::render::{block, change_style, note, request_words, title_style};
use super::state::{Against, Compared, Loaded};
use super::{EvalPane, Focus};
use crate::eval::results::{SampleResult, SideResult};
use crate::tui::panes::chat::wrap::wrap;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::ops::Range;

/// Draws the prompt and the three columns; returns the lines of the longest
/// text and the rows the texts get.
pub fn render(pane: &EvalPane, frame: &mut Frame, area: Rect, theme: &Theme) -> (usize, usize) {
    let focused = pane.focus == Focus::Columns;
    let (Some(loaded), Some(compared)) = (&pane.loaded, &pane.compared) else {
        let outer = block(
            Span::styled(" Answers ", title_style(focused, theme)),
            focused,
            theme,
        );
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let text = if pane.loaded.is_some() {
            "The results file has no samples."
        } else {
            "Base | adapter | reference answers of the selected sample appear here, side by side, with the words that differ from the reference marked."
        };
        frame.render_widget(
            Paragraph::new(note(text, inner.width as usize, theme.dimmed())),
            inner,
        );
        return (0, 0);
    };
    let sample = &loaded.samples[compared.sample];
    let rows = Layout::vertical([Constraint::Length(2), Constraint::Min(4)]).split(area);
    render_prompt(sample, frame, rows[0], theme);
    let rects = Layout::horizontal([Constraint::Ratio(1, 3); 3]).split(rows[1]);
    let columns = columns(pane, loaded, compared, sample, theme);
    let inner_width = rects[0].width.saturating_sub(2) as usize;
    let metrics: Vec<Vec<Line>> = columns
        .iter()
        .map(|c| flow(&c.metrics, inner_width))
        .collect();
    // The metrics take at most half a column; the text gets the rest.
    let room = rects[0].height.saturating_sub(3) as usize / 2;
    let header = metrics.iter().map(Vec::len).max().unwrap_or(0).min(room);
    let mut longest = 0;
    let mut text_height = 0;
    for ((column, metrics), &rect) in columns.into_iter().zip(metrics).zip(rects.iter()) {
        let outer = block(column.title.clone(), focused, theme);
        let inner = outer.inner(rect);
        frame.render_widget(outer, rect);
        let width = inner.width as usize;
        let mut lines = metrics;
        lines.resize(header, Line::raw(""));
        lines.truncate(header);
        lines.push(Line::styled("─".repeat(width), theme.dimmed()));
        let body = column.body(width, theme);
        text_height = (inner.height as usize).saturating_sub(lines.len());
        longest = longest.max(body.len());
        let top = pane.scroll.min(body.len().saturating_sub(text_height));
        lines.extend(body.into_iter().skip(top).take(text_height));
        frame.render_widget(Paragraph::new(lines), inner);
    }
    (longest, text_height)
}

fn render_prompt(sample: &SampleResult, frame: &mut Frame, area: Rect, theme: &Theme) {
    let head = format!("#{} line {} ", sample.index + 1, sample.line);
    let width = (area.width as usize).saturating_sub(head.len()).max(1);
    let mut wrapped = wrap(&request_words(&sample.prompt), width);
    if wrapped.len() > area.height as usize {
        wrapped.truncate(area.height as usize);
        if let Some(last) = wrapped.last_mut() {
            let keep: String = last.chars().take(width.saturating_sub(1)).collect();
            *last = format!("{}…", keep.trim_end());
        }
    }
    let lines: Vec<Line> = wrapped
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let lead = if i == 0 {
                Span::styled(head.clone(), theme.title())
            } else {
                Span::raw(" ".repeat(head.len()))
            };
            Line::from(vec![
                lead,
                Span::styled(text, Style::default().fg(theme.user)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

/// One column: its title, metrics, and text with the diff's words.
struct Column<'a> {
    title: Line<'static>,
    metrics: Vec<Span<'static>>,
    body: Body<'a>,
}

enum Body<'a> {
    Text {
        text: &'a str,
        words: &'a [(Range<usize>, bool)],
        reference: bool,
    },
    Note(&'static str),
}

impl Column<'_> {
    fn body(&self, width: usize, theme: &Theme) -> Vec<Line<'static>> {
        match self.body {
            Body::Note(text) => note(text, width, theme.dimmed()),
            Body::Text { text, .. } if text.trim().is_empty() => {
                vec![Line::styled("(empty)", theme.dimmed())]
            }
            Body::Text {
                text,
                words,
                reference,
            } => {
                let plain = Style::default().fg(theme.text);
                let other = if reference {
                    Style::default()
                        .fg(theme.dim)
                        .add_modifier(Modifier::ITALIC)
                } else {
                    Style::default()
                        .fg(theme.error)
                        .add_modifier(Modifier::UNDERLINED)
                };
                let styles = char_styles(text, words, plain, other);
                styled_wrap(text, &styles, width, plain)
            }
        }
    }
}

fn columns<'a>(
    pane: &EvalPane,
    loaded: &Loaded,
    c: &'a Compared,
    sample: &SampleResult,
    theme: &Theme,
) -> Vec<Column<'a>> {
    let focused = pane.focus == Focus::Columns;
    let name = |text: String| Span::styled(text, title_style(focused, theme));
    let base = Column {
        title: Line::from(vec![name(format!(" Base · {:.3} ", sample.base.score))]),
        metrics: side_metrics(&sample.base, &c.base_diff, theme),
        body: Body::Text {
            text: &c.base,
            words: &c.base_diff.answer,
            reference: false,
        },
    };
    let adapter = match (&sample.adapter, &c.adapter, &c.adapter_diff) {
        (Some(side), Some(text), Some(diff)) => {
            let mut title = vec![name(format!(" Adapter · {:.3}", side.score))];
            if let Some(d) = sample.score_delta {
                title.push(Span::styled(
                    format!(" {d:+.3}"),
                    change_style(d, true, theme),
                ));
            }
            title.push(Span::raw(" "));
            Column {
                title: Line::from(title),
                metrics: side_metrics(side, diff, theme),
                body: Body::Text {
                    text,
                    words: &diff.answer,
                    reference: false,
                },
            }
        }
        _ => Column {
            title: Line::from(vec![name(" Adapter ".to_string())]),
            metrics: Vec::new(),
            body: Body::Note(if loaded.adapter.is_some() {
                "This sample has no adapter answer."
            } else {
                "These results have no adapter side: the evaluation ran without --adapter."
            }),
        },
    };
    let (diff, against) = c.reference_diff(pane.against);
    let against_name = match against {
        Against::Base => "base",
        Against::Adapter => "adapter",
    };
    let (shared, all) = diff.reference_shared();
    let mut metrics = vec![
        Span::styled(
            format!("line {}", sample.line),
            Style::default().fg(theme.text),
        ),
        Span::styled(
            format!("tokens {}", sample.tokens),
            Style::default().fg(theme.text),
        ),
    ];
    if let Some(label) = &sample.label {
        metrics.push(Span::styled(
            format!("label {label}"),
            Style::default().fg(theme.text),
        ));
    }
    metrics.push(Span::styled(
        format!("{against_name} has {shared}/{all} words"),
        theme.dimmed(),
    ));
    let reference = Column {
        title: Line::from(vec![name(format!(" Reference · vs {against_name} "))]),
        metrics,
        body: Body::Text {
            text: &c.reference,
            words: &diff.reference,
            reference: true,
        },
    };
    vec![base, adapter, reference]
}

/// A side's scores and checks, as short items.
fn side_metrics(side: &SideResult, diff: &WordDiff, theme: &Theme) -> Vec<Span<'static>> {
    let text = Style::default().fg(theme.text);
    let ok = Style::default().fg(theme.ok);
    let bad = Style::default().fg(theme.error);
    let flag = |good: bool| if good { ok } else { bad };
    let mut items = vec![
        Span::styled(format!("ROUGE-L {:.3}", side.rouge_l), text),
        Span::styled(format!("F1 {:.3}", side.f1), text),
        Span::styled(
            format!("EM {}", if side.exact_match { "yes" } else { "no" }),
            if side.exact_match { ok } else { theme.dimmed() },
        ),
    ];
    if let Some(loss) = side.loss {
        items.push(Span::styled(format!("loss {loss:.3}"), text));
    }
    if let (Some(label), Some(correct)) = (&side.predicted_label, side.label_correct) {
        items.push(Span::styled(format!("label {label}"), flag(correct)));
    }
    if let Some(code) = &side.code {
        items.push(if code.parsed {
            Span::styled("parses", ok)
        } else {
            Span::styled("does not parse", bad)
        });
        let errors = code.syntax_errors.len();
        items.push(Span::styled(
            format!("syntax errors {errors}"),
            if errors == 0 { text } else { bad },
        ));
        items.push(Span::styled(format!("coverage {:.2}", code.coverage), text));
        let invented = code.invented_packages.len();
        items.push(Span::styled(
            match invented {
                0 => "invented imports 0".to_string(),
                _ => format!("invented imports {}", code.invented_packages.join(",")),
            },
            if invented == 0 { text } else { bad },
        ));
        items.push(match &code.tests {
            Some(t) => {
                let ran = t.passed + t.failed + t.errors;
                Span::styled(
                    format!("tests {}/{ran}", t.passed),
                    flag(ran > 0 && t.passed == ran && !t.timed_out),
                )
            }
            None => Span::styled("tests not run", theme.dimmed()),
        });
    }
    if side.stop == "max_tokens" {
        items.push(Span::styled(
            "hit max tokens",
            Style::default().fg(theme.warning),
        ));
    }
    let (shared, all) = diff.answer_shared();
    let approx = if diff.approximate { "≈" } else { "" };
    items.push(Span::styled(
        format!("{approx}{shared}/{all} words in ref"),
        theme.dimmed(),
    ));
    items
}

/// Short items laid out in lines of `width`, two spaces apart.
fn flow(items: &[Span<'static>], width: usize) -> Vec<Line<'static>> {
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut current: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for item in items {
        let w = item.width();
        if !current.is_empty() && used + 2 + w > width {
            lines.push(Line::from(std::mem::take(&mut current)));
            used = 0;
        }
        if !current.is_empty() {
            current.push(Span::raw("  "));
            used += 2;
        }
        current.push(item.clone());
        used += w;
    }
    if !current.is_empty() {
        lines.push(Line::from(current));
    }
    lines
}

/// One style per character of `text`: `shared` for the words marked shared,
/// `other` for the rest, `plain` between words.
fn char_styles(
    text: &str,
    words: &[(Range<usize>, bool)],
    shared: Style,
    other: Style,
) -> Vec<Style> {
    let mut styles = Vec::with_capacity(text.len());
    let mut word = words.iter().peekable();
    for (at, _) in text.char_indices() {
        while word.peek().is_some_and(|(r, _)| r.end <= at) {
            word.next();
        }
        styles.push(match word.peek() {
            Some((r, is_shared)) if r.contains(&at) => {
                if *is_shared {
                    shared
                } else {
                    other
                }
            }
            _ => shared,
        });
    }
    styles
}

/// `text` wrapped like the chat columns, each character in its style.
/// Wrapping only drops whitespace (line breaks and the spaces lines break
/// at), so walking both in step pairs each shown character with its own.
fn styled_wrap(text: &str, styles: &[Style], width: usize, plain: Style) -> Vec<Line<'static>> {
    let source: Vec<(char, Style)> = text.chars().zip(styles.iter().copied()).collect();
    let mut at = 0;
    wrap(text, width)
        .into_iter()
        .map(|line| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut run = String::new();
            let mut run_style = plain;
            for ch in line.chars() {
                while source
                    .get(at)
                    .is_some_and(|(c, _)| *c != ch && c.is_whitespace())
                {
                    at += 1;
                }
                let style = match source.get(at) {
                    Some((c, style)) if *c == ch => {
                        at += 1;
                        *style
                    }
                    _ => plain,
                };
                if style != run_style && !run.is_empty() {
                    spans.push(Span::styled(std::mem::take(&mut run), run_style));
                }
                run_style = style;
                run.push(ch);
            }
            if !run.is_empty() {
                spans.push(Span::styled(run, run_style));
            }
            Line::from(spans)
        })
        .collect()
}
