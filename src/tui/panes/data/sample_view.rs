//! The selected sample, parsed once when the selection changes: its text
//! fields with the role each speaks for, its files (multi-file samples), or
//! the raw text and the error of a record that does not parse. The cursor
//! over fields and files, and the wrapping shared by drawing and scrolling.

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
    pub text: String,
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
    pub raw: String,
    pub value: Option<Value>,
    pub format: Option<Format>,
    pub sample: Option<Sample>,
    pub syntax: Option<SyntaxProblem>,
    pub fields: Vec<Field>,
    pub files: Vec<CodeFile>,
    pub tree: Vec<TreeRow>,
    /// Fields, then files in tree order.
    pub items: Vec<Item>,
    pub item: usize,
    /// The file on show.
    pub file: Option<usize>,
    /// Its highlighted lines.
    pub code: Vec<Line<'static>>,
    /// Tokens per file, once a worker counted them.
    pub file_tokens: Option<Vec<usize>>,
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
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let (fields, files) = match &parsed.value {
            Some(value) => {
                let mut fields = Vec::new();
                let skip = (parsed.format == Some(Format::MultiFile)).then_some("/output/files");
                walk(value, "", "", None, skip, &mut fields);
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
            raw,
            value: parsed.value,
            format: parsed.format,
            sample: parsed.sample,
            syntax: parsed.syntax,
            fields,
            files,
            tree,
            items,
            item: 0,
            file,
            code: Vec::new(),
            file_tokens: None,
            scroll: 0,
            field_scroll: 0,
        }
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
        let (wrapped, starts) = field_layout(&self.fields, width);
        let start = starts[i];
        let end = start + 1 + wrapped[i].len();
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

    /// The pointer and label of what `e` edits: the file or field under the
    /// cursor.
    pub fn edit_target(&self) -> Option<(String, String, String)> {
        match self.current()? {
            Item::Field(i) => {
                let f = &self.fields[i];
                Some((f.pointer.clone(), f.label.clone(), f.text.clone()))
            }
            Item::File(i) => {
                let f = &self.files[i];
                Some((
                    format!("/output/files/{}", escape_pointer(&f.path)),
                    f.path.clone(),
                    f.content.clone(),
                ))
            }
        }
    }
}

/// Collects every string of `value` with its pointer, path and role.
fn walk(
    value: &Value,
    label: &str,
    pointer: &str,
    role: Option<Role>,
    skip: Option<&str>,
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
                    out,
                );
            }
        }
        Value::String(text) => out.push(Field {
            pointer: pointer.to_string(),
            label: label.to_string(),
            role,
            text: text.clone(),
        }),
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

/// `text` cut into lines of at most `width` characters (tabs as 4 spaces).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r').replace('\t', "    ");
        let chars: Vec<char> = line.chars().collect();
        if chars.is_empty() {
            out.push(String::new());
        }
        for chunk in chars.chunks(width) {
            out.push(chunk.iter().collect());
        }
    }
    out
}

/// Each field's text wrapped to `width`, and the line its header is on
/// (header, text, blank line between fields).
pub fn field_layout(fields: &[Field], width: usize) -> (Vec<Vec<String>>, Vec<usize>) {
    let mut starts = Vec::with_capacity(fields.len());
    let mut wrapped = Vec::with_capacity(fields.len());
    let mut line = 0;
    for field in fields {
        starts.push(line);
        let text = wrap(&field.text, width);
        line += 2 + text.len();
        wrapped.push(text);
    }
    (wrapped, starts)
}

/// How many lines the fields take at `width` (as `field_layout` lays them
/// out, a blank line after each).
pub fn field_lines_total(fields: &[Field], width: usize) -> usize {
    let (wrapped, _) = field_layout(fields, width);
    wrapped.iter().map(|w| w.len() + 2).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(value: Value, skip: Option<&str>) -> Vec<(String, String, Option<Role>)> {
        let mut out = Vec::new();
        walk(&value, "", "", None, skip, &mut out);
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

    #[test]
    fn wrapping_counts_lines() {
        assert_eq!(wrap("abcde\n\nxy", 2), vec!["ab", "cd", "e", "", "xy"]);
        let fields = vec![
            Field {
                pointer: String::new(),
                label: String::new(),
                role: None,
                text: "abcd".into(),
            };
            2
        ];
        assert_eq!(field_layout(&fields, 2).1, vec![0, 4]);
    }
}
