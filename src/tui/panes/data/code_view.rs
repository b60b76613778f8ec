//! The code view of a multi-file sample: the file on show, numbered, its
//! first lines coloured, scrolled down and sideways, with the line and
//! column of its syntax error marked. Built when the file on show changes
//! (or the theme does), never while drawing; a frame builds only the rows
//! on screen, and only their columns in view.

use super::bounds::{self, HIGHLIGHT_BYTES};
use super::files::{self, CodeFile};
use super::sample_view::Selected;
use crate::data::validate::{SyntaxError, check_syntax};
use crate::tui::highlight::Highlighter;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// Columns `h`/`l` (and ←/→) scroll the code by.
pub const COLUMN_STEP: usize = 8;

/// Columns a tab takes in the code view.
const TAB: usize = 4;

#[derive(Debug, Default)]
pub struct CodeView {
    /// The first lines, highlighted (the rest is drawn plain).
    pub highlighted: Vec<Line<'static>>,
    /// Lines of the view: the shown content's, and one saying what was cut.
    pub lines: usize,
    /// Columns of the widest line shown.
    pub widest: usize,
    /// The file's syntax error, as validation reports it (checked for files
    /// up to `HIGHLIGHT_BYTES`, like colouring: this runs on the UI thread).
    pub error: Option<SyntaxError>,
    /// Where the error is marked: 0-based line and character, the end of
    /// the last line for an error past the end of the text.
    error_at: Option<(usize, usize)>,
    /// The first column on screen.
    pub column: usize,
}

impl CodeView {
    pub fn new(highlighter: &Highlighter, file: &CodeFile, theme: &str) -> CodeView {
        let checked = !file.is_cut() && file.len <= HIGHLIGHT_BYTES;
        let error = checked
            .then(|| check_syntax(&file.path, &file.content).err())
            .flatten();
        let content_lines = file.content.lines().count();
        let error_at = error.as_ref().map(|e| {
            let line = e.line.max(1) - 1;
            if line < content_lines {
                (line, e.column.saturating_sub(1))
            } else {
                (content_lines.saturating_sub(1), usize::MAX)
            }
        });
        CodeView {
            highlighted: files::highlight(highlighter, file, theme),
            lines: file.view_lines(),
            widest: file.content.lines().map(columns).max().unwrap_or(0),
            error,
            error_at,
            column: 0,
        }
    }

    /// Columns of the line numbers (and the space after them).
    pub fn gutter(&self) -> usize {
        self.lines.to_string().len().max(3) + 1
    }

    /// Scrolls sideways by `step` columns, in a view `width` columns wide
    /// (numbers included), not past the widest line's end.
    pub fn scroll_columns(&mut self, step: isize, width: usize) {
        let text_width = width.saturating_sub(self.gutter()).max(1);
        let most = self.widest.saturating_sub(text_width);
        self.column = self.column.saturating_add_signed(step).min(most);
    }

    /// Scrolls so the syntax error is in view in a view `width` by `height`
    /// (its message included): its line a third down when it is not in
    /// view, its column in view. Returns the first line to show.
    pub fn show_error(&mut self, top: usize, width: usize, height: usize) -> usize {
        let Some((line, column)) = self.error_at else {
            return top;
        };
        // The error's message takes a row over the code.
        let height = height.saturating_sub(1);
        let text_width = width.saturating_sub(self.gutter()).max(1);
        let column = column.min(self.widest);
        if column < self.column || column >= self.column + text_width {
            self.column = column.saturating_sub(text_width / 2);
        }
        if (top..top + height.max(1)).contains(&line) {
            top
        } else {
            // A third down, but not past the last screenful.
            (line.saturating_sub(height / 3)).min(self.lines.saturating_sub(height))
        }
    }

    /// What part of the lines' width is in view, when not all of it is.
    pub fn columns_note(&self, width: usize) -> Option<String> {
        let text_width = width.saturating_sub(self.gutter()).max(1);
        if self.widest <= text_width && self.column == 0 {
            return None;
        }
        let last = (self.column + text_width).min(self.widest);
        Some(format!("cols {}–{last}/{}", self.column + 1, self.widest))
    }

    /// The line over the code about its syntax error, if it has one.
    pub fn error_note(&self) -> Option<String> {
        let error = self.error.as_ref()?;
        Some(format!(
            "✗ line {}, column {}: {} ({})",
            error.line, error.column, error.message, error.language
        ))
    }

    /// Rows `top..top + height` of the view, `width` columns wide: numbered,
    /// coloured where highlighted, scrolled to `self.column`, the error
    /// marked; then what was cut.
    pub fn rows(
        &self,
        file: &CodeFile,
        top: usize,
        height: usize,
        width: usize,
        theme: &Theme,
    ) -> Vec<Line<'static>> {
        let digits = self.gutter() - 1;
        let text_width = width.saturating_sub(self.gutter());
        let error_style = Style::default()
            .fg(theme.error)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
        // Only the lines on screen are copied.
        let coloured = self.highlighted.iter().skip(top).map(|l| l.spans.clone());
        let plain = file
            .content
            .lines()
            .skip(top.max(self.highlighted.len()))
            .map(|l| vec![Span::raw(l.to_string())]);
        let mut lines: Vec<Line> = (top..)
            .zip(coloured.chain(plain))
            .take(height)
            .map(|(n, spans)| {
                let mark = self
                    .error_at
                    .filter(|(line, _)| *line == n)
                    .map(|(_, column)| (column, error_style));
                let error = mark.is_some();
                let number = format!("{:>digits$} ", n + 1);
                let gutter = if error {
                    Span::styled(number, error_style.add_modifier(Modifier::REVERSED))
                } else {
                    Span::styled(number, theme.dimmed())
                };
                let visible = in_view(&spans, self.column, text_width, mark);
                Line::from([vec![gutter], visible].concat())
            })
            .collect();
        let marker = self.lines.saturating_sub(1);
        if file.is_cut() && lines.len() < height && (top..top + height).contains(&marker) {
            lines.push(Line::styled(
                bounds::more_not_shown(file.content.len(), file.len),
                theme.dimmed(),
            ));
        }
        lines
    }
}

/// Columns one line takes, tabs expanded.
fn columns(line: &str) -> usize {
    line.chars().map(|c| if c == '\t' { TAB } else { 1 }).sum()
}

/// The columns `first..first + width` of a line's spans, tabs expanded;
/// `mark` restyles the character at that index (a block after the line's
/// end when it is past it, so an error at the end of a line shows).
fn in_view(
    spans: &[Span<'static>],
    first: usize,
    width: usize,
    mark: Option<(usize, Style)>,
) -> Vec<Span<'static>> {
    let mut out: Vec<Span<'static>> = Vec::new();
    let mut push = |text: &str, style: Style| match out.last_mut() {
        Some(last) if last.style == style => last.content.to_mut().push_str(text),
        _ => out.push(Span::styled(text.to_string(), style)),
    };
    let visible = |cell: usize| (first..first + width).contains(&cell);
    let (mut index, mut column) = (0, 0);
    for span in spans {
        for c in span.content.chars() {
            let style = match mark {
                Some((at, marked)) if at == index => span.style.patch(marked),
                _ => span.style,
            };
            if c == '\t' {
                for cell in column..column + TAB {
                    if visible(cell) {
                        push(" ", style);
                    }
                }
                column += TAB;
            } else {
                if visible(column) {
                    push(c.encode_utf8(&mut [0; 4]), style);
                }
                column += 1;
            }
            index += 1;
        }
    }
    if let Some((_, marked)) = mark.filter(|(at, _)| *at >= index)
        && visible(column)
    {
        push(" ", marked.add_modifier(Modifier::REVERSED));
    }
    out
}

/// Draws the code view of `sel`'s file on show in `area`: a title with the
/// path, the columns in view, tokens and what was cut, the syntax error's
/// message, then the rows. Returns the view's area under the title.
pub(super) fn draw(sel: &Selected, frame: &mut Frame, area: Rect, theme: &Theme) -> Rect {
    let file = sel.file.and_then(|f| sel.files.get(f));
    let title = match file {
        Some(file) => {
            let tokens = match sel.file_tokens.as_ref().map(|t| t[sel.file.unwrap_or(0)]) {
                Some(Some(n)) => format!(" · {n} tokens"),
                Some(None) => " · too large to count tokens".to_string(),
                None => String::new(),
            };
            let part = if file.is_cut() {
                format!(
                    " · first {} of {}",
                    bounds::size(file.content.len()),
                    bounds::size(file.len)
                )
            } else {
                String::new()
            };
            // The columns come first: they change as h/l scroll.
            let columns = sel
                .code
                .columns_note(area.width as usize)
                .map(|note| format!(" · {note}"))
                .unwrap_or_default();
            format!(" {}{columns}{tokens}{part} ", file.path)
        }
        None => " no files ".to_string(),
    };
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(theme.border(false))
        .title(Span::styled(title, theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let error = sel.code.error_note().filter(|_| inner.height > 1);
    let [error_area, rows_area] = Layout::vertical([
        Constraint::Length(error.is_some().into()),
        Constraint::Min(0),
    ])
    .areas(inner);
    if let Some(error) = error {
        let style = Style::default().fg(theme.error);
        frame.render_widget(Paragraph::new(Line::styled(error, style)), error_area);
    }
    let (width, height) = (rows_area.width as usize, rows_area.height as usize);
    let rows = file.map_or_else(Vec::new, |file| {
        sel.code
            .rows(file, sel.scroll as usize, height, width, theme)
    });
    frame.render_widget(Paragraph::new(rows), rows_area);
    inner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> CodeFile {
        CodeFile {
            path: path.into(),
            content: content.into(),
            len: content.len(),
        }
    }

    fn view(file: &CodeFile) -> CodeView {
        CodeView::new(&Highlighter::default(), file, "base16-ocean.dark")
    }

    fn text(line: &Line) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn a_syntax_error_is_marked_at_its_line_and_column_and_scrolled_to() {
        let theme = &Theme::builtin()[0];
        let mut code = "x = 1\n".repeat(30);
        code.push_str("def f(:\n    pass\n");
        code.push_str(&"y = 2\n".repeat(30));
        let file = file("app/main.py", &code);
        let mut view = view(&file);
        let error = view.error.clone().expect("a syntax error");
        assert_eq!((error.language, error.line), ("Python", 31));
        assert!(view.error_note().unwrap().starts_with("✗ line 31, column "));
        // Below the first screen: the line comes a third of the way down,
        // unless that is past the last screenful.
        // 12 rows: the message and 11 of code.
        let top = view.show_error(0, 60, 12);
        assert_eq!(top, 30 - 3);
        assert_eq!(view.show_error(35, 60, 50), 62 - 49);
        let rows = view.rows(&file, top, 11, 60, theme);
        let marked = &rows[3];
        assert_eq!(text(marked), " 31 def f(:");
        let gutter = marked.spans[0].style;
        assert_eq!(gutter.fg, Some(theme.error));
        assert!(gutter.add_modifier.contains(Modifier::REVERSED));
        // The character at the error's column is marked, the rest is not.
        let at = |column: usize| {
            let mut seen = 0;
            marked.spans[1..]
                .iter()
                .find(|s| {
                    seen += s.content.chars().count();
                    seen > column
                })
                .unwrap()
                .style
        };
        let column = error.column - 1;
        assert!(at(column).add_modifier.contains(Modifier::UNDERLINED));
        assert!(!at(0).add_modifier.contains(Modifier::UNDERLINED));
        assert_eq!(rows[2].spans[0].style, theme.dimmed(), "other lines plain");
        // Already in view: no scrolling.
        assert_eq!(view.show_error(20, 60, 12), 20);
        // A file without errors has no mark.
        assert!(self::view(&self::file("ok.py", "x = 1\n")).error.is_none());
    }

    #[test]
    fn long_lines_scroll_sideways_with_the_columns_in_view_named() {
        let theme = &Theme::builtin()[0];
        let long: String = ('a'..='z').cycle().take(100).collect();
        let file = file("notes.txt", &format!("short\n{long}\n\tx\n"));
        let mut view = view(&file);
        assert_eq!(view.widest, 100);
        // 40 columns, 4 of them line numbers.
        assert_eq!(view.columns_note(40).unwrap(), "cols 1–36/100");
        view.scroll_columns(COLUMN_STEP as isize, 40);
        assert_eq!(view.column, 8);
        let rows = view.rows(&file, 0, 3, 40, theme);
        assert_eq!(text(&rows[1]), format!("  2 {}", &long[8..44]));
        assert_eq!(text(&rows[0]), "  1 ", "a short line scrolls out of view");
        assert_eq!(view.columns_note(40).unwrap(), "cols 9–44/100");
        view.scroll_columns(1000, 40);
        assert_eq!(view.column, 64, "not past the widest line's end");
        assert_eq!(view.columns_note(40).unwrap(), "cols 65–100/100");
        view.scroll_columns(-1000, 40);
        assert_eq!(view.column, 0);
        // Tabs show as four spaces.
        let rows = view.rows(&file, 0, 3, 40, theme);
        assert_eq!(text(&rows[2]), "  3     x");
        // Lines that fit need no note.
        assert_eq!(view.columns_note(200), None);
    }

    #[test]
    fn an_error_past_the_end_of_a_line_is_still_shown() {
        let theme = &Theme::builtin()[0];
        let file = file("data.json", "{\"a\": 1,\n");
        let view = view(&file);
        let error = view.error.clone().expect("a JSON error");
        assert_eq!(error.line, 2, "past the last line");
        let rows = view.rows(&file, 0, 5, 40, theme);
        let last = rows[0].spans.last().unwrap();
        assert_eq!(last.content, " ", "a block after the last line's end");
        assert!(last.style.add_modifier.contains(Modifier::REVERSED));
        assert_eq!(rows[0].spans[0].style.fg, Some(theme.error));
    }
}
