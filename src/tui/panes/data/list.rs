//! The sample list: which records it shows (all of them, or a filter's
//! matches), a cursor with the first row on screen, and the one-line summary
//! of a row, parsed from the store only for the rows on screen (and only
//! the head of a huge record).

use super::bounds::{self, ROW_BYTES};
use super::head;
use crate::data::Format;
use crate::data::parse::parse_json;
use crate::data::store::Store;
use serde_json::Value;

/// A cursor over a list, and the first row on screen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub pos: usize,
    pub offset: usize,
}

impl Cursor {
    /// Moves by `delta` rows, staying inside a list of `len`.
    pub fn move_by(&mut self, delta: isize, len: usize) {
        let last = len.saturating_sub(1) as isize;
        self.pos = (self.pos as isize + delta).clamp(0, last.max(0)) as usize;
    }

    pub fn set(&mut self, pos: usize, len: usize) {
        self.pos = pos.min(len.saturating_sub(1));
    }

    /// Scrolls so the cursor is among `height` rows on screen (0: not
    /// drawn yet, the first drawing places it).
    pub fn follow(&mut self, height: usize) {
        if height > 0 {
            self.offset = self.visible_offset(height);
        }
    }

    /// The first row on screen with `height` rows (render uses this, so a
    /// resize never hides the cursor).
    pub fn visible_offset(&self, height: usize) -> usize {
        let height = height.max(1);
        if self.pos < self.offset {
            self.pos
        } else if self.pos >= self.offset + height {
            self.pos + 1 - height
        } else {
            self.offset
        }
    }
}

/// Which records the list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    All,
    /// Record indices, ascending.
    Matches(Vec<usize>),
}

impl Rows {
    pub fn len(&self, records: usize) -> usize {
        match self {
            Rows::All => records,
            Rows::Matches(m) => m.len(),
        }
    }

    pub fn record(&self, pos: usize, records: usize) -> Option<usize> {
        match self {
            Rows::All => (pos < records).then_some(pos),
            Rows::Matches(m) => m.get(pos).copied(),
        }
    }

    pub fn position(&self, record: usize) -> Option<usize> {
        match self {
            Rows::All => Some(record),
            Rows::Matches(m) => m.binary_search(&record).ok(),
        }
    }

    /// Adds a record to the matches (kept sorted, no duplicates).
    pub fn include(&mut self, record: usize) {
        if let Rows::Matches(m) = self
            && let Err(at) = m.binary_search(&record)
        {
            m.insert(at, record);
        }
    }

    /// A record was inserted at `at`: later ones move down, and the new one
    /// is shown (a user who adds a sample wants to see it).
    pub fn inserted(&mut self, at: usize) {
        if let Rows::Matches(m) = self {
            on_insert(m, at, |r| r);
            self.include(at);
        }
    }

    pub fn removed(&mut self, at: usize) {
        if let Rows::Matches(m) = self {
            on_remove(m, at, |r| r);
        }
    }
}

/// Record indices held in `items` after a record was inserted at `at`.
pub fn on_insert<T>(items: &mut [T], at: usize, record: impl Fn(&mut T) -> &mut usize) {
    for item in items {
        let r = record(item);
        if *r >= at {
            *r += 1;
        }
    }
}

/// Record indices held in `items` after record `at` was removed; items of
/// the removed record go.
pub fn on_remove<T>(items: &mut Vec<T>, at: usize, record: impl Fn(&mut T) -> &mut usize) {
    items.retain_mut(|item| *record(item) != at);
    for item in items {
        let r = record(item);
        if *r > at {
            *r -= 1;
        }
    }
}

/// What a row of the list shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSummary {
    pub line: Option<usize>,
    pub kind: &'static str,
    pub preview: String,
    pub broken: bool,
}

/// Reads and summarises one record; never fails (a read error is the preview).
pub fn summarize(store: &Store, record: usize) -> RowSummary {
    let line = store.line(record);
    let (bytes, len) = match store.raw_head(record, ROW_BYTES) {
        Ok(read) => read,
        Err(e) => {
            return RowSummary {
                line,
                kind: "err",
                preview: format!("cannot read: {e}"),
                broken: true,
            };
        }
    };
    if len > bytes.len() {
        return summarize_head(line, &bytes, len);
    }
    match parse_json(&bytes) {
        Err(problem) => RowSummary {
            line,
            kind: "bad",
            preview: problem.message,
            broken: true,
        },
        Ok(value) => summary_of(line, &value, ""),
    }
}

/// A record of `len` bytes known by its first bytes: its shape and first
/// request as far as the head shows them, after its size.
fn summarize_head(line: Option<usize>, head: &[u8], len: usize) -> RowSummary {
    let size = format!("[{}] ", bounds::size(len));
    match head::close(head).and_then(|json| parse_json(&json).ok()) {
        Some(value) => summary_of(line, &value, &size),
        None => RowSummary {
            line,
            kind: "?",
            preview: format!("{size}{}", bounds::too_large(len)),
            broken: false,
        },
    }
}

fn summary_of(line: Option<usize>, value: &Value, before: &str) -> RowSummary {
    let format = Format::detect(value);
    RowSummary {
        line,
        kind: short_name(format),
        preview: format!("{before}{}", one_line(&preview(value, format), 160)),
        broken: false,
    }
}

pub fn short_name(format: Option<Format>) -> &'static str {
    match format {
        Some(Format::Text) => "text",
        Some(Format::Completion) => "cmpl",
        Some(Format::Chat) => "chat",
        Some(Format::Alpaca) => "alpc",
        Some(Format::ShareGpt) => "sgpt",
        Some(Format::MultiFile) => "code",
        Some(Format::Preference) => "pref",
        None => "?",
    }
}

/// The text that best names a record: its first request.
fn preview(value: &Value, format: Option<Format>) -> String {
    let first_turn = |key: &str, speaker: &str, asks: &[&str], text: &str| {
        let turns = value.get(key)?.as_array()?;
        let turn = turns
            .iter()
            .find(|t| {
                t.get(speaker)
                    .and_then(Value::as_str)
                    .is_some_and(|r| asks.contains(&r))
            })
            .or_else(|| turns.first())?;
        turn.get(text).map(text_of)
    };
    let field = |key: &str| value.get(key).map(text_of);
    let found = match format {
        Some(Format::Chat) => first_turn("messages", "role", &["user"], "content"),
        Some(Format::ShareGpt) => first_turn("conversations", "from", &["human", "user"], "value"),
        Some(Format::Alpaca) => field("instruction"),
        Some(Format::Text) => field("text"),
        Some(_) => field("prompt"),
        None => None,
    };
    found.unwrap_or_else(|| match value.as_object() {
        Some(obj) => {
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            format!("{{{}}}", keys.join(", "))
        }
        None => value.to_string(),
    })
}

/// A string's text; a list of content parts joined; anything else as JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("text") {
                Some(Value::String(s)) => s.clone(),
                _ => text_of(p),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The first `max` characters with every run of whitespace one space.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in text.chars() {
        if out.chars().count() >= max {
            break;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_clamps_and_follows() {
        let mut c = Cursor::default();
        c.move_by(-3, 10);
        assert_eq!(c.pos, 0);
        c.move_by(25, 10);
        assert_eq!(c.pos, 9);
        c.follow(4);
        assert_eq!(c.offset, 6);
        c.move_by(-9, 10);
        assert_eq!(c.visible_offset(4), 0);
        c.move_by(0, 0);
        assert_eq!(c.pos, 0);
    }

    #[test]
    fn matches_shift_with_inserts_and_removals() {
        let mut rows = Rows::Matches(vec![1, 4, 7]);
        rows.inserted(4);
        assert_eq!(rows, Rows::Matches(vec![1, 4, 5, 8]));
        rows.removed(5);
        assert_eq!(rows, Rows::Matches(vec![1, 4, 7]));
        assert_eq!(rows.position(7), Some(2));
        assert_eq!(rows.record(3, 100), None);
        assert_eq!(Rows::All.record(3, 4), Some(3));
    }

    #[test]
    fn a_huge_row_is_summarised_from_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        // 100 KB, over `ROW_BYTES`.
        let message = "word ".repeat(20_000);
        let record = serde_json::json!({"messages": [
            {"role": "user", "content": format!("Explain this {message}")},
            {"role": "assistant", "content": "ok"}]});
        // The record's end is damaged: a row that parsed it whole would
        // say so; one that reads only its head cannot know.
        let text = record.to_string();
        let damaged = &text[..text.len() - 3];
        std::fs::write(&path, format!("{damaged}\n{{\"text\": \"small\"}}\n")).unwrap();
        let store = Store::open(&path).unwrap();
        let row = summarize(&store, 0);
        assert_eq!(row.kind, "chat");
        assert!(
            row.preview.starts_with("[100.1 KB] Explain this word word"),
            "{}",
            row.preview
        );
        assert!(!row.broken);
        let small = summarize(&store, 1);
        assert_eq!((small.kind, small.preview.as_str()), ("text", "small"));
    }

    #[test]
    fn one_line_collapses_whitespace() {
        assert_eq!(one_line("  a\n\n b\tc  ", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc");
    }
}
