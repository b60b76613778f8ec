//! The lines of the sample view that are on screen: a record's fields
//! (header, text, what was cut). Only the rows in the window are built, so
//! a frame's work does not grow with the record.

use super::bounds;
use super::render::{role_color, row_style};
use super::sample_view::{Field, Item, Selected, field_layout, wrap_window};
use crate::tui::theme::Theme;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

/// What the view of a record too large to show whole does show.
pub(super) fn shown_part(sel: &Selected) -> String {
    let mut part = match &sel.syntax {
        Some(_) => format!("its first {}", bounds::size(sel.raw.len())),
        None => format!(
            "fields show up to {} each",
            bounds::size(bounds::FIELD_BYTES)
        ),
    };
    if sel.omitted_fields > 0 {
        part.push_str(&format!(
            ", {} of {} fields listed",
            sel.fields.len(),
            sel.fields.len() + sel.omitted_fields
        ));
    }
    if sel.files.iter().any(|f| f.is_cut()) {
        part.push_str(&format!(
            ", files up to {}",
            bounds::size(bounds::FILE_BYTES)
        ));
    }
    part
}

/// Lines `top..top + height` of the fields: each a header in its role's
/// colour, its text (and what was cut), a blank line. The header of the
/// field under the cursor is marked (`▸` and a bar across the width while
/// the sample has focus). Only the lines on screen are built.
pub(super) fn field_lines(
    sel: &Selected,
    width: usize,
    focused: bool,
    theme: &Theme,
    top: usize,
    height: usize,
) -> Vec<Line<'static>> {
    if sel.fields.is_empty() {
        return vec![Line::styled("no text fields", theme.dimmed())];
    }
    let (rows, starts) = field_layout(&sel.fields, width);
    let end = top + height;
    let mut lines = Vec::new();
    for (i, field) in sel.fields.iter().enumerate() {
        let start = starts[i];
        if start >= end {
            break;
        }
        if start + rows[i] + 2 <= top {
            continue;
        }
        // Rows of this field in its own numbering: header 0, text from 1.
        let (from, to) = (top.saturating_sub(start), end - start);
        if from == 0 {
            lines.push(field_header(sel, i, field, width, focused, theme));
        }
        let text_rows = rows[i] - usize::from(field.is_cut());
        let skip = from.saturating_sub(1);
        let take = to.saturating_sub(1).min(text_rows).saturating_sub(skip);
        lines.extend(
            wrap_window(&field.text, width, skip, take)
                .into_iter()
                .map(|t| Line::styled(t, Style::default().fg(theme.text))),
        );
        let marker = 1 + text_rows;
        if field.is_cut() && (from..to).contains(&marker) {
            lines.push(Line::styled(
                bounds::more_not_shown(field.text.len(), field.len),
                theme.dimmed(),
            ));
        }
        if (from..to).contains(&(rows[i] + 1)) {
            lines.push(Line::raw(""));
        }
    }
    lines
}

fn field_header(
    sel: &Selected,
    i: usize,
    field: &Field,
    width: usize,
    focused: bool,
    theme: &Theme,
) -> Line<'static> {
    let role = field.role.map_or("field", |r| r.as_str());
    let style = Style::default()
        .fg(role_color(field.role, theme))
        .add_modifier(Modifier::BOLD);
    let current = sel.current() == Some(Item::Field(i));
    let label = match field.list {
        Some(1) => format!(" · {} · 1 item", field.label),
        Some(n) => format!(" · {} · {n} items", field.label),
        None => format!(" · {}", field.label),
    };
    if current && focused {
        let head = format!("▸{role}");
        let pad = width.saturating_sub(head.chars().count() + label.chars().count());
        let bar = theme.selected();
        Line::from(vec![
            Span::styled(head, style.patch(bar)),
            Span::styled(label, theme.dimmed().patch(bar)),
            Span::styled(" ".repeat(pad), bar),
        ])
    } else {
        let mark = if current {
            style.patch(row_style(true, false, theme))
        } else {
            style
        };
        Line::from(vec![
            Span::styled(format!("▍{role}"), mark),
            Span::styled(label, theme.dimmed()),
        ])
    }
}
