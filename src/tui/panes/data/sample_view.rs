//! The selected sample, parsed once when the selection changes: its text
//! fields with the role each speaks for, its files (multi-file samples), or
//! the raw text and the error of a record that does not parse. The cursor
//! over fields and files, and the fields' layout shared by drawing and
//! scrolling.
//! Of a huge record it keeps only what `bounds` lets the views show; the
//! parsed value keeps the whole, for editing.

use super::bounds::FILE_BYTES;
use super::code_view::CodeView;
use super::editor::Target;
use super::files::{self, CodeFile, TreeRow};
pub use super::record_fields::Field;
use super::record_fields::{self, escape_pointer};
pub use super::wrap::{wrap_window, wrapped_len};
use crate::data::Format;
use crate::data::parse::{SyntaxProblem, parse_record};
use crate::data::sample::Sample;
use crate::data::store::Store;
use serde_json::Value;

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
    /// Its view: coloured lines, sideways scroll, syntax error.
    pub code: CodeView,
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
        let ((fields, omitted_fields), files) = match &parsed.value {
            Some(value) => {
                let skip = (parsed.format == Some(Format::MultiFile)).then_some("/output/files");
                let files = if skip.is_some() {
                    files::code_files(value)
                } else {
                    Vec::new()
                };
                (record_fields::collect(value, skip), files)
            }
            None => ((Vec::new(), 0), Vec::new()),
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
            omitted_fields,
            items,
            item: 0,
            file,
            code: CodeView::default(),
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
        self.code.column = old.code.column;
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
                self.code.column = 0;
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

    /// What `e` edits, its label and its whole text: the file or field
    /// under the cursor (from the parsed record: the view may hold only
    /// part of it); a list one item per line.
    pub fn edit_target(&self) -> Option<(Target, String, String)> {
        let (target, label) = match self.current()? {
            Item::Field(i) => {
                let f = &self.fields[i];
                let pointer = f.pointer.clone();
                match f.list {
                    Some(_) => (
                        Target::List { pointer },
                        format!("{} (one item per line)", f.label),
                    ),
                    None => (Target::Field { pointer }, f.label.clone()),
                }
            }
            Item::File(i) => {
                let f = &self.files[i];
                let pointer = format!("/output/files/{}", escape_pointer(&f.path));
                (Target::Field { pointer }, f.path.clone())
            }
        };
        let text = match self.value.as_ref()?.pointer(target.pointer()?)? {
            Value::String(s) => s.clone(),
            Value::Array(items) if matches!(target, Target::List { .. }) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        };
        Some((target, label, text))
    }
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

    #[test]
    fn fields_are_laid_out_one_after_another() {
        let fields = vec![
            Field {
                pointer: String::new(),
                label: String::new(),
                role: None,
                text: "abcd".into(),
                len: 4,
                list: None,
            };
            2
        ];
        assert_eq!(field_layout(&fields, 2).1, vec![0, 4]);
    }
}
