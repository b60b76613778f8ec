//! Drawing the whole screen from `&App`: tab bar, the pane on screen, the
//! status bar, and the help or quit overlay on top.

use super::action::ModelStatus;
use super::app::{App, GLOBAL_BINDINGS, Layout, Tab};
use super::panes::{Binding, Pane};
use super::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Rect};
use ratatui::style::{Modifier, Style};
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
    render_status(app, frame, rows[2], theme);
    app.layout.set(Layout { tabs, pane });
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

fn render_status(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let sep = Span::styled(" │ ", theme.dimmed());
    let mut spans = Vec::new();
    let (file, dirty) = (app.data.file_label(), app.data.is_dirty());
    spans.push(Span::styled(file, Style::default().fg(theme.text)));
    if dirty {
        spans.push(Span::styled(
            " [+]",
            Style::default()
                .fg(theme.warning)
                .add_modifier(Modifier::BOLD),
        ));
    }
    spans.push(sep.clone());
    spans.push(match &app.model {
        ModelStatus::Loading { name } => {
            Span::styled(format!("loading {}…", model_label(name)), theme.dimmed())
        }
        ModelStatus::Ready(info) => {
            let adapter = info
                .adapter
                .as_ref()
                .map(|a| format!(" + {}", short_path(a)))
                .unwrap_or_default();
            Span::styled(
                format!("{}{adapter}", model_label(&info.name)),
                Style::default().fg(theme.text),
            )
        }
        ModelStatus::Failed { name, .. } => Span::styled(
            format!("{}: failed to load", model_label(name)),
            Style::default().fg(theme.error),
        ),
    });
    spans.push(sep.clone());
    spans.push(Span::styled(
        app.train.run_summary(),
        Style::default().fg(theme.text),
    ));
    spans.push(sep);
    if let Some(notice) = &app.notice {
        let color = if notice.is_error {
            theme.error
        } else {
            theme.info
        };
        spans.push(Span::styled(
            notice.text.clone(),
            Style::default().fg(color),
        ));
        spans.push(Span::styled(" │ ", theme.dimmed()));
    }
    let hints = app.screen().hints();
    spans.push(Span::styled(format!("{hints}  ? help"), theme.dimmed()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A model as the status bar names it: a hub repo id (`Qwen/Qwen2.5-0.5B`)
/// whole, a local directory by its last component (`tiny-model`).
fn model_label(name: &str) -> String {
    if crate::model::hub::looks_like_repo_id(name) {
        return name.to_string();
    }
    name.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|last| !last.is_empty())
        .unwrap_or(name)
        .to_string()
}

/// The last two components of a path, enough to recognise a run.
fn short_path(path: &std::path::Path) -> String {
    let parts: Vec<_> = path.components().rev().take(2).collect();
    parts
        .iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
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

fn render_help(app: &App, frame: &mut Frame, area: Rect, theme: &Theme, scroll: u16) {
    let sections: [(&str, &[Binding]); 5] = [
        ("Everywhere", GLOBAL_BINDINGS),
        ("Data", app.data.bindings()),
        ("Train", app.train.bindings()),
        ("Chat", app.chat.bindings()),
        ("Eval", app.eval.bindings()),
    ];
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
    let rect = centered(area, 60, 7);
    frame.render_widget(Clear, rect);
    let text = vec![
        Line::raw(format!("{} has unsaved changes.", app.data.file_label())),
        Line::raw(""),
        Line::from(vec![
            Span::styled("s", theme.title()),
            Span::raw(" save and quit   "),
            Span::styled("d", theme.title()),
            Span::raw(" discard and quit   "),
            Span::styled("Esc", theme.title()),
            Span::raw(" stay"),
        ]),
    ];
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

#[cfg(test)]
mod tests {
    use super::model_label;

    #[test]
    fn model_label_keeps_repo_ids_and_shortens_paths() {
        assert_eq!(model_label("Qwen/Qwen2.5-0.5B"), "Qwen/Qwen2.5-0.5B");
        assert_eq!(
            model_label("/tmp/x/cache/tunebench/tiny-model"),
            "tiny-model"
        );
        assert_eq!(model_label("/tmp/x/tiny-model/"), "tiny-model");
        assert_eq!(model_label("./models/tiny"), "tiny");
        assert_eq!(model_label("runs/a/merged"), "merged");
        assert_eq!(model_label("tiny"), "tiny");
        assert_eq!(model_label("/"), "/");
    }
}
