//! Drawing the whole screen from `&App`: tab bar, the pane on screen, the
//! status bar, and the help or quit overlay on top.

use super::app::{App, GLOBAL_BINDINGS, Layout, Tab};
use super::panes::{Binding, Pane};
use super::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

pub fn render(app: &App, frame: &mut Frame) {
    let theme = app.theme();
    let area = frame.area();
    frame.render_widget(Block::default().style(theme.base()), area);
    let rows = ratatui::layout::Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .split(area);
    let tabs = render_tabs(app, frame, rows[0], theme);
    let pane = rows[1];
    app.screen().render(frame, pane, theme);
    let status_model = super::status::render_status(app, frame, rows[2], theme);
    app.layout.set(Layout {
        tabs,
        pane,
        status_model,
    });
    if let Some(picker) = &app.picker {
        let drawn =
            super::picker::render::render_picker(picker, app.download.as_ref(), frame, pane, theme);
        app.picker_layout.set(drawn);
    }
    if let Some(error) = &app.error_popup {
        render_error_popup(error, frame, pane, theme);
    }
    if let Some(scroll) = app.help {
        render_help(app, frame, area, theme, scroll);
    } else if app.confirm_quit {
        render_confirm_quit(app, frame, area, theme);
    }
}

fn render_tabs(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) -> [Rect; 4] {
    const TITLE: &str = " tunebench ";
    let mut spans = vec![Span::styled(TITLE, theme.title())];
    let mut rects = [Rect::default(); 4];
    let mut x = area.x + TITLE.len() as u16;
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, tab.title());
        let width = label.len() as u16;
        let style = if *tab == app.tab {
            theme.selected().fg(theme.accent)
        } else {
            theme.dimmed()
        };
        rects[i] = Rect::new(
            x.min(area.right()),
            area.y,
            width.min(area.right().saturating_sub(x)),
            1,
        );
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
        x += width + 1;
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    rects
}

/// A `width` x `height` box in the middle of `area` (smaller if it must).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

/// The help screen's sections: keys everywhere, then each tab's.
fn help_sections(app: &App) -> [(&'static str, &'static [Binding]); 5] {
    [
        ("Everywhere", GLOBAL_BINDINGS),
        (Tab::Data.title(), app.data.bindings()),
        (Tab::Train.title(), app.train.bindings()),
        (Tab::Chat.title(), app.chat.bindings()),
        (Tab::Eval.title(), app.eval.bindings()),
    ]
}

/// Each section is its title, its bindings and a blank line.
fn section_lines(bindings: &[Binding]) -> u16 {
    bindings.len() as u16 + 2
}

/// The help line where `tab`'s keys start, so `?` opens at them.
pub fn help_start(app: &App, tab: Tab) -> u16 {
    help_sections(app)
        .iter()
        .take_while(|(title, _)| *title != tab.title())
        .map(|(_, bindings)| section_lines(bindings))
        .sum()
}

/// The furthest the help scrolls: its last line at the bottom of the box.
pub fn help_max_scroll(app: &App, screen_height: u16) -> u16 {
    let total: u16 = help_sections(app)
        .iter()
        .map(|(_, bindings)| section_lines(bindings))
        .sum();
    // The box is the screen less 4 rows, less its 2 borders.
    total.saturating_sub(screen_height.saturating_sub(6))
}

fn render_help(app: &App, frame: &mut Frame, area: Rect, theme: &Theme, scroll: u16) {
    let sections = help_sections(app);
    let scroll = scroll.min(help_max_scroll(app, area.height));
    let mut lines = Vec::new();
    for (title, bindings) in sections {
        lines.push(Line::styled(title.to_string(), theme.title()));
        for b in bindings {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<16}", b.keys),
                    Style::default().fg(theme.accent),
                ),
                Span::raw(b.does.to_string()),
            ]));
        }
        lines.push(Line::raw(""));
    }
    let rect = centered(area, 84, area.height.saturating_sub(4));
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(" Keys (j/k scroll, any other key closes) ")
        .style(theme.base());
    frame.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), rect);
}

fn render_confirm_quit(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let lost = app.unsaved();
    let rect = centered(area, 64, lost.len() as u16 + 6);
    frame.render_widget(Clear, rect);
    let mut text = vec![Line::raw("Quitting now loses:")];
    text.extend(lost.iter().map(|what| Line::raw(format!("  • {what}"))));
    text.push(Line::raw(""));
    let mut keys = Vec::new();
    if app.data.is_dirty() {
        keys.push(Span::styled("s", theme.title()));
        keys.push(Span::raw(" save the dataset and quit   "));
    }
    keys.extend([
        Span::styled("d", theme.title()),
        Span::raw(" or "),
        Span::styled("Ctrl+c", theme.title()),
        Span::raw(" discard and quit   "),
        Span::styled("Esc", theme.title()),
        Span::raw(" stay"),
    ]);
    text.push(Line::from(keys));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(theme.warning))
        .title(" Quit? ")
        .style(theme.base());
    frame.render_widget(
        Paragraph::new(text).block(block).wrap(Wrap { trim: false }),
        rect,
    );
}

/// An error from something the user just did, whole, at the bottom of the
/// pane where it happened, until a key or click dismisses it.
fn render_error_popup(error: &str, frame: &mut Frame, pane: Rect, theme: &Theme) {
    let chars = error.chars().count() as u16;
    let width = (chars + 4).clamp(40, 100).min(pane.width);
    let inner = width.saturating_sub(2).max(1);
    // Wrapping at words can take a line more than the bare count says.
    let lines = chars.div_ceil(inner) + 1;
    let height = (lines + 2).min(pane.height);
    let rect = Rect::new(
        pane.x + (pane.width - width) / 2,
        pane.bottom() - height,
        width,
        height,
    );
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(theme.error))
        .title(" Error ")
        .title_bottom(" any key closes ")
        .style(theme.base());
    frame.render_widget(
        Paragraph::new(error.to_string())
            .style(Style::default().fg(theme.error))
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}
