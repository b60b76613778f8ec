//! Drawing the Train pane from `&TrainPane`: the form and its estimate on
//! the left; the runs, the attached run's progress and its charts on the right.

use super::charts::{self, ChartView};
use super::estimate::{self, Speed};
use super::fmt;
use super::form::{FIELDS, Kind};
use super::runs::{Run, Status};
use super::{Areas, Focus, TrainPane};
use crate::tui::panes::{is_narrow, split_two};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Wrap};

const LEFT_WIDTH: u16 = 40;
const LABEL_WIDTH: usize = 18;

pub fn render(pane: &TrainPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    // Narrow: the form beside its estimate on top, the runs and charts
    // below.
    let narrow = is_narrow(area);
    let [left, right] = split_two(
        area,
        [Constraint::Length(LEFT_WIDTH), Constraint::Min(20)],
        [Constraint::Percentage(50), Constraint::Percentage(50)],
    );
    let [form_area, estimate_area] = if narrow {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(left)
    } else {
        Layout::vertical([Constraint::Max(FIELDS.len() as u16 + 2), Constraint::Min(8)]).areas(left)
    };
    let visible_runs = pane.runs.list.len().clamp(1, 5) as u16;
    let [runs_area, gauge_area, charts_area] = Layout::vertical([
        Constraint::Length(visible_runs + 2),
        Constraint::Length(3),
        Constraint::Min(6),
    ])
    .areas(right);
    let mut areas = Areas::default();
    (areas.form, areas.form_offset) = render_form(pane, frame, form_area, theme);
    render_estimate(pane, frame, estimate_area, theme);
    (areas.runs, areas.runs_offset) = render_runs(pane, frame, runs_area, theme);
    render_gauge(pane, frame, gauge_area, theme);
    areas.charts = charts_area;
    areas.cells = render_charts(pane, frame, charts_area, theme);
    pane.areas.set(areas);
}

fn block<'a>(title: String, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(title, theme.title()))
}

/// The first row to show so that `selected` is visible in `height` rows.
fn offset(selected: usize, height: usize) -> usize {
    selected.saturating_sub(height.saturating_sub(1))
}

/// `text` cut to `width` characters, keeping its end (paths end in the name).
fn tail(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    let keep: String = text.chars().skip(n + 1 - width.max(1)).collect();
    format!("…{keep}")
}

fn render_form(pane: &TrainPane, frame: &mut Frame, area: Rect, theme: &Theme) -> (Rect, usize) {
    let focused = pane.focus == Focus::Form;
    let title = match &pane.form.editor {
        // The hint alone: the form is narrow.
        Some(editor) => format!(" {} ", editor.esc.hint()),
        None => " Run settings ".into(),
    };
    let outer = block(title, focused, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let form = &pane.form;
    let first = offset(form.selected, inner.height as usize);
    let value_width = (inner.width as usize)
        .saturating_sub(LABEL_WIDTH + 1)
        .max(1);
    let lines: Vec<Line> = FIELDS
        .iter()
        .enumerate()
        .skip(first)
        .take(inner.height as usize)
        .map(|(i, field)| {
            let selected = i == form.selected;
            let label = format!(" {:<w$}", field.label, w = LABEL_WIDTH - 1);
            let mut spans = vec![Span::styled(label, theme.dimmed())];
            match (&form.editor, selected) {
                (Some(editor), true) => {
                    let edit = Style::default().fg(theme.text).bg(theme.selection);
                    spans.extend(editor.line.spans(value_width, edit));
                }
                _ => {
                    let text = &form.values[i];
                    let shown = match field.kind {
                        Kind::OptionalNumber if text.is_empty() => "(unset)".to_string(),
                        _ if field.key == "training.max_steps" && text == "0" => {
                            "0 (all epochs)".to_string()
                        }
                        Kind::Choice(_) => format!("‹{text}›"),
                        _ => tail(text, value_width),
                    };
                    spans.push(Span::styled(shown, Style::default().fg(theme.text)));
                }
            }
            let line = Line::from(spans);
            if selected && focused {
                line.style(theme.selected())
            } else if selected {
                line.style(Style::default().bg(theme.selection))
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    (inner, first)
}

fn render_estimate(pane: &TrainPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let dim = theme.dimmed();
    let strong = Style::default().fg(theme.text).add_modifier(Modifier::BOLD);
    let error = Style::default().fg(theme.error);
    let mut lines: Vec<Line> = Vec::new();
    let problem = pane
        .form
        .error
        .clone()
        .or_else(|| pane.form.config.as_ref().err().cloned());
    for line in problem.iter().flat_map(|p| p.lines()) {
        lines.push(Line::styled(format!("✗ {line}"), error));
    }
    lines.push(Line::styled(format!("base: {}", pane.form.source), dim));
    if let Ok(config) = &pane.form.config {
        let measured = pane
            .measured
            .as_ref()
            .filter(|m| m.fingerprint == estimate::fingerprint(config));
        match measured {
            None => lines.push(Line::styled("measuring the model and data…", dim)),
            Some(measured) => {
                match &measured.model {
                    Ok(model) => {
                        let mem = estimate::memory(model, config);
                        let which = if config.model.device == "cuda" {
                            "GPU memory"
                        } else {
                            "memory"
                        };
                        lines.push(Line::from(vec![
                            Span::styled(format!("{which} ≈ {}", fmt::bytes(mem.total())), strong),
                            Span::styled(" (estimate)", dim),
                        ]));
                        lines.push(Line::styled(
                            format!(
                                "  weights {} · LoRA {}",
                                fmt::bytes(mem.weights),
                                fmt::bytes(mem.lora)
                            ),
                            dim,
                        ));
                        lines.push(Line::styled(
                            format!(
                                "  grads+Adam {} · activ. {}",
                                fmt::bytes(mem.optimizer),
                                fmt::bytes(mem.activations + mem.attention)
                            ),
                            dim,
                        ));
                        let auto = match config.training.gradient_checkpointing {
                            None => "auto: ",
                            Some(_) => "",
                        };
                        let on = crate::train::estimate::checkpointing(model, config);
                        lines.push(Line::styled(
                            format!("  checkpointing {auto}{}", if on { "on" } else { "off" }),
                            dim,
                        ));
                        if let Some((peak, run)) = pane.measured_peak(&config.model.name) {
                            lines.push(Line::styled(
                                format!("  measured peak {} in {run}", fmt::bytes(peak)),
                                dim,
                            ));
                        }
                    }
                    Err(e) => lines.push(Line::styled(format!("memory: {e}"), error)),
                }
                match (&measured.model, &measured.data) {
                    (Ok(model), Ok(data)) => {
                        let speed = pane.measured_speed(&config.model.name);
                        let t = estimate::time(data, model, config, speed);
                        lines.push(Line::from(vec![
                            Span::styled(format!("time ≈ {}", fmt::duration(t.seconds)), strong),
                            Span::styled(format!(" · {} steps · {:.1} ep", t.steps, t.epochs), dim),
                        ]));
                        lines.push(Line::styled(
                            format!(
                                "  {} tok at {} tok/s",
                                fmt::count(t.tokens),
                                fmt::count(t.tok_s)
                            ),
                            dim,
                        ));
                        let why = match &t.speed {
                            Speed::Measured { run } => format!("  measured in {run}"),
                            Speed::Assumed {
                                flops_per_token,
                                flops,
                            } => format!(
                                "  guess: {} FLOP/tok at {}FLOP/s",
                                fmt::count(*flops_per_token),
                                fmt::count(*flops)
                            ),
                        };
                        lines.push(Line::styled(why, dim));
                        lines.push(Line::styled(
                            format!(
                                "  {} rows/epoch, {} cut at max len",
                                data.rows, data.truncated
                            ),
                            dim,
                        ));
                    }
                    (_, Err(e)) => lines.push(Line::styled(format!("time: {e}"), error)),
                    _ => {}
                }
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(" Estimate ".into(), false, theme)),
        area,
    );
}

fn status_color(status: Status, theme: &Theme) -> Color {
    match status {
        Status::Running | Status::Starting => theme.info,
        Status::Completed => theme.ok,
        Status::Stopped | Status::Idle => theme.warning,
        Status::Failed | Status::Crashed => theme.error,
    }
}

fn render_runs(pane: &TrainPane, frame: &mut Frame, area: Rect, theme: &Theme) -> (Rect, usize) {
    let focused = pane.focus == Focus::Runs;
    // The folder's name only: a full temporary path would crowd the title.
    let dir = pane.runs.dir.file_name().map_or_else(
        || pane.runs.dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let outer = block(format!(" Runs · {dir}/ "), focused, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    if pane.runs.list.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "no runs yet: s starts one with these settings",
                theme.dimmed(),
            )),
            inner,
        );
        return (inner, 0);
    }
    let attached = pane.attached.as_ref().and_then(|d| pane.runs.find(d));
    let first = offset(attached.unwrap_or(0), inner.height as usize);
    let name_width = (inner.width as usize).saturating_sub(11 + 12 + 17);
    let lines: Vec<Line> = pane
        .runs
        .list
        .iter()
        .enumerate()
        .skip(first)
        .take(inner.height as usize)
        .map(|(i, run)| {
            let m = run.metrics();
            let change = m
                .change_from_base()
                .map_or(String::new(), |c| format!(" {c:+.0}%"));
            let best = m
                .best_eval()
                .map_or(String::new(), |(_, l)| format!("best {l:.3}{change}"));
            let line = Line::from(vec![
                Span::styled(
                    format!(" {:<10}", run.status.label()),
                    Style::default().fg(status_color(run.status, theme)),
                ),
                Span::raw(format!(
                    "{:<w$}",
                    tail(&run.name, name_width),
                    w = name_width
                )),
                Span::raw(format!("{:>11} ", run.steps_label())),
                Span::styled(format!("{best:>16}"), Style::default().fg(theme.chart_eval)),
            ]);
            match (Some(i) == attached, focused) {
                (true, true) => line.style(theme.selected()),
                (true, false) => line.style(Style::default().bg(theme.selection)),
                _ => line,
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    (inner, first)
}

fn progress_label(run: &Run) -> (f64, String) {
    let m = run.metrics();
    let Some(last) = m.last else {
        return (0.0, run.status.label().to_string());
    };
    let total = m.total_steps();
    let ratio = if total > 0 {
        (last.step as f64 / total as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let epochs = if last.step > 0 {
        total as f64 * last.epoch / last.step as f64
    } else {
        0.0
    };
    // One decimal on both sides: a run stopped by max_steps mid-epoch would
    // otherwise read "epoch 1.5/1".
    let mut label = format!(
        "epoch {:.1}/{:.1} · step {}/{}",
        last.epoch, epochs, last.step, total
    );
    match (run.status, m.eta_s()) {
        (Status::Running, Some(eta)) => label.push_str(&format!(" · ETA {}", fmt::duration(eta))),
        (Status::Running, None) => {}
        (status, _) => label.push_str(&format!(" · {}", status.label())),
    }
    (ratio, label)
}

fn render_gauge(pane: &TrainPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let Some(run) = pane.attached_run() else {
        frame.render_widget(
            Paragraph::new(Span::styled("no run attached", theme.dimmed())).block(block(
                " Progress ".into(),
                false,
                theme,
            )),
            area,
        );
        return;
    };
    let (ratio, label) = progress_label(run);
    let color = status_color(run.status, theme);
    let gauge = Gauge::default()
        .block(block(format!(" {} ", run.name), false, theme))
        .gauge_style(Style::default().fg(color).bg(theme.background))
        .ratio(ratio)
        .label(Span::styled(
            label,
            Style::default().fg(theme.text).add_modifier(Modifier::BOLD),
        ))
        .use_unicode(true);
    frame.render_widget(gauge, area);
}

fn render_charts(pane: &TrainPane, frame: &mut Frame, area: Rect, theme: &Theme) -> [Rect; 6] {
    let metrics = pane.attached_run().map(Run::metrics);
    match pane.chart {
        ChartView::One(kind) => {
            charts::draw(frame, area, kind, metrics, theme, true);
            [Rect::default(); 6]
        }
        ChartView::Grid => {
            let cells = charts::grid(area);
            for (kind, cell) in charts::ChartKind::ALL.iter().zip(cells) {
                charts::draw(frame, cell, *kind, metrics, theme, false);
            }
            render_details(pane, frame, cells[5], theme);
            cells
        }
    }
}

/// The sixth grid cell: what the attached run is.
fn render_details(pane: &TrainPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let dim = theme.dimmed();
    let mut lines = Vec::new();
    if let Some(run) = pane.attached_run() {
        let m = run.metrics();
        lines.push(Line::styled(
            run.status.label().to_string(),
            Style::default().fg(status_color(run.status, theme)),
        ));
        if let Some(start) = &m.start {
            let dataset = std::path::Path::new(&start.dataset)
                .file_name()
                .map_or(start.dataset.clone(), |n| n.to_string_lossy().into_owned());
            lines.push(Line::styled(
                format!("model {}", tail(&start.model, 20)),
                dim,
            ));
            lines.push(Line::styled(format!("data {dataset}"), dim));
            lines.push(Line::styled(
                format!(
                    "samples {}+{} eval",
                    start.train_samples, start.eval_samples
                ),
                dim,
            ));
            if let Some(pid) = start.pid {
                lines.push(Line::styled(format!("pid {pid}"), dim));
            }
        }
        if let Some(base) = m.base_eval() {
            lines.push(Line::styled(
                format!("base eval {base:.3}"),
                Style::default().fg(theme.chart_eval),
            ));
        }
        if let Some((step, loss)) = m.best_eval() {
            let change = m
                .change_from_base()
                .map_or(String::new(), |c| format!(" ({c:+.1}%)"));
            lines.push(Line::styled(
                format!("best eval {loss:.3} @{step}{change}"),
                Style::default().fg(theme.chart_eval),
            ));
        }
        lines.push(Line::styled(format!("checkpoints {}", m.checkpoints), dim));
        let skipped = m.notice();
        // The CLI's advice names its flag; here the key does the same.
        let end = m
            .end
            .as_ref()
            .and_then(|e| e.message.as_ref())
            .map(|message| message.replace("resume with --resume", "press r to resume"));
        for message in [end, skipped].into_iter().flatten() {
            lines.push(Line::styled(message, Style::default().fg(theme.warning)));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(block(" run ".into(), false, theme)),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_tails() {
        assert_eq!(offset(3, 10), 0);
        assert_eq!(offset(12, 10), 3);
        assert_eq!(tail("abcdef", 4), "…def");
        assert_eq!(tail("abc", 4), "abc");
    }
}
