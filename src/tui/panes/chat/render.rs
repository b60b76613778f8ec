//! Drawing the pane from `&ChatPane`: a settings line, the columns (one
//! renderer for all three), the prompt, and any popup on top. What was drawn
//! where is noted in `pane.drawn` for the mouse and for scrolling.

use super::settings::Field;
use super::state::{Column, Side, Status, Viewport};
use super::wrap::wrap;
use super::{ChatPane, Drawn, Focus, Overlay};
use crate::data::{Message, Role};
use crate::model::generate::StopReason;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use std::path::Path;

pub fn render(pane: &ChatPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(pane.input.rows() + 2),
    ])
    .split(area);
    render_info(pane, frame, rows[0], theme);
    let mut drawn = Drawn::default();
    let sides = pane.visible_sides();
    let share = Constraint::Ratio(1, sides.len() as u32);
    // Narrow: base above adapter (above the reference).
    let rects = if crate::tui::panes::is_narrow(area) {
        Layout::vertical(vec![share; sides.len()]).split(rows[1])
    } else {
        Layout::horizontal(vec![share; sides.len()]).split(rows[1])
    };
    for (&side, &rect) in sides.iter().zip(rects.iter()) {
        drawn.columns[side.index()] = rect;
        drawn.views[side.index()] = render_column(pane, side, frame, rect, theme);
    }
    render_input(pane, frame, rows[2], theme);
    drawn.input = rows[2];
    match &pane.overlay {
        Some(Overlay::Picker(_)) => {
            (drawn.picker_rows, drawn.picker_first) = render_picker(pane, frame, area, theme)
        }
        Some(Overlay::Settings(_)) => render_settings(pane, frame, area, theme),
        Some(Overlay::Editor(_)) => render_editor(pane, frame, area, theme),
        None => {}
    }
    pane.drawn.set(drawn);
}

/// The last two parts of an adapter's path (`run/adapter`, `run/step-40`).
pub fn adapter_label(adapter: Option<&Path>) -> String {
    let Some(path) = adapter else {
        return "no adapter".to_string();
    };
    let parts: Vec<String> = path
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [step, checkpoints, run, ..] if checkpoints == "checkpoints" => format!("{run}/{step}"),
        [last, run, ..] => format!("{run}/{last}"),
        [last] => last.clone(),
        [] => path.display().to_string(),
    }
}

fn render_info(pane: &ChatPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let sep = Span::styled(" │ ", theme.dimmed());
    let model = match &pane.model {
        Some(info) => {
            let name = Path::new(&info.name)
                .file_name()
                .map_or(info.name.clone(), |n| n.to_string_lossy().into_owned());
            format!("{name} + {}", adapter_label(info.adapter.as_deref()))
        }
        None => match &pane.load_error {
            Some(error) => {
                let failed = format!("model failed to load: {error} · m: load another model");
                let line = Line::styled(failed, Style::default().fg(theme.error));
                frame.render_widget(Paragraph::new(line), area);
                return;
            }
            None => "model loading…".to_string(),
        },
    };
    let mut spans = vec![
        Span::styled(model, Style::default().fg(theme.text)),
        sep.clone(),
        Span::styled(pane.settings.summary(), theme.dimmed()),
    ];
    if let Some(source) = &pane.chat.source {
        spans.push(sep);
        spans.push(Span::styled(
            format!("sample {source}"),
            Style::default().fg(theme.info),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn column_title(pane: &ChatPane, side: Side) -> String {
    match side {
        Side::Base => " Base ".to_string(),
        Side::Adapter if pane.switching => " Adapter · loading… ".to_string(),
        Side::Adapter => {
            let adapter = pane.model.as_ref().and_then(|m| m.adapter.as_deref());
            format!(" Adapter · {} ", adapter_label(adapter))
        }
        Side::Reference => match &pane.chat.source {
            Some(source) => format!(" Reference · {source} "),
            None => " Reference ".to_string(),
        },
    }
}

fn status_span(column: &Column, theme: &Theme) -> Span<'static> {
    match &column.status {
        Status::Idle => Span::raw(""),
        Status::Streaming => Span::styled(" generating… ", Style::default().fg(theme.info)),
        Status::Done(done) => {
            let how = match done.stop {
                StopReason::Cancelled => " · stopped",
                StopReason::MaxTokens => " · hit max tokens",
                StopReason::ContextFull => " · model context full",
                StopReason::EndOfTurn | StopReason::StopString => "",
            };
            Span::styled(
                format!(
                    " {} tokens · {:.1} tok/s{how} ",
                    done.tokens, done.tokens_per_s
                ),
                Style::default().fg(theme.ok),
            )
        }
        Status::Failed(message) => Span::styled(
            format!(" failed: {message} "),
            Style::default().fg(theme.error),
        ),
    }
}

/// Draws one column; returns how many lines it has and shows.
fn render_column(
    pane: &ChatPane,
    side: Side,
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
) -> Viewport {
    let focused = pane.focus == Focus::Column(side);
    let column = pane.chat.column(side);
    let title_style = if focused {
        theme.title()
    } else {
        Style::default().fg(theme.text)
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(column_title(pane, side), title_style))
        .title_bottom(Line::from(status_span(column, theme)).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = column_lines(pane, side, inner.width as usize, theme);
    let height = inner.height as usize;
    let max_top = lines.len().saturating_sub(height);
    let top = column.scroll.unwrap_or(max_top).min(max_top);
    let shown: Vec<Line> = lines.iter().skip(top).take(height).cloned().collect();
    frame.render_widget(Paragraph::new(shown), inner);
    Viewport {
        total: lines.len(),
        height,
    }
}

/// Every line of a column at `width`: the transcript, or a note saying why
/// it is empty.
fn column_lines(pane: &ChatPane, side: Side, width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let dim = theme.dimmed();
    let note = |text: &str| -> Vec<Line<'static>> {
        wrap(text, width)
            .into_iter()
            .map(|l| Line::styled(l, dim))
            .collect()
    };
    if side == Side::Adapter && !pane.has_adapter() && !pane.switching {
        return note(if pane.model.is_some() {
            "No adapter is loaded, so only the base model answers.\n\nPress a (outside the prompt) to choose an adapter or a checkpoint from the runs folder."
        } else if pane.load_error.is_some() {
            "No model is loaded (see above): press m to load another."
        } else {
            "The model is loading…"
        });
    }
    let chat = &pane.chat;
    let column = chat.column(side);
    let mut lines = Vec::new();
    if let Some(system) = &chat.system {
        push_message(&mut lines, "system", theme.system, system, width, theme);
    }
    for message in &chat.preamble {
        let (label, color) = speaker(message, "assistant (sample)", theme);
        push_message(&mut lines, label, color, &message.content, width, theme);
    }
    let own = match side {
        Side::Base => "base",
        Side::Adapter => "adapter",
        Side::Reference => "reference",
    };
    for message in &column.turns {
        let (label, color) = speaker(message, own, theme);
        push_message(&mut lines, label, color, &message.content, width, theme);
    }
    if let Some(pending) = &column.pending {
        push_message(
            &mut lines,
            own,
            theme.assistant,
            &format!("{}▌", pending.text),
            width,
            theme,
        );
    }
    if lines.is_empty() {
        return note(match side {
            Side::Base => {
                "Answers of the base model appear here. Press i to type a prompt, u to try the sample selected in the Data tab."
            }
            Side::Adapter => "Answers with the adapter appear here, beside the base model's.",
            Side::Reference => "",
        });
    }
    lines
}

fn speaker(
    message: &Message,
    assistant: &'static str,
    theme: &Theme,
) -> (&'static str, ratatui::style::Color) {
    match message.role {
        Role::System => ("system", theme.system),
        Role::User => ("you", theme.user),
        Role::Assistant => (assistant, theme.assistant),
        Role::Tool => ("tool", theme.system),
    }
}

fn push_message(
    lines: &mut Vec<Line<'static>>,
    label: &str,
    color: ratatui::style::Color,
    text: &str,
    width: usize,
    theme: &Theme,
) {
    if !lines.is_empty() {
        lines.push(Line::raw(""));
    }
    lines.push(Line::styled(
        label.to_string(),
        Style::default().fg(color).add_modifier(Modifier::BOLD),
    ));
    lines.extend(body_lines(text, width, theme));
}

/// Blank lines in a row shown as they are; a longer run becomes one marker.
const MAX_BLANK_LINES: usize = 2;

/// A message's text wrapped to `width`, each run of more than
/// `MAX_BLANK_LINES` blank lines drawn as one dim `⋯ N blank lines` (a
/// rambling model's hundreds of newlines would push everything out of view).
/// Only the drawing changes: the text itself stays as it was.
fn body_lines(text: &str, width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let body = Style::default().fg(theme.text);
    let source: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let push_text = |lines: &[&str], out: &mut Vec<Line<'static>>| {
        if !lines.is_empty() {
            let wrapped = wrap(&lines.join("\n"), width);
            out.extend(wrapped.into_iter().map(|l| Line::styled(l, body)));
        }
    };
    // The first source line not drawn yet, and the one looked at.
    let (mut start, mut at) = (0, 0);
    while at < source.len() {
        if !source[at].trim().is_empty() {
            at += 1;
            continue;
        }
        let end = source[at..]
            .iter()
            .position(|l| !l.trim().is_empty())
            .map_or(source.len(), |n| at + n);
        if end - at > MAX_BLANK_LINES {
            push_text(&source[start..at], &mut out);
            out.push(Line::styled(
                format!("⋯ {} blank lines", end - at),
                theme.dimmed(),
            ));
            start = end;
        }
        at = end;
    }
    push_text(&source[start..], &mut out);
    out
}

fn render_input(pane: &ChatPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let focused = pane.focus == Focus::Input;
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(
            " Prompt ",
            if focused {
                theme.title()
            } else {
                Style::default().fg(theme.text)
            },
        ));
    if pane.chat.is_generating() {
        block = block.title_bottom(
            Line::styled(" Esc stops ", Style::default().fg(theme.warning)).right_aligned(),
        );
    } else if !focused {
        block = block.title_bottom(Line::styled(" i to type ", theme.dimmed()).right_aligned());
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(&pane.input.area, inner);
}

fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

fn popup_block<'a>(title: String, footer: &'a str, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(Span::styled(title, theme.title()))
        .title_bottom(Line::styled(footer, theme.dimmed()).right_aligned())
        .style(theme.base())
}

/// Returns the rows' area and the index of the choice on the first row.
fn render_picker(pane: &ChatPane, frame: &mut Frame, area: Rect, theme: &Theme) -> (Rect, usize) {
    let Some(Overlay::Picker(picker)) = &pane.overlay else {
        return (Rect::default(), 0);
    };
    let rect = popup(area, 72, picker.choices.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = popup_block(
        format!(" Adapter from {} ", picker.runs.display()),
        " Enter choose · Esc close ",
        theme,
    );
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let rows = inner.height.max(1) as usize;
    let first = picker.selected.saturating_sub(rows - 1);
    let active = pane.model.as_ref().and_then(|m| m.adapter.as_deref());
    let lines: Vec<Line> = picker
        .choices
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, choice)| {
            let mark = if choice.path.as_deref() == active && pane.model.is_some() {
                "● "
            } else {
                "  "
            };
            let style = if i == picker.selected {
                theme.selected()
            } else {
                Style::default().fg(theme.text)
            };
            Line::styled(format!("{mark}{}", choice.label), style)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    (inner, first)
}

fn render_settings(pane: &ChatPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let Some(Overlay::Settings(editor)) = &pane.overlay else {
        return;
    };
    let rect = popup(area, 64, Field::ALL.len() as u16 + 4);
    frame.render_widget(Clear, rect);
    let block = popup_block(
        " Sampling ".to_string(),
        " ↑↓ field · ←→ adjust · type or Enter to edit · Esc close ",
        theme,
    );
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let mut lines: Vec<Line> = Field::ALL
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let selected = i == editor.selected;
            let value = match (&editor.editing, selected) {
                (Some(text), true) => format!("{text}▏"),
                _ => field.get(&pane.settings),
            };
            let style = if selected {
                theme.selected()
            } else {
                Style::default().fg(theme.text)
            };
            Line::styled(format!(" {:<32}{value:>26} ", field.label()), style)
        })
        .collect();
    lines.push(Line::raw(""));
    if let Some(error) = &editor.error {
        lines.push(Line::styled(
            format!(" {error}"),
            Style::default().fg(theme.error),
        ));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_editor(pane: &ChatPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let Some(Overlay::Editor(editor)) = &pane.overlay else {
        return;
    };
    let rect = popup(area, area.width * 9 / 10, area.height * 8 / 10);
    frame.render_widget(Clear, rect);
    let block = popup_block(
        format!(
            " Edit the {} answer · {} ",
            editor.side.title().to_lowercase(),
            editor.esc.hint()
        ),
        " Ctrl+s keeps the answer and adds the exchange to the dataset ",
        theme,
    );
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    frame.render_widget(&editor.area, inner);
}
