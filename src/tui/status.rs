//! The status bar: the file, model and run, the latest notice and the
//! pane's keys, fitted into one row. A notice wins the space: names shrink
//! first (an ellipsis in the middle keeps both ends recognisable), then the
//! run, the model and the key hints give way, and only then is the notice
//! itself shortened, so an error is never cut to nothing.

use super::action::ModelStatus;
use super::app::App;
use super::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

const SEPARATOR: &str = " │ ";
/// A name shrinks to this many characters before its segment gives way.
const NAME_FLOOR: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// "SmolLM2-…-Instruct": names, whose ends both matter.
    Middle,
    /// "No such file or direc…": prose.
    End,
}

/// One part of the bar: a fixed head, a body that may shrink, a fixed tail.
struct Segment {
    head: Option<Span<'static>>,
    body: String,
    style: Style,
    tail: Vec<Span<'static>>,
    cut: Cut,
    /// How wide the body is drawn (at most its length).
    width: usize,
    shown: bool,
}

impl Segment {
    fn new(body: String, style: Style, cut: Cut) -> Segment {
        Segment {
            width: body.chars().count(),
            head: None,
            body,
            style,
            tail: Vec::new(),
            cut,
            shown: true,
        }
    }

    fn total_width(&self) -> usize {
        let fixed: usize = self.head.iter().chain(&self.tail).map(Span::width).sum();
        fixed + self.width
    }

    fn spans(&self) -> Vec<Span<'static>> {
        let mut spans: Vec<Span<'static>> = self.head.iter().cloned().collect();
        let body = match self.cut {
            Cut::Middle => shorten_middle(&self.body, self.width),
            Cut::End => shorten_end(&self.body, self.width),
        };
        if !body.is_empty() {
            spans.push(Span::styled(body, self.style));
        }
        spans.extend(self.tail.iter().cloned());
        spans
    }
}

// Positions in the bar, left to right.
const FILE: usize = 0;
const MODEL: usize = 1;
const RUN: usize = 2;
const NOTICE: usize = 3;
const HINTS: usize = 4;

enum Step {
    /// Shrink a body down to this width.
    Shrink(usize, usize),
    Drop(usize),
}

/// The order in which segments give way when the row is too narrow.
const GIVE_WAY: &[Step] = &[
    Step::Shrink(RUN, NAME_FLOOR),
    Step::Shrink(MODEL, NAME_FLOOR),
    Step::Shrink(HINTS, 0),
    Step::Shrink(FILE, NAME_FLOOR),
    Step::Drop(RUN),
    Step::Drop(MODEL),
    // The hints' tail ("? help") stays: it is the way to every other key.
    Step::Shrink(NOTICE, 1),
];

/// Draws the bar; returns where the model's name landed (a click there
/// opens the model picker), empty when it gave way.
pub fn render_status(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) -> Rect {
    let mut segments = segments(app, theme);
    fit(&mut segments, area.width as usize);
    if segments[HINTS].width == 0 {
        // No hints left to keep apart from "? help".
        segments[HINTS].tail.remove(0);
    }
    let mut spans = Vec::new();
    let mut model_at = Rect::default();
    for (index, segment) in segments.iter().enumerate().filter(|(_, s)| s.shown) {
        if !spans.is_empty() {
            spans.push(Span::styled(SEPARATOR, theme.dimmed()));
        }
        let start: usize = spans.iter().map(Span::width).sum();
        spans.extend(segment.spans());
        if index == MODEL {
            let end: usize = spans.iter().map(Span::width).sum();
            let x = area.x + (start as u16).min(area.width);
            let width = ((end - start) as u16).min(area.right().saturating_sub(x));
            model_at = Rect::new(x, area.y, width, 1);
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    model_at
}

fn segments(app: &App, theme: &Theme) -> Vec<Segment> {
    let text = Style::default().fg(theme.text);
    let mut file = Segment::new(app.data.file_label(), text, Cut::Middle);
    if app.data.is_dirty() {
        let marker = Style::default()
            .fg(theme.warning)
            .add_modifier(Modifier::BOLD);
        file.tail.push(Span::styled(" [+]", marker));
    }
    let model = match &app.model {
        ModelStatus::Loading { name } => {
            let mut loading = Segment::new(model_label(name), theme.dimmed(), Cut::Middle);
            loading.head = Some(Span::styled("loading ", theme.dimmed()));
            loading.tail.push(Span::styled("…", theme.dimmed()));
            loading
        }
        ModelStatus::Ready(info) => {
            let adapter = info
                .adapter
                .as_ref()
                .map(|a| format!(" + {}", short_path(a)))
                .unwrap_or_default();
            let mut ready = Segment::new(
                format!("{}{adapter}", model_label(&info.name)),
                text,
                Cut::Middle,
            );
            if !info.precision.is_empty() {
                ready.tail.push(Span::styled(
                    format!(" [{}]", info.precision),
                    theme.dimmed(),
                ));
            }
            ready
        }
        ModelStatus::Failed { name, .. } => {
            let error = Style::default().fg(theme.error);
            let mut failed = Segment::new(model_label(name), error, Cut::Middle);
            failed.tail.push(Span::styled(": failed to load", error));
            failed
        }
    };
    let run = match app.train.run_summary_parts() {
        Some((name, detail)) => {
            let mut run = Segment::new(name, text, Cut::Middle);
            run.head = Some(Span::styled("run ", text));
            run.tail.push(Span::styled(detail, text));
            run
        }
        None => Segment::new("no run".to_string(), theme.dimmed(), Cut::End),
    };
    let mut notice = match (&app.notice, &app.download) {
        // A running download holds the notice's place; errors still show.
        (notice, Some(download)) if notice.as_ref().is_none_or(|n| !n.is_error) => Segment::new(
            format!("↓ {} {}", download.repo, download.summary()),
            Style::default().fg(theme.info),
            Cut::End,
        ),
        (Some(notice), _) => {
            let color = if notice.is_error {
                theme.error
            } else {
                theme.info
            };
            Segment::new(notice.text.clone(), Style::default().fg(color), Cut::End)
        }
        (None, _) => Segment::new(String::new(), text, Cut::End),
    };
    notice.shown = app.notice.is_some() || app.download.is_some();
    let mut hints = Segment::new(
        format!("{} ", app.screen().hints()),
        theme.dimmed(),
        Cut::End,
    );
    // A space stays between cut hints and "? help".
    hints.tail.push(Span::raw(" "));
    if !app.mouse_capture {
        let warning = Style::default().fg(theme.warning);
        hints.tail.push(Span::styled("mouse off (M)  ", warning));
    }
    hints.tail.push(Span::styled("? help", theme.dimmed()));
    vec![file, model, run, notice, hints]
}

/// Makes the shown segments fit `width` columns, giving way in `GIVE_WAY`
/// order.
fn fit(segments: &mut [Segment], width: usize) {
    for step in GIVE_WAY {
        let used = used_width(segments);
        if used <= width {
            return;
        }
        let excess = used - width;
        match *step {
            Step::Shrink(at, floor) => {
                let segment = &mut segments[at];
                let spare = segment.width.saturating_sub(floor);
                segment.width -= excess.min(spare);
            }
            Step::Drop(at) => segments[at].shown = false,
        }
    }
}

fn used_width(segments: &[Segment]) -> usize {
    let shown: Vec<&Segment> = segments.iter().filter(|s| s.shown).collect();
    let separators = shown.len().saturating_sub(1) * SEPARATOR.chars().count();
    shown.iter().map(|s| s.total_width()).sum::<usize>() + separators
}

/// `text` in at most `width` characters, with "…" in the middle when cut.
fn shorten_middle(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let kept = width - 1;
    let front = kept.div_ceil(2);
    let back = kept - front;
    let mut out: String = chars[..front].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - back..]);
    out
}

/// `text` in at most `width` characters, ending in "…" when cut.
fn shorten_end(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
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

#[cfg(test)]
mod tests {
    use super::{model_label, shorten_end, shorten_middle};

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

    #[test]
    fn names_shorten_in_the_middle_and_prose_at_the_end() {
        assert_eq!(shorten_middle("SmolLM2-135M-Instruct", 9), "Smol…ruct");
        assert_eq!(shorten_middle("short", 9), "short");
        assert_eq!(shorten_middle("abc", 1), "…");
        assert_eq!(shorten_end("No such file", 8), "No such…");
        assert_eq!(shorten_end("abc", 0), "");
    }
}
