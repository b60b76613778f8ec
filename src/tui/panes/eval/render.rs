//! Drawing the pane from `&EvalPane`: the results files and the aggregate
//! figures on top, the samples on the left, and the selected sample's
//! base | adapter | reference columns (see `columns`). What was drawn
//! where is noted in `pane.drawn` for the mouse and paging.

use super::columns;
use super::state::{Loaded, ResultsFile};
use super::{Drawn, EvalPane, Focus};
use crate::eval::summary::Aggregate;
use crate::tui::panes::chat::wrap::wrap;
use crate::tui::panes::{is_narrow, split_two};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

pub fn render(pane: &EvalPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let mut drawn = Drawn::default();
    if pane.scan.files.is_empty() && pane.loaded.is_none() {
        render_howto(pane, frame, area, theme);
        pane.drawn.set(drawn);
        return;
    }
    let rows = Layout::vertical([Constraint::Length(6), Constraint::Min(6)]).split(area);
    // Narrow, the files give the summary's figures room.
    let files_width = if is_narrow(area) { 24 } else { 44 };
    let top =
        Layout::horizontal([Constraint::Length(files_width), Constraint::Min(20)]).split(rows[0]);
    drawn.results = render_files(pane, frame, top[0], theme);
    render_summary(pane, frame, top[1], theme);
    let bottom = split_two(
        rows[1],
        [Constraint::Length(32), Constraint::Min(24)],
        [Constraint::Percentage(35), Constraint::Min(6)],
    );
    drawn.samples = render_samples(pane, frame, bottom[0], theme);
    drawn.columns = bottom[1];
    (drawn.text_lines, drawn.text_height) = columns::render(pane, frame, bottom[1], theme);
    pane.drawn.set(drawn);
}

pub(super) fn block<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(title)
}

pub(super) fn title_style(focused: bool, theme: &Theme) -> Style {
    if focused {
        theme.title()
    } else {
        Style::default().fg(theme.text)
    }
}

/// Lines of dimmed, wrapped prose.
pub(super) fn note(text: &str, width: usize, style: Style) -> Vec<Line<'static>> {
    wrap(text, width)
        .into_iter()
        .map(|l| Line::styled(l, style))
        .collect()
}

fn render_howto(pane: &EvalPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let outer = block(Span::styled(" Eval ", theme.title()), false, theme);
    let inner = outer.inner(area).inner(ratatui::layout::Margin::new(1, 0));
    frame.render_widget(outer, area);
    let width = inner.width as usize;
    let runs = pane.runs_dir.display().to_string();
    let model = pane
        .model
        .as_ref()
        .map_or("<model>".to_string(), |m| m.name.clone());
    let adapter = pane
        .model
        .as_ref()
        .and_then(|m| m.adapter.clone())
        .or_else(|| pane.scan.newest_adapter.clone())
        .unwrap_or_else(|| pane.runs_dir.join("<run>").join("adapter"));
    let command = format!(
        "tunebench eval --model {model} --adapter {} --data <held-out data.jsonl> --generate",
        adapter.display()
    );
    let text = Style::default().fg(theme.text);
    let mut lines = vec![
        Line::styled(
            format!("No evaluation results in {runs}/ yet."),
            theme.title(),
        ),
        Line::raw(""),
    ];
    lines.extend(note(
        "This tab compares the base model with your adapter on a held-out dataset: every prompt answered by both, each answer scored against the reference answer, samples sorted by how much the adapter changed their score. Make the results in a shell:",
        width,
        text,
    ));
    lines.push(Line::raw(""));
    lines.extend(note(
        &format!("  {command}"),
        width,
        Style::default()
            .fg(theme.accent)
            .add_modifier(Modifier::BOLD),
    ));
    lines.push(Line::raw(""));
    lines.extend(note(
        &format!(
            "It writes eval-results.jsonl (and eval-report.md) beside the adapter, in {runs}/<run>/, and they appear here within two seconds. Add --limit 20 for a quick first look, --exec to run the tests of generated multi-file projects; with --out, choose a folder inside {runs}/ to see the results here."
        ),
        width,
        theme.dimmed(),
    ));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// A path inside the runs folder relative to it, any other as is.
fn shown(pane: &EvalPane, path: &std::path::Path) -> String {
    path.strip_prefix(&pane.runs_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// Draws the results files; returns the rows' area.
fn render_files(pane: &EvalPane, frame: &mut Frame, area: Rect, theme: &Theme) -> Rect {
    let focused = pane.focus == Focus::Results;
    let title = Span::styled(" Results files ", title_style(focused, theme));
    let outer = block(title, focused, theme)
        .title_bottom(Line::styled(" Enter opens ", theme.dimmed()).right_aligned());
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let height = inner.height as usize;
    let width = inner.width as usize;
    let first = pane.files.first(height, pane.scan.files.len());
    let lines: Vec<Line> = pane
        .scan
        .files
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, file)| file_line(pane, file, i == pane.files.selected, width, theme))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    inner
}

fn file_line(
    pane: &EvalPane,
    file: &ResultsFile,
    selected: bool,
    width: usize,
    theme: &Theme,
) -> Line<'static> {
    let loading = pane.loading.as_ref().is_some_and(|(_, p)| *p == file.path);
    let open = pane.loaded.as_ref().filter(|l| l.path == file.path);
    let (mark, status) = match open {
        _ if loading => (
            "… ",
            Span::styled(" loading", Style::default().fg(theme.info)),
        ),
        Some(l) if l.modified != Some(file.modified) => (
            "● ",
            Span::styled(" changed, r reloads", Style::default().fg(theme.warning)),
        ),
        Some(_) => ("● ", Span::raw("")),
        None => ("  ", Span::raw("")),
    };
    let size = size(file.bytes);
    let room = width.saturating_sub(2 + size.len() + 1 + status.width());
    let label = crate::eval::results::excerpt(&file.label, room.saturating_sub(1));
    let pad = room.saturating_sub(Span::raw(label.as_str()).width());
    let line = Line::from(vec![
        Span::styled(mark, Style::default().fg(theme.accent)),
        Span::raw(format!("{label}{} ", " ".repeat(pad))),
        Span::styled(size, theme.dimmed()),
        status,
    ]);
    if selected {
        line.style(theme.selected())
    } else {
        line
    }
}

/// How a figure reads, and whether a higher value is better.
struct Figure {
    name: &'static str,
    value: fn(&Aggregate) -> Option<f64>,
    decimals: usize,
    higher_is_better: bool,
}

const FIGURES: [Figure; 6] = [
    Figure {
        name: "ROUGE-L",
        value: |a| Some(a.rouge_l),
        decimals: 3,
        higher_is_better: true,
    },
    Figure {
        name: "BLEU",
        value: |a| Some(a.bleu.score),
        decimals: 2,
        higher_is_better: true,
    },
    Figure {
        name: "code",
        value: |a| a.code.as_ref().map(|c| c.score),
        decimals: 3,
        higher_is_better: true,
    },
    Figure {
        name: "F1",
        value: |a| Some(a.f1),
        decimals: 3,
        higher_is_better: true,
    },
    Figure {
        name: "EM",
        value: |a| Some(a.exact_match),
        decimals: 3,
        higher_is_better: true,
    },
    Figure {
        name: "loss",
        value: |a| (a.tokens > 0).then_some(a.loss),
        decimals: 4,
        higher_is_better: false,
    },
];

/// The colour of a change: better, worse or none.
pub(super) fn change_style(delta: f64, higher_is_better: bool, theme: &Theme) -> Style {
    let better = if higher_is_better {
        delta > 0.0
    } else {
        delta < 0.0
    };
    if delta == 0.0 {
        theme.dimmed()
    } else if better {
        Style::default().fg(theme.ok)
    } else {
        Style::default().fg(theme.error)
    }
}

fn render_summary(pane: &EvalPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let Some(loaded) = &pane.loaded else {
        let outer = block(
            Span::styled(" Summary ", Style::default().fg(theme.text)),
            false,
            theme,
        );
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let lines = match (&pane.loading, &pane.error) {
            (Some((_, path)), _) => note(
                &format!("Reading {}…", shown(pane, path)),
                inner.width as usize,
                Style::default().fg(theme.info),
            ),
            (None, Some(error)) => note(
                error,
                inner.width as usize,
                Style::default().fg(theme.error),
            ),
            (None, None) => note(
                "Choose a results file and press Enter (or click it twice) to see base against adapter.",
                inner.width as usize,
                theme.dimmed(),
            ),
        };
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    };
    let title = format!(
        " Summary · {} · {} samples ",
        shown(pane, &loaded.path),
        loaded.samples.len()
    );
    let mut outer = block(
        Span::styled(title, Style::default().fg(theme.text)),
        false,
        theme,
    );
    if loaded.adapter.is_some() {
        let (better, worse, same) = loaded.tally();
        outer = outer.title_bottom(
            Line::from(vec![
                Span::styled(format!(" {better} better"), Style::default().fg(theme.ok)),
                Span::styled(" · ", theme.dimmed()),
                Span::styled(format!("{worse} worse"), Style::default().fg(theme.error)),
                Span::styled(format!(" · {same} same "), theme.dimmed()),
            ])
            .right_aligned(),
        );
    }
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    frame.render_widget(Paragraph::new(summary_lines(loaded, theme)), inner);
}

fn summary_lines(loaded: &Loaded, theme: &Theme) -> Vec<Line<'static>> {
    let figures: Vec<&Figure> = FIGURES
        .iter()
        .filter(|f| (f.value)(&loaded.base).is_some())
        .collect();
    let cell = |text: String| format!("{text:>9}");
    let mut header = vec![Span::raw(format!("{:<9}", ""))];
    header.extend(
        figures
            .iter()
            .map(|f| Span::styled(cell(f.name.to_string()), theme.dimmed())),
    );
    let mut lines = vec![Line::from(header)];
    let sides = [
        ("base", Some(&loaded.base)),
        ("adapter", loaded.adapter.as_ref()),
    ];
    for (name, side) in sides {
        let mut spans = vec![Span::styled(format!("{name:<9}"), theme.dimmed())];
        match side {
            Some(aggregate) => spans.extend(figures.iter().map(|f| {
                let text =
                    (f.value)(aggregate).map_or("-".to_string(), |v| format!("{v:.*}", f.decimals));
                Span::styled(cell(text), Style::default().fg(theme.text))
            })),
            None => spans.push(Span::styled(
                "  none: the evaluation ran without --adapter",
                theme.dimmed(),
            )),
        }
        lines.push(Line::from(spans));
    }
    if let Some(adapter) = &loaded.adapter {
        let mut spans = vec![Span::styled(format!("{:<9}", "delta"), theme.dimmed())];
        spans.extend(
            figures
                .iter()
                .map(|f| match ((f.value)(&loaded.base), (f.value)(adapter)) {
                    (Some(b), Some(a)) => Span::styled(
                        cell(format!("{:+.*}", f.decimals, a - b)),
                        change_style(a - b, f.higher_is_better, theme),
                    ),
                    _ => Span::raw(cell(String::new())),
                }),
        );
        lines.push(Line::from(spans));
    }
    lines
}

pub(super) use crate::eval::results::request_words;

/// Draws the samples list; returns the rows' area.
fn render_samples(pane: &EvalPane, frame: &mut Frame, area: Rect, theme: &Theme) -> Rect {
    let focused = pane.focus == Focus::Samples;
    let has_adapter = pane.loaded.as_ref().is_some_and(|l| l.adapter.is_some());
    let title = if pane.loaded.is_none() {
        " Samples ".to_string()
    } else if has_adapter {
        format!(" Samples · {} ", pane.order.label())
    } else {
        match pane.order {
            super::state::Order::WorstFirst => " Samples · lowest score first ".to_string(),
            super::state::Order::BestFirst => " Samples · highest score first ".to_string(),
        }
    };
    let outer = block(
        Span::styled(title, title_style(focused, theme)),
        focused,
        theme,
    )
    .title_bottom(Line::styled(" o order ", theme.dimmed()).right_aligned());
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let Some(loaded) = &pane.loaded else {
        return inner;
    };
    let height = inner.height as usize;
    let first = pane.samples.first(height, pane.rows.len());
    let lines: Vec<Line> = pane
        .rows
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(row, &i)| {
            let s = &loaded.samples[i];
            let (figure, style) = match (has_adapter, s.score_delta) {
                (true, Some(d)) => (format!("{d:+.3}"), change_style(d, true, theme)),
                (true, None) => ("–".to_string(), theme.dimmed()),
                (false, _) => (
                    format!("{:.3}", s.base.score),
                    Style::default().fg(theme.text),
                ),
            };
            let line = Line::from(vec![
                // Numbered from 1, as the Data tab numbers its samples.
                Span::styled(format!("{:>4} ", s.index + 1), theme.dimmed()),
                Span::styled(format!("{figure:>6} "), style),
                Span::styled(request_words(&s.prompt), Style::default().fg(theme.text)),
            ]);
            if row == pane.samples.selected {
                line.style(theme.selected())
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    inner
}
