//! Drawing the pane from `&DataPane`: the sample list, the selected sample
//! (fields by role, files and code, the token view, or the editor) and the
//! findings. Nothing here changes state; where things were drawn is kept in
//! a `Cell` for the mouse.

use super::bounds;
use super::list::{self, RowSummary};
use super::sample_lines::{field_lines, shown_part};
use super::sample_view::{Item, Selected, field_lines_total, wrap_window, wrapped_len};
use super::state::{Areas, DataPane, Focus, PromptKind};
use super::tokens;
use crate::data::finding::{Finding, Severity};
use crate::data::sample::Role;
use crate::tui::panes::line_edit::prompt_line;
use crate::tui::panes::{is_narrow, split_two};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// Inline findings shown above the sample at most.
const INLINE_FINDINGS: usize = 3;
const TREE_WIDTH: u16 = 30;

pub fn render(pane: &DataPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    // With nothing to list, one line says so.
    let findings_height = if pane.findings.len() == 0 {
        3.min(area.height / 3)
    } else if area.height >= 20 && !is_narrow(area) {
        8
    } else {
        // Stacked, the list and the sample need the rows more.
        area.height / 4
    };
    let [main, bottom] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(findings_height)]).areas(area);
    let [left, right] = split_two(
        main,
        [Constraint::Percentage(38), Constraint::Percentage(62)],
        [Constraint::Percentage(35), Constraint::Percentage(65)],
    );
    let mut areas = Areas {
        list: draw_list(pane, frame, left, theme),
        findings: draw_findings(pane, frame, bottom, theme),
        ..Areas::default()
    };
    draw_sample(pane, frame, right, theme, &mut areas);
    pane.areas.set(areas);
    if let Some(ask) = &pane.watch.ask {
        pane.draw_ask(ask, frame, area, theme);
    }
}

fn block(title: String, focused: bool, theme: &Theme) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(title, theme.title()))
}

pub(super) fn row_style(selected: bool, focused: bool, theme: &Theme) -> Style {
    match (selected, focused) {
        (true, true) => theme.selected(),
        (true, false) => Style::default().bg(theme.selection),
        _ => Style::default(),
    }
}

fn severity_mark(severity: Option<Severity>, theme: &Theme) -> Span<'static> {
    match severity {
        Some(Severity::Error) => Span::styled("✗ ", Style::default().fg(theme.error)),
        Some(Severity::Warning) => Span::styled("! ", Style::default().fg(theme.warning)),
        None => Span::raw("  "),
    }
}

pub(super) fn role_color(role: Option<Role>, theme: &Theme) -> ratatui::style::Color {
    match role {
        Some(Role::User) => theme.user,
        Some(Role::Assistant) => theme.assistant,
        Some(Role::System) => theme.system,
        Some(Role::Tool) => theme.info,
        None => theme.dim,
    }
}

fn draw_list(pane: &DataPane, frame: &mut Frame, area: Rect, theme: &Theme) -> Rect {
    let total = pane.record_count();
    let shown = pane.visible_len();
    let mut title = if pane.filter.criteria.is_empty() {
        format!(" Samples {total} ")
    } else {
        format!(
            " Samples {shown}/{total} · {} ",
            pane.filter.criteria.describe()
        )
    };
    if let Some((scanned, all)) = pane.filter.progress {
        title.push_str(&format!("· filtering {}% ", scanned * 100 / all.max(1)));
    }
    if pane.watch.changed.is_some() {
        title.push_str("· changed on disk (w) ");
    }
    let focused = pane.focus == Focus::List;
    let b = block(title, focused, theme);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [rows_area, prompt_area] = match &pane.prompt {
        Some(_) => Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner),
        None => [inner, Rect::default()],
    };
    let height = rows_area.height as usize;
    let offset = pane.list.visible_offset(height);
    let digits = pane
        .store
        .line(total.saturating_sub(1))
        .unwrap_or(total)
        .to_string()
        .len()
        .max(3);
    let mut lines = Vec::with_capacity(height);
    for pos in offset..(offset + height).min(shown) {
        let Some(record) = pane.rows.record(pos, total) else {
            break;
        };
        let row = list::summarize(&pane.store, record);
        let style = row_style(pos == pane.list.pos, focused, theme);
        lines.push(list_row(&row, pane.findings.worst(record), digits, theme).style(style));
    }
    if lines.is_empty() {
        let text = if pane.filter.running() {
            "no matches yet…"
        } else if total == 0 {
            "no samples: a adds one"
        } else {
            "no matches (Esc clears the filter)"
        };
        lines.push(Line::styled(text, theme.dimmed()));
    }
    frame.render_widget(Paragraph::new(lines), rows_area);
    if let Some(prompt) = &pane.prompt {
        let label = match prompt.kind {
            PromptKind::Filter => "/",
            PromptKind::Jump => "line: ",
            PromptKind::Open => "open: ",
            PromptKind::SaveAs => "save as: ",
        };
        let hint = match &prompt.completion.listing {
            Some(listing) => Span::styled(format!("  {listing}"), theme.dimmed()),
            None if prompt.takes_path() => {
                Span::styled("  Tab completes · Enter apply · Esc cancel", theme.dimmed())
            }
            None => Span::styled("  Enter apply · Esc cancel", theme.dimmed()),
        };
        let line = prompt_line(
            Span::styled(label, theme.title()),
            &prompt.line,
            Style::default().fg(theme.text),
            hint,
            prompt_area.width,
        );
        frame.render_widget(Paragraph::new(line), prompt_area);
    }
    rows_area
}

fn list_row(
    row: &RowSummary,
    worst: Option<Severity>,
    digits: usize,
    theme: &Theme,
) -> Line<'static> {
    let line = row.line.map_or("new".to_string(), |l| l.to_string());
    let kind_style = if row.broken {
        Style::default().fg(theme.error)
    } else {
        Style::default().fg(theme.accent)
    };
    let preview_style = if row.broken {
        Style::default().fg(theme.error)
    } else {
        Style::default().fg(theme.text)
    };
    Line::from(vec![
        severity_mark(worst, theme),
        Span::styled(format!("{line:>digits$} "), theme.dimmed()),
        Span::styled(format!("{:<5}", row.kind), kind_style),
        Span::styled(row.preview.clone(), preview_style),
    ])
}

fn draw_findings(pane: &DataPane, frame: &mut Frame, area: Rect, theme: &Theme) -> Rect {
    let (errors, warnings) = pane.findings.counts();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut title = format!(
        " Findings · {} · {} ",
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    if pane.findings.running {
        title.push_str("· validating… ");
    }
    let focused = pane.focus == Focus::Findings;
    let b = block(title, focused, theme);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let height = inner.height as usize;
    let offset = pane.findings_cursor.visible_offset(height);
    let items = pane.findings.items();
    let mut lines: Vec<Line> = items
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, item)| {
            let line = pane
                .store
                .line(item.record)
                .map_or("new".to_string(), |l| (l + item.finding.line).to_string());
            let mut spans = vec![
                severity_mark(Some(item.finding.severity), theme),
                Span::styled(format!("line {line:<6} "), theme.dimmed()),
            ];
            spans.extend(finding_spans(&item.finding, theme));
            Line::from(spans).style(row_style(i == pane.findings_cursor.pos, focused, theme))
        })
        .collect();
    if lines.is_empty() {
        let text = if pane.findings.ready {
            "no findings"
        } else {
            "validating…"
        };
        lines.push(Line::styled(text, theme.dimmed()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
    inner
}

fn finding_spans(finding: &Finding, theme: &Theme) -> Vec<Span<'static>> {
    let color = match finding.severity {
        Severity::Error => theme.error,
        Severity::Warning => theme.warning,
    };
    let mut spans = vec![Span::styled(
        format!("{} ", finding.kind.name()),
        Style::default().fg(color),
    )];
    if !finding.field.is_empty() {
        spans.push(Span::styled(
            format!("{}: ", finding.field),
            Style::default().fg(theme.accent),
        ));
    }
    let mut message = finding.message.clone();
    if let Some(column) = finding.column {
        message.push_str(&format!(" (column {column})"));
    }
    spans.push(Span::styled(message, Style::default().fg(theme.text)));
    spans
}

fn draw_sample(pane: &DataPane, frame: &mut Frame, area: Rect, theme: &Theme, areas: &mut Areas) {
    let focused = pane.focus == Focus::Sample;
    if let Some(editor) = &pane.editor {
        let title = format!(" Edit {} · {} ", editor.label, editor.esc.hint());
        let b = block(title, true, theme);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        let [text_area, error_area] = match &editor.error {
            Some(_) => Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner),
            None => [inner, Rect::default()],
        };
        frame.render_widget(&editor.area, text_area);
        if let Some(error) = &editor.error {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    error.clone(),
                    Style::default().fg(theme.error),
                )),
                error_area,
            );
        }
        areas.content = text_area;
        return;
    }
    let Some(sel) = &pane.selected else {
        let b = block(" Sample ".to_string(), focused, theme);
        frame.render_widget(
            Paragraph::new(Line::styled("no sample selected", theme.dimmed())).block(b),
            area,
        );
        return;
    };
    let b = block(sample_title(pane, sel), focused, theme);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let found = pane.findings.of(sel.record);
    let mut inline: Vec<Line> = found
        .iter()
        .take(INLINE_FINDINGS)
        .map(|item| {
            let mut spans = vec![severity_mark(Some(item.finding.severity), theme)];
            spans.extend(finding_spans(&item.finding, theme));
            Line::from(spans)
        })
        .collect();
    if found.len() > INLINE_FINDINGS {
        inline.push(Line::styled(
            format!("  … {} more below", found.len() - INLINE_FINDINGS),
            theme.dimmed(),
        ));
    }
    if sel.is_cut() {
        inline.push(Line::styled(
            format!("{}: {}", bounds::too_large(sel.bytes), shown_part(sel)),
            Style::default().fg(theme.warning),
        ));
    }
    let [findings_area, body] =
        Layout::vertical([Constraint::Length(inline.len() as u16), Constraint::Min(0)])
            .areas(inner);
    frame.render_widget(Paragraph::new(inline), findings_area);
    areas.content = body;
    let (width, top, height) = (
        body.width as usize,
        sel.scroll as usize,
        body.height as usize,
    );
    if pane.tokens.on {
        draw_tokens(pane, frame, body, theme);
    } else if let Some(problem) = &sel.syntax {
        let head = [
            Line::styled(
                format!(
                    "✗ {} (line {}, column {})",
                    problem.message,
                    problem.line_offset + 1,
                    problem.column
                ),
                Style::default().fg(theme.error),
            ),
            Line::styled("raw text (e edits it):", theme.dimmed()),
        ];
        let mut lines: Vec<Line> = head.into_iter().skip(top).collect();
        let (skip, take) = (top.saturating_sub(2), height - lines.len().min(height));
        lines.extend(
            wrap_window(&sel.raw, width, skip, take)
                .into_iter()
                .map(Line::raw),
        );
        let rows = 2 + wrapped_len(&sel.raw, width);
        if sel.raw.len() < sel.bytes && (top..top + height).contains(&rows) {
            lines.push(Line::styled(
                bounds::more_not_shown(sel.raw.len(), sel.bytes),
                theme.dimmed(),
            ));
        }
        frame.render_widget(Paragraph::new(lines), body);
    } else if sel.is_multifile() {
        draw_multifile(pane, sel, frame, body, theme, areas);
    } else {
        let lines = field_lines(sel, width, focused, theme, top, height);
        frame.render_widget(Paragraph::new(lines), body);
    }
}

fn sample_title(pane: &DataPane, sel: &Selected) -> String {
    let kind = sel.format.map_or("unknown shape", |f| f.label());
    let kind = if sel.syntax.is_some() {
        "unparseable"
    } else {
        kind
    };
    let line = pane
        .store
        .line(sel.record)
        .map_or("new".to_string(), |l| format!("line {l}"));
    let view = if pane.tokens.on { " · tokens" } else { "" };
    format!(
        " Sample {}/{} · {line} · {kind}{view} ",
        sel.record + 1,
        pane.record_count()
    )
}

fn draw_multifile(
    pane: &DataPane,
    sel: &Selected,
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    areas: &mut Areas,
) {
    let focused = pane.focus == Focus::Sample;
    let width = area.width as usize;
    let total = field_lines_total(&sel.fields, width).max(1);
    let fields_height = total.min(area.height as usize / 3);
    let [fields_area, files_area] =
        Layout::vertical([Constraint::Length(fields_height as u16), Constraint::Min(0)])
            .areas(area);
    // Keys scroll the field under the cursor into view; a resize may leave
    // less to show.
    let field_scroll = (sel.field_scroll as usize).min(total - fields_height);
    let fields = field_lines(sel, width, focused, theme, field_scroll, fields_height);
    frame.render_widget(Paragraph::new(fields), fields_area);
    areas.fields = fields_area;
    let tree_width = TREE_WIDTH.min(files_area.width / 2);
    let [tree_area, code_area] =
        Layout::horizontal([Constraint::Length(tree_width), Constraint::Min(0)]).areas(files_area);
    let tree_block = Block::default()
        .borders(Borders::TOP | Borders::RIGHT)
        .border_style(theme.border(false))
        .title(Span::styled(
            format!(" {} files ", sel.files.len()),
            theme.dimmed(),
        ));
    let tree_inner = tree_block.inner(tree_area);
    frame.render_widget(tree_block, tree_area);
    let height = tree_inner.height as usize;
    let offset = sel.tree_offset(height);
    let width = tree_inner.width as usize;
    let tree_lines: Vec<Line> = sel
        .tree
        .iter()
        .skip(offset)
        .take(height)
        .map(|row| {
            let indent = "  ".repeat(row.depth);
            let count = row
                .file
                .and_then(|f| *sel.file_tokens.as_ref()?.get(f)?)
                .map(|n| format!(" {n}t"))
                .unwrap_or_default();
            let name_width = width.saturating_sub(indent.len() + count.len());
            let name: String = row.label.chars().take(name_width).collect();
            let pad = width.saturating_sub(indent.len() + name.chars().count() + count.len());
            let chosen = row.file.is_some() && row.file == sel.file;
            let style = match (row.file, chosen) {
                (None, _) => Style::default().fg(theme.accent),
                (Some(_), true) => {
                    let under_cursor = matches!(sel.current(), Some(Item::File(_)));
                    row_style(true, focused && under_cursor, theme)
                }
                (Some(_), false) => Style::default().fg(theme.text),
            };
            Line::from(vec![
                Span::raw(indent),
                Span::styled(name, style),
                Span::raw(" ".repeat(pad)),
                Span::styled(count, theme.dimmed()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(tree_lines), tree_inner);
    areas.tree = tree_inner;
    areas.content = super::code_view::draw(sel, frame, code_area, theme);
}

fn draw_tokens(pane: &DataPane, frame: &mut Frame, area: Rect, theme: &Theme) {
    let max = pane.tokens.max_seq_len;
    let has_sample = pane.selected.as_ref().is_some_and(|s| s.sample.is_some());
    let bytes = pane.selected.as_ref().map_or(0, |s| s.bytes);
    let lines = match pane.tokens.for_seq(pane.seq) {
        None if !has_sample => vec![Line::styled(
            "this record is no training sample: nothing to tokenise",
            theme.dimmed(),
        )],
        None if bytes > bounds::TOKEN_BYTES => vec![Line::styled(
            format!(
                "{}: the token view takes records up to {}",
                bounds::too_large(bytes),
                bounds::size(bounds::TOKEN_BYTES)
            ),
            Style::default().fg(theme.warning),
        )],
        None if !pane.can_tokenise() => vec![Line::styled(
            "waiting for the model to load…",
            theme.dimmed(),
        )],
        None => vec![Line::styled("tokenising…", theme.dimmed())],
        Some(Err(e)) => vec![Line::styled(
            format!("cannot tokenise this sample: {e}"),
            Style::default().fg(theme.error),
        )],
        Some(Ok(t)) => {
            let mut lines = vec![tokens::header(t, max, theme)];
            lines.extend(tokens::dropped(t, theme));
            lines.push(Line::raw(""));
            // A line wraps into one row or more: later lines are off screen.
            let rows = pane.tokens.scroll as usize + area.height as usize;
            lines.extend(tokens::lines(t, max, theme, rows));
            lines
        }
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((pane.tokens.scroll, 0)),
        area,
    );
}
