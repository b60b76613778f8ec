//! The selected sample, parsed once when the selection changes: its text
//! fields with the role each speaks for, its files (multi-file samples), or
//! the raw text and the error of a record that does not parse. The cursor
//! over fields and files, and the wrapping shared by drawing and scrolling.
//! Of a huge record it keeps only what `bounds` lets the views show; the
//! parsed value keeps the whole, for editing.

use super::bounds::{self, FIELD_BYTES, FIELDS, FILE_BYTES, RECORD_BYTES};
use super::files::{self, CodeFile, TreeRow};
use crate::data::Format;
use crate::data::parse::{SyntaxProblem, parse_record};
use crate::data::read::{join_index, join_key};
use crate::data::sample::{Role, Sample};
use crate::data::store::Store;
use ratatui::text::Line;
use serde_json::Value;

/// A string anywhere in the record (file contents aside).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// JSON pointer, for writing it back.
    pub pointer: String,
    /// JSON path as validation names it, e.g. `messages[1].content`.
    pub label: String,
    pub role: Option<Role>,
    /// The text shown: all of it, or its first `FIELD_BYTES` (less when the
    /// record's budget runs out).
    pub text: String,
    /// The whole text's length in bytes.
    pub len: usize,
}

impl Field {
    pub fn is_cut(&self) -> bool {
        self.text.len() < self.len
    }
}

/// What is left of a record's display budget while its fields are collected.
struct Budget {
    bytes: usize,
    fields: usize,
    /// Fields past the count, not listed.
    omitted: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            bytes: RECORD_BYTES,
            fields: FIELDS,
            omitted: 0,
        }
    }
}

/// What the cursor in the sample can rest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Field(usize),
    File(usize),
}

#[derive(Debug)]
pub struct Selected {
    pub record: usize,
    /// The record's length in bytes.
    pub bytes: usize,
    /// The text of a record that does not parse (at most `FILE_BYTES`).
    pub raw: String,
    pub value: Option<Value>,
    pub format: Option<Format>,
    pub sample: Option<Sample>,
    pub syntax: Option<SyntaxProblem>,
    pub fields: Vec<Field>,
    pub files: Vec<CodeFile>,
    pub tree: Vec<TreeRow>,
    /// String fields past `FIELDS`, not listed.
    pub omitted_fields: usize,
    /// Fields, then files in tree order.
    pub items: Vec<Item>,
    pub item: usize,
    /// The file on show.
    pub file: Option<usize>,
    /// Its first lines, highlighted (the rest is drawn plain).
    pub code: Vec<Line<'static>>,
    /// Lines of the code view: the shown content's, and one saying what was
    /// cut.
    pub code_lines: usize,
    /// Tokens per file, once a worker counted them (`None`: over the
    /// counting budget).
    pub file_tokens: Option<Vec<Option<usize>>>,
    /// First line of the content on screen.
    pub scroll: u16,
    /// First line on screen of the fields above a multi-file sample's files
    /// (`scroll` is its code's).
    pub field_scroll: u16,
}

impl Selected {
    pub fn load(store: &Store, record: usize, file_format: Option<Format>) -> Selected {
        let bytes = store
            .raw(record)
            .unwrap_or_else(|e| e.to_string().into_bytes());
        let parsed = parse_record(&bytes, file_format, None);
        let raw = match parsed.syntax {
            Some(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(FILE_BYTES)]).into_owned(),
            None => String::new(),
        };
        let mut budget = Budget::default();
        let (fields, files) = match &parsed.value {
            Some(value) => {
                let mut fields = Vec::new();
                let skip = (parsed.format == Some(Format::MultiFile)).then_some("/output/files");
                walk(value, "", "", None, skip, &mut budget, &mut fields);
                let files = if skip.is_some() {
                    files::code_files(value)
                } else {
                    Vec::new()
                };
                (fields, files)
            }
            None => (Vec::new(), Vec::new()),
        };
        let tree = files::tree(&files);
        let mut items: Vec<Item> = (0..fields.len()).map(Item::Field).collect();
        items.extend(tree.iter().filter_map(|r| r.file).map(Item::File));
        let file = files::first_file(&files, &tree);
        Selected {
            record,
            bytes: bytes.len(),
            raw,
            value: parsed.value,
            format: parsed.format,
            sample: parsed.sample,
            syntax: parsed.syntax,
            fields,
            files,
            tree,
            omitted_fields: budget.omitted,
            items,
            item: 0,
            file,
            code: Vec::new(),
            code_lines: 0,
            file_tokens: None,
            scroll: 0,
            field_scroll: 0,
        }
    }

    /// Whether the views show only part of the record.
    pub fn is_cut(&self) -> bool {
        self.omitted_fields > 0
            || self.raw.len() < self.bytes && self.syntax.is_some()
            || self.fields.iter().any(Field::is_cut)
            || self.files.iter().any(CodeFile::is_cut)
    }

    /// Keeps the cursor and scroll of the same record loaded before an edit.
    pub fn keep_view(&mut self, old: &Selected) {
        if old.record != self.record {
            return;
        }
        self.item = old.item.min(self.items.len().saturating_sub(1));
        self.scroll = old.scroll;
        self.field_scroll = old.field_scroll;
        if let Some(file) = old.file.filter(|&f| f < self.files.len()) {
            self.file = Some(file);
        }
    }

    pub fn current(&self) -> Option<Item> {
        self.items.get(self.item).copied()
    }

    pub fn is_multifile(&self) -> bool {
        !self.files.is_empty() || self.format == Some(Format::MultiFile)
    }

    /// Moves the cursor; returns whether another file is now on show.
    pub fn move_item(&mut self, delta: isize) -> bool {
        let last = self.items.len().saturating_sub(1) as isize;
        self.item = (self.item as isize + delta).clamp(0, last.max(0)) as usize;
        self.show_current_file()
    }

    /// Puts the cursor on `item`; returns whether another file is on show.
    pub fn select_item(&mut self, item: Item) -> bool {
        if let Some(i) = self.items.iter().position(|&it| it == item) {
            self.item = i;
        }
        self.show_current_file()
    }

    fn show_current_file(&mut self) -> bool {
        match self.current() {
            Some(Item::File(f)) if self.file != Some(f) => {
                self.file = Some(f);
                self.scroll = 0;
                true
            }
            _ => false,
        }
    }

    /// Scrolls the fields above a multi-file sample's files, `height` rows
    /// of `width`, so the field under the cursor is in view: its header, and
    /// as much of its text as fits.
    pub fn follow_field(&mut self, width: usize, height: usize) {
        let Some(Item::Field(i)) = self.current() else {
            return;
        };
        if width == 0 || height == 0 {
            return;
        }
        let (rows, starts) = field_layout(&self.fields, width);
        let start = starts[i];
        let end = start + 1 + rows[i];
        let top = self.field_scroll as usize;
        let top = if start < top {
            start
        } else if end > top + height {
            start.min(end - height)
        } else {
            top
        };
        self.field_scroll = top.min(u16::MAX as usize) as u16;
    }

    /// Scrolls the fields of a multi-file sample by `step` lines, not past
    /// the last screenful.
    pub fn scroll_fields(&mut self, step: isize, width: usize, height: usize) {
        let max = field_lines_total(&self.fields, width).saturating_sub(height);
        let max = max.min(u16::MAX as usize) as isize;
        self.field_scroll = (self.field_scroll as isize + step).clamp(0, max) as u16;
    }

    /// The first tree row on screen with `height` rows: the file on show
    /// stays visible.
    pub fn tree_offset(&self, height: usize) -> usize {
        let row = self
            .tree
            .iter()
            .position(|r| r.file.is_some() && r.file == self.file)
            .unwrap_or(0);
        super::list::Cursor {
            pos: row,
            offset: 0,
        }
        .visible_offset(height)
    }

    /// The size in bytes of what `e` edits: the file or field under the
    /// cursor.
    pub fn edit_len(&self) -> Option<usize> {
        match self.current()? {
            Item::Field(i) => Some(self.fields[i].len),
            Item::File(i) => Some(self.files[i].len),
        }
    }

    /// The pointer, label and whole text of what `e` edits: the file or
    /// field under the cursor (from the parsed record: the view may hold
    /// only part of it).
    pub fn edit_target(&self) -> Option<(String, String, String)> {
        let (pointer, label) = match self.current()? {
            Item::Field(i) => {
                let f = &self.fields[i];
                (f.pointer.clone(), f.label.clone())
            }
            Item::File(i) => {
                let f = &self.files[i];
                let pointer = format!("/output/files/{}", escape_pointer(&f.path));
                (pointer, f.path.clone())
            }
        };
        let text = match self.value.as_ref()?.pointer(&pointer)? {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some((pointer, label, text))
    }
}

/// Collects every string of `value` with its pointer, path and role.
fn walk(
    value: &Value,
    label: &str,
    pointer: &str,
    role: Option<Role>,
    skip: Option<&str>,
    budget: &mut Budget,
    out: &mut Vec<Field>,
) {
    if skip == Some(pointer) {
        return;
    }
    match value {
        Value::Object(obj) => {
            let speaker = ["role", "from"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(Value::as_str))
                .and_then(role_named);
            let here = speaker.or(role);
            for (key, child) in obj {
                if speaker.is_some() && (key == "role" || key == "from") {
                    continue;
                }
                let child_role = if speaker.is_some() {
                    here
                } else {
                    key_role(key).or(here)
                };
                let child_pointer = format!("{pointer}/{}", escape_pointer(key));
                walk(
                    child,
                    &join_key(label, key),
                    &child_pointer,
                    child_role,
                    skip,
                    budget,
                    out,
                );
            }
        }
        Value::Array(items) => {
            let pairs = label.ends_with("history");
            for (i, child) in items.iter().enumerate() {
                let child_label = join_index(label, i);
                let child_role = if label.contains("history[") && label.ends_with(']') {
                    Some(if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    })
                } else if pairs {
                    None
                } else {
                    role
                };
                walk(
                    child,
                    &child_label,
                    &format!("{pointer}/{i}"),
                    child_role,
                    skip,
                    budget,
                    out,
                );
            }
        }
        Value::String(text) => {
            if budget.fields == 0 {
                budget.omitted += 1;
                return;
            }
            budget.fields -= 1;
            let shown = bounds::cut(text, FIELD_BYTES.min(budget.bytes));
            budget.bytes -= shown.len();
            out.push(Field {
                pointer: pointer.to_string(),
                label: label.to_string(),
                role,
                text: shown.to_string(),
                len: text.len(),
            });
        }
        _ => {}
    }
}

fn role_named(name: &str) -> Option<Role> {
    match name {
        "user" | "human" => Some(Role::User),
        "assistant" | "gpt" | "model" | "bot" | "function_call" => Some(Role::Assistant),
        "system" => Some(Role::System),
        "tool" | "observation" | "function" => Some(Role::Tool),
        _ => None,
    }
}

/// The role a field speaks for by its name in the common formats.
fn key_role(key: &str) -> Option<Role> {
    match key {
        "system" => Some(Role::System),
        "prompt" | "instruction" | "input" | "question" => Some(Role::User),
        "completion" | "output" | "response" | "answer" | "chosen" | "rejected" => {
            Some(Role::Assistant)
        }
        _ => None,
    }
}

/// A key as one step of a JSON pointer (RFC 6901).
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// How many lines `wrap_window` makes of `text`, counted without building
/// them.
pub fn wrapped_len(text: &str, width: usize) -> usize {
    let width = width.max(1);
    text.split('\n').map(|line| line_rows(line, width)).sum()
}

/// Rows one line of text takes at `width`.
fn line_rows(line: &str, width: usize) -> usize {
    let line = line.trim_end_matches('\r');
    let chars: usize = line.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum();
    chars.div_ceil(width).max(1)
}

/// Lines `skip..skip + take` of `text` cut into lines of at most `width`
/// characters (tabs as 4 spaces), building only those.
pub fn wrap_window(text: &str, width: usize, skip: usize, take: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut row = 0;
    for line in text.split('\n') {
        if out.len() >= take {
            break;
        }
        let rows = line_rows(line, width);
        if row + rows <= skip {
            row += rows;
            continue;
        }
        let line = line.trim_end_matches('\r').replace('\t', "    ");
        let chars: Vec<char> = line.chars().collect();
        let pieces: Vec<String> = if chars.is_empty() {
            vec![String::new()]
        } else {
            chars.chunks(width).map(|c| c.iter().collect()).collect()
        };
        let from = skip.saturating_sub(row);
        out.extend(pieces.into_iter().skip(from).take(take - out.len()));
        row += rows;
    }
    out
}

/// Rows of a field's text: the text wrapped, and a line saying what was
/// cut.
pub fn field_rows(field: &Field, width: usize) -> usize {
    wrapped_len(&field.text, width) + usize::from(field.is_cut())
}

/// Each field's rows at `width`, and the line its header is on (header,
/// rows, blank line between fields).
pub fn field_layout(fields: &[Field], width: usize) -> (Vec<usize>, Vec<usize>) {
    let mut starts = Vec::with_capacity(fields.len());
    let mut rows = Vec::with_capacity(fields.len());
    let mut line = 0;
    for field in fields {
        starts.push(line);
        let n = field_rows(field, width);
        line += 2 + n;
        rows.push(n);
    }
    (rows, starts)
}

/// How many lines the fields take at `width` (as `field_layout` lays them
/// out, a blank line after each).
pub fn field_lines_total(fields: &[Field], width: usize) -> usize {
    fields.iter().map(|f| field_rows(f, width) + 2).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(value: Value, skip: Option<&str>) -> Vec<(String, String, Option<Role>)> {
        let mut out = Vec::new();
        walk(&value, "", "", None, skip, &mut Budget::default(), &mut out);
        out.into_iter()
            .map(|f| (f.pointer, f.label, f.role))
            .collect()
    }

    #[test]
    fn fields_know_their_roles() {
        let chat = json!({"messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"}]});
        assert_eq!(
            fields_of(chat, None),
            vec![
                (
                    "/messages/0/content".into(),
                    "messages[0].content".into(),
                    Some(Role::System)
                ),
                (
                    "/messages/1/content".into(),
                    "messages[1].content".into(),
                    Some(Role::User)
                ),
                (
                    "/messages/2/content".into(),
                    "messages[2].content".into(),
                    Some(Role::Assistant)
                ),
            ]
        );
        let alpaca = json!({"instruction": "i", "output": "o", "history": [["u", "a"]]});
        let roles: Vec<_> = fields_of(alpaca, None).into_iter().map(|f| f.2).collect();
        assert_eq!(
            roles,
            vec![
                Some(Role::User),
                Some(Role::Assistant),
                Some(Role::User),
                Some(Role::Assistant)
            ]
        );
        let code = json!({"prompt": "p", "output": {"files": {"a/b.py": "x"}, "note": "n"}});
        let labels: Vec<_> = fields_of(code, Some("/output/files"))
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(labels, vec!["prompt", "output.note"]);
    }

    fn wrap(text: &str, width: usize) -> Vec<String> {
        wrap_window(text, width, 0, usize::MAX)
    }

    #[test]
    fn wrapping_counts_lines() {
        assert_eq!(wrap("abcde\n\nxy", 2), vec!["ab", "cd", "e", "", "xy"]);
        let fields = vec![
            Field {
                pointer: String::new(),
                label: String::new(),
                role: None,
                text: "abcd".into(),
                len: 4,
            };
            2
        ];
        assert_eq!(field_layout(&fields, 2).1, vec![0, 4]);
        let text = "abcde\n\tx\r\n\nlong line here";
        for width in 1..8 {
            let all = wrap(text, width);
            assert_eq!(wrapped_len(text, width), all.len());
            for skip in 0..=all.len() {
                for take in 0..4 {
                    let end = (skip + take).min(all.len());
                    assert_eq!(wrap_window(text, width, skip, take), all[skip..end]);
                }
            }
        }
    }

    #[test]
    fn a_huge_record_keeps_a_bounded_part_of_each_field() {
        let huge = "x".repeat(3 * FIELD_BYTES);
        let mut many: Vec<Value> = vec![json!({"role": "user", "content": huge})];
        many.extend((0..FIELDS).map(|i| json!({"role": "assistant", "content": format!("m{i}")})));
        let mut budget = Budget::default();
        let mut out = Vec::new();
        walk(
            &json!({"messages": many}),
            "",
            "",
            None,
            None,
            &mut budget,
            &mut out,
        );
        assert_eq!(out.len(), FIELDS);
        assert_eq!(budget.omitted, 1);
        assert_eq!(
            (out[0].text.len(), out[0].len),
            (FIELD_BYTES, 3 * FIELD_BYTES)
        );
        assert!(out[0].is_cut() && !out[1].is_cut());
        // Four huge fields use up the record's budget; later ones show nothing.
        let fields: Vec<Value> = (0..6).map(|_| json!(huge)).collect();
        let mut out = Vec::new();
        walk(
            &json!(fields),
            "",
            "",
            None,
            None,
            &mut Budget::default(),
            &mut out,
        );
        let shown: usize = out.iter().map(|f| f.text.len()).sum();
        assert_eq!(shown, RECORD_BYTES);
        assert_eq!(out[5].text, "");
    }
}
