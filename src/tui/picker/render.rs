//! Drawing the model picker, and the download gauge it shares with the
//! status bar.

use super::ModelPicker;
use crate::model::hub::tally::Tally;
use crate::tui::panes::train::fmt::bytes;
use crate::tui::theme::Theme;
use crate::tui::view::centered;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, LineGauge, Paragraph};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A download running in the background while the workbench stays usable.
#[derive(Debug)]
pub struct ActiveDownload {
    pub repo: String,
    pub tally: Tally,
    /// Set to stop it; the worker sees it within a tenth of a second.
    pub cancel: Arc<AtomicBool>,
}

impl ActiveDownload {
    /// `45% model.safetensors 12.1 MB/s 0m30s left`, short enough for the
    /// status bar.
    pub fn summary(&self) -> String {
        let tally = &self.tally;
        let file = tally.file.as_deref().unwrap_or("file list");
        let rate = tally
            .rate()
            .map(|r| format!(" {}/s", bytes(r)))
            .unwrap_or_default();
        let left = tally
            .eta()
            .map(|s| format!(" {} left", crate::cli::progress::duration(s.ceil())))
            .unwrap_or_default();
        format!(
            "{:.0}% {file} ({}/{}){rate}{left}",
            tally.ratio() * 100.0,
            (tally.files_done + 1).min(tally.files.max(1)),
            tally.files.max(1)
        )
    }
}

/// Where the picker's rows were drawn, for clicks.
#[derive(Debug, Default, Clone, Copy)]
pub struct PickerLayout {
    pub rows: Rect,
    pub first: usize,
}

pub fn render_picker(
    picker: &ModelPicker,
    download: Option<&ActiveDownload>,
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
) -> PickerLayout {
    let shown = picker.shown();
    let gauge_rows = if download.is_some() { 2 } else { 0 };
    let list_rows = shown.len().clamp(1, 12) as u16;
    let rect = centered(area, 86, list_rows + gauge_rows + 4);
    frame.render_widget(Clear, rect);
    let footer = match (&picker.completion.listing, download) {
        (Some(listing), _) => format!(" {listing} "),
        (None, Some(_)) => {
            " ↑↓ Enter choose · Ctrl+x cancel the download · Esc close (it goes on) ".into()
        }
        (None, None) => {
            " ↑↓ Enter choose · type to filter, a path (Tab) or ORG/NAME · Esc close ".into()
        }
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(Span::styled(" Model ", theme.title()))
        .title_bottom(Line::styled(footer, theme.dimmed()).right_aligned())
        .style(theme.base());
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    if inner.height < 2 {
        return PickerLayout::default();
    }
    let input = Rect::new(inner.x, inner.y, inner.width, 1);
    let mut spans = vec![Span::styled("> ", theme.dimmed())];
    spans.extend(picker.line.spans(
        inner.width.saturating_sub(2) as usize,
        Style::default().fg(theme.text),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), input);

    let rows = Rect::new(
        inner.x,
        inner.y + 2,
        inner.width,
        inner.height.saturating_sub(2 + gauge_rows),
    );
    let visible = rows.height as usize;
    let first = first_row(picker.selected, visible);
    if shown.is_empty() {
        let hint = "nothing here matches: Enter loads what is typed";
        frame.render_widget(Paragraph::new(Span::styled(hint, theme.dimmed())), rows);
    }
    for (row, (index, entry)) in shown
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .enumerate()
    {
        let style = if index == picker.selected {
            theme.selected()
        } else {
            Style::default().fg(theme.text)
        };
        let size = entry.bytes.map(|b| bytes(b as f64)).unwrap_or_default();
        let label = entry.source.label();
        // " name " + a 9-wide size and a space + " label".
        let room = (inner.width as usize).saturating_sub(label.len() + 14);
        let name = shorten(&entry.name, room);
        let pad = room.saturating_sub(name.chars().count());
        let line = Line::from(vec![
            Span::styled(format!(" {name}{} ", " ".repeat(pad)), style),
            Span::styled(format!("{size:>9} "), style),
            Span::styled(format!(" {label}"), theme.dimmed()),
        ]);
        let at = Rect::new(rows.x, rows.y + row as u16, rows.width, 1);
        frame.render_widget(Paragraph::new(line), at);
    }
    if let Some(download) = download {
        let at = Rect::new(inner.x, inner.bottom() - 1, inner.width, 1);
        render_gauge(download, frame, at, theme);
    }
    PickerLayout { rows, first }
}

/// One row: `↓ REPO` and a line gauge with the current file's progress.
pub fn render_gauge(download: &ActiveDownload, frame: &mut Frame, area: Rect, theme: &Theme) {
    let label = format!("↓ {} {}", download.repo, download.summary());
    let gauge = LineGauge::default()
        .ratio(download.tally.ratio())
        .label(Span::styled(label, Style::default().fg(theme.text)))
        .filled_style(
            Style::default()
                .fg(theme.accent)
                .add_modifier(Modifier::BOLD),
        )
        .unfilled_style(theme.dimmed());
    frame.render_widget(gauge, area);
}

/// The first row to draw so that `selected` is in a window of `visible`.
fn first_row(selected: usize, visible: usize) -> usize {
    (selected + 1).saturating_sub(visible)
}

/// `name`, cut in the middle with `…` to fit `room` columns.
fn shorten(name: &str, room: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= room || room < 5 {
        return name.to_string();
    }
    let keep = room - 1;
    let head = keep / 2;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_scroll_to_keep_the_selection_in_view() {
        assert_eq!(first_row(0, 5), 0);
        assert_eq!(first_row(4, 5), 0);
        assert_eq!(first_row(7, 5), 3);
        assert_eq!(shorten("abcdefghij", 7), "abc…hij");
        assert_eq!(shorten("short", 7), "short");
    }
}
