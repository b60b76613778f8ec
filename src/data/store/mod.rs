//! A dataset file opened for browsing and editing.
//!
//! Opening builds a byte-offset [`Index`] of the records and parses nothing;
//! records are read and parsed on demand. Edits, insertions and deletions are
//! an overlay on the untouched file. Saving writes the whole file atomically,
//! copying every untouched record and the bytes between records verbatim, so
//! line endings, blank lines, key order and escapes survive.
//!
//! The file is another program's too: a save first checks that the file on
//! disk is still the one indexed ([`disk`]) and refuses if not; [`reload`]
//! then re-applies the pending changes to the file as it is now.

mod atomic;
mod blocks;
mod digest;
mod disk;
mod index;
mod reload;
mod save;
mod sniff;
mod style;
mod writer;

pub use atomic::atomic_write;
pub use blocks::BlockReader;
pub use disk::{DiskChange, same_file};
pub use index::{ArrayError, Index, Layout, trim_record};
pub use reload::{Reloaded, Unmatched, UnmatchedKind};
pub use save::SaveOptions;
use sniff::Sniffed;
pub use writer::RecordWriter;

use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Malformed {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: more than {} records; split the file first", u32::MAX >> 1)]
    TooLarge { path: PathBuf },
    #[error("{path}: {what}, not a dataset file; give a .jsonl or .json file")]
    NotAFile { path: PathBuf, what: &'static str },
    #[error(
        "{path}: UTF-16 file{}; convert it to UTF-8, e.g. `iconv -f {encoding} -t UTF-8 FILE > FILE.utf8`",
        if *bom { "" } else { " (no byte-order mark)" }
    )]
    Utf16 {
        path: PathBuf,
        encoding: &'static str,
        bom: bool,
    },
    #[error("{path}: binary file, not JSON Lines (a NUL byte at offset {offset})")]
    Binary { path: PathBuf, offset: usize },
    #[error(
        "{path} changed on disk since it was opened ({change}); nothing was written: \
         reload it (your changes are kept), save under another name, or overwrite it"
    )]
    Changed { path: PathBuf, change: DiskChange },
    #[error(
        "{path} was rewritten in place since it was opened, so the records you did not \
         edit can only be read from the new file: reload it (your changes are kept)"
    )]
    SourceRewritten { path: PathBuf },
    #[error("{path} is read-only (mode {mode:03o}); nothing was written")]
    ReadOnly { path: PathBuf, mode: u32 },
    #[error("{path} already exists; choose another name")]
    Exists { path: PathBuf },
}

/// Row ids at or above this are records added since opening.
const ADDED: u32 = 1 << 31;

pub struct Store {
    path: PathBuf,
    file: File,
    layout: Layout,
    index: Index,
    /// Document order after structural edits; `None` while it is the original.
    rows: Option<Vec<u32>>,
    edits: HashMap<u32, String>,
    /// The bytes on disk of each record edited or removed, as first read:
    /// what a reload matches against the file as it is now.
    originals: HashMap<u32, Vec<u8>>,
    added: Vec<String>,
    /// What goes between records the store writes itself.
    separator: String,
    /// Indentation of records inside a pretty-printed array.
    indent: String,
    /// How one-line records space their separators.
    spacing: style::Spacing,
    dirty: bool,
    /// What the file was when indexed.
    stamp: disk::Stamp,
}

/// One record handed to [`Store::visit`].
pub struct RecordRef<'a> {
    /// Position in the document (0-based).
    pub index: usize,
    /// 1-based line in the file on disk; `None` for records added since.
    pub line: Option<usize>,
    pub bytes: &'a [u8],
}

impl Store {
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        refuse_special_file(&path)?;
        let file = File::open(&path).map_err(io_err)?;
        // Taken before indexing: a change while indexing then shows up as a
        // difference from the stamp.
        let meta = file.metadata().map_err(io_err)?;
        let mut separator = String::new();
        let mut indent = String::new();
        let malformed = |e: ArrayError| StoreError::Malformed {
            path: path.clone(),
            line: e.line,
            column: e.column,
            message: e.message,
        };
        let (layout, index) = match sniff::sniff(&file).map_err(io_err)? {
            Sniffed::Utf16 { big_endian, bom } => {
                let encoding = match (bom, big_endian) {
                    (true, _) => "UTF-16",
                    (false, true) => "UTF-16BE",
                    (false, false) => "UTF-16LE",
                };
                return Err(StoreError::Utf16 {
                    path,
                    encoding,
                    bom,
                });
            }
            Sniffed::Binary { offset } => return Err(StoreError::Binary { path, offset }),
            Sniffed::JsonLines => (
                Layout::JsonLines,
                index::index_lines(&file).map_err(io_err)?,
            ),
            Sniffed::JsonArray => {
                let bytes = std::fs::read(&path).map_err(io_err)?;
                let index = index::index_array(&bytes).map_err(malformed)?;
                (separator, indent) = array_style(&bytes, &index);
                (Layout::JsonArray, index)
            }
            // Pretty-printed objects when they index as such; otherwise a
            // broken first line, which JSON Lines reports line by line.
            Sniffed::MultiLineValue => {
                let bytes = std::fs::read(&path).map_err(io_err)?;
                match index::index_values(&bytes) {
                    Ok(index) => (Layout::JsonValues, index),
                    Err(_) => (
                        Layout::JsonLines,
                        index::index_lines(&file).map_err(io_err)?,
                    ),
                }
            }
        };
        if index.len() >= ADDED as usize {
            return Err(StoreError::TooLarge { path });
        }
        if layout != Layout::JsonArray {
            separator = index.newline.to_string();
        }
        let stamp = disk::Stamp::new(&meta, index.content_hash);
        let mut store = Store {
            path,
            file,
            layout,
            index,
            rows: None,
            edits: HashMap::new(),
            originals: HashMap::new(),
            added: Vec::new(),
            separator,
            indent,
            spacing: style::Spacing::Compact,
            dirty: false,
            stamp,
        };
        if !store.is_empty() {
            let first = store.raw(0).map_err(|source| StoreError::Io {
                path: store.path.clone(),
                source,
            })?;
            store.spacing = style::Spacing::of(&first);
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn len(&self) -> usize {
        self.rows.as_ref().map_or(self.index.len(), Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether the file starts with a UTF-8 byte-order mark.
    pub fn has_bom(&self) -> bool {
        self.index.bom
    }

    /// Size of the file on disk in bytes.
    pub fn file_len(&self) -> u64 {
        self.index.file_len
    }

    fn row(&self, i: usize) -> u32 {
        self.rows.as_ref().map_or(i as u32, |rows| rows[i])
    }

    /// The 1-based line where record `i` starts on disk; `None` if it is new.
    pub fn line(&self, i: usize) -> Option<usize> {
        let row = self.row(i);
        (row < ADDED).then(|| self.index.line(row as usize))
    }

    /// The record's text as it stands (edited or on disk).
    pub fn raw(&self, i: usize) -> io::Result<Vec<u8>> {
        let row = self.row(i);
        if row >= ADDED {
            return Ok(self.added[(row - ADDED) as usize].as_bytes().to_vec());
        }
        if let Some(text) = self.edits.get(&row) {
            return Ok(text.as_bytes().to_vec());
        }
        self.disk_record(row)
    }

    /// Original record `row` as the file holds it.
    fn disk_record(&self, row: u32) -> io::Result<Vec<u8>> {
        let (start, end) = (
            self.index.starts[row as usize],
            self.index.region_end(row as usize),
        );
        let mut buf = vec![0u8; (end - start) as usize];
        let got = blocks::read_at_most(&self.file, &mut buf, start)?;
        buf.truncate(got);
        let keep = trim_record(&buf).0.len();
        buf.truncate(keep);
        Ok(buf)
    }

    /// At most the first `max` bytes of record `i`, and its length in bytes
    /// (for a long record on disk, with the separator after it), so a
    /// preview of a huge record reads only what it shows.
    pub fn raw_head(&self, i: usize, max: usize) -> io::Result<(Vec<u8>, usize)> {
        let row = self.row(i);
        let in_memory = if row >= ADDED {
            Some(&self.added[(row - ADDED) as usize])
        } else {
            self.edits.get(&row)
        };
        if let Some(text) = in_memory {
            let head = &text.as_bytes()[..text.len().min(max)];
            return Ok((head.to_vec(), text.len()));
        }
        let start = self.index.starts[row as usize];
        let len = (self.index.region_end(row as usize) - start) as usize;
        if len <= max {
            let whole = self.raw(i)?;
            let len = whole.len();
            return Ok((whole, len));
        }
        let mut buf = vec![0u8; max];
        let got = blocks::read_at_most(&self.file, &mut buf, start)?;
        buf.truncate(got);
        Ok((buf, len))
    }

    /// Parses record `i`.
    pub fn value(&self, i: usize) -> io::Result<Result<Value, serde_json::Error>> {
        Ok(serde_json::from_slice(&self.raw(i)?))
    }

    /// Replaces record `i` with `value`, written in the file's style.
    pub fn set_value(&mut self, i: usize, value: &Value) {
        let text = self.format_record(value);
        self.set_text(i, text);
    }

    /// Replaces record `i` with exactly `text` (which must hold no line break
    /// in a JSON Lines file); used to restore a record on undo.
    pub fn set_text(&mut self, i: usize, text: String) {
        let row = self.row(i);
        if row >= ADDED {
            self.added[(row - ADDED) as usize] = text;
        } else {
            self.remember_original(row);
            self.remember_anchor(i);
            // Back to the bytes on disk (an undo): no edit left to re-apply.
            match self.originals.get(&row) {
                Some(original) if original == text.as_bytes() => self.edits.remove(&row),
                _ => self.edits.insert(row, text),
            };
        }
        self.dirty = true;
    }

    /// Inserts a new record so that it becomes record `at`.
    pub fn insert_value(&mut self, at: usize, value: &Value) {
        let text = self.format_record(value);
        self.insert_text(at, text);
    }

    pub fn insert_text(&mut self, at: usize, text: String) {
        self.remember_anchor(at);
        let id = ADDED + self.added.len() as u32;
        self.added.push(text);
        self.rows_mut().insert(at, id);
        self.dirty = true;
    }

    /// Removes record `i`, returning its text so it can be put back.
    pub fn remove(&mut self, i: usize) -> io::Result<Vec<u8>> {
        let text = self.raw(i)?;
        let row = self.row(i);
        if row < ADDED {
            self.remember_original(row);
        }
        self.rows_mut().remove(i);
        self.dirty = true;
        Ok(text)
    }

    /// Remembers the original record before position `i`, which a reload
    /// places what is at `i` after.
    fn remember_anchor(&mut self, i: usize) {
        if let Some(before) = i.checked_sub(1).filter(|&b| b < self.len())
            && self.row(before) < ADDED
        {
            self.remember_original(self.row(before));
        }
    }

    fn remember_original(&mut self, row: u32) {
        if !self.originals.contains_key(&row)
            && let Ok(bytes) = self.disk_record(row)
        {
            self.originals.insert(row, bytes);
        }
    }

    /// Pending changes: records edited, removed and added since opening.
    pub fn pending_changes(&self) -> usize {
        let mut kept = 0;
        let mut changes = 0;
        for i in 0..self.len() {
            let row = self.row(i);
            if row < ADDED {
                kept += 1;
            }
            if row >= ADDED || self.edits.contains_key(&row) {
                changes += 1;
            }
        }
        changes + self.index.len() - kept
    }

    fn rows_mut(&mut self) -> &mut Vec<u32> {
        let n = self.index.len() as u32;
        self.rows.get_or_insert_with(|| (0..n).collect())
    }

    /// A value as this file writes records: one line in JSON Lines, indented
    /// like its neighbours in a pretty-printed array.
    pub fn format_record(&self, value: &Value) -> String {
        match self.layout {
            Layout::JsonLines => self.spacing.format(value),
            Layout::JsonValues => {
                let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                pretty.replace('\n', self.index.newline)
            }
            Layout::JsonArray if self.separator.contains('\n') => {
                let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                let newline = format!("{}{}", self.index.newline, self.indent);
                pretty.replace('\n', &newline)
            }
            Layout::JsonArray => self.spacing.format(value),
        }
    }

    /// An independent copy of the store as it stands, overlay included, for
    /// reading on another thread while this one goes on being edited.
    pub fn snapshot(&self) -> io::Result<Store> {
        Ok(Store {
            path: self.path.clone(),
            file: self.file.try_clone()?,
            layout: self.layout,
            index: self.index.clone(),
            rows: self.rows.clone(),
            edits: self.edits.clone(),
            originals: self.originals.clone(),
            added: self.added.clone(),
            separator: self.separator.clone(),
            indent: self.indent.clone(),
            spacing: self.spacing,
            dirty: self.dirty,
            stamp: self.stamp.clone(),
        })
    }

    /// Calls `f` on every record in document order, reading the file
    /// sequentially in large blocks.
    pub fn visit<F>(&self, mut f: F) -> io::Result<()>
    where
        F: FnMut(RecordRef<'_>) -> io::Result<()>,
    {
        let mut reader = BlockReader::new(&self.file);
        for i in 0..self.len() {
            let row = self.row(i);
            let line = (row < ADDED).then(|| self.index.line(row as usize));
            let bytes: &[u8] = if row >= ADDED {
                self.added[(row - ADDED) as usize].as_bytes()
            } else if let Some(text) = self.edits.get(&row) {
                text.as_bytes()
            } else {
                let r = row as usize;
                trim_record(reader.range(self.index.starts[r], self.index.region_end(r))?).0
            };
            f(RecordRef {
                index: i,
                line,
                bytes,
            })?;
        }
        Ok(())
    }

    /// Writes the document: untouched bytes verbatim, changed records in the
    /// file's style.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut reader = BlockReader::new(&self.file);
        let n = self.index.len();
        let first_start = self
            .index
            .starts
            .first()
            .copied()
            .unwrap_or(self.index.content_end);
        out.write_all(reader.range(0, first_start)?)?;
        // The bytes that followed the previous row on disk, if it came from disk.
        let mut after_previous: Option<(u32, Vec<u8>)> = None;
        for i in 0..self.len() {
            let row = self.row(i);
            if i > 0 {
                match &after_previous {
                    Some((prev, gap)) if row < ADDED && *prev + 1 == row => out.write_all(gap)?,
                    _ => out.write_all(self.separator.as_bytes())?,
                }
            }
            after_previous = None;
            if row >= ADDED {
                out.write_all(self.added[(row - ADDED) as usize].as_bytes())?;
                continue;
            }
            let r = row as usize;
            let region = reader.range(self.index.starts[r], self.index.region_end(r))?;
            let (content, gap) = trim_record(region);
            match self.edits.get(&row) {
                Some(text) => out.write_all(text.as_bytes())?,
                None => out.write_all(content)?,
            }
            after_previous = Some((row, gap.to_vec()));
        }
        // The end of the file keeps its original shape (final newline or not,
        // closing bracket).
        if n == 0 {
            let tail = reader.range(first_start, self.index.file_len)?;
            if tail.is_empty() && !self.is_empty() && self.layout == Layout::JsonLines {
                out.write_all(self.index.newline.as_bytes())?;
            }
            return out.write_all(tail);
        }
        let last = n - 1;
        let region = reader.range(self.index.starts[last], self.index.file_len)?;
        let content_len = trim_record(
            &region[..(self.index.region_end(last) - self.index.starts[last]) as usize],
        )
        .0
        .len();
        out.write_all(&region[content_len..])
    }
}

/// The records of a JSON array held in memory, as slices.
pub fn index_array_bytes(bytes: &[u8]) -> Result<Vec<&[u8]>, ArrayError> {
    let index = index::index_array(bytes)?;
    Ok((0..index.len())
        .map(|i| trim_record(&bytes[index.starts[i] as usize..index.region_end(i) as usize]).0)
        .collect())
}

/// Refuses what is not a regular file (a folder, a FIFO, a device such as
/// /dev/zero) before opening it: reading one would fail, block forever or
/// never end.
fn refuse_special_file(path: &Path) -> Result<(), StoreError> {
    let meta = std::fs::metadata(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a folder"
    } else {
        special_kind(&kind)
    };
    Err(StoreError::NotAFile {
        path: path.to_path_buf(),
        what,
    })
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

/// The separator and indentation that records of an array are written with.
fn array_style(bytes: &[u8], index: &Index) -> (String, String) {
    let newline = index.newline;
    let Some(&first) = index.starts.first() else {
        return (format!(",{newline}  "), "  ".to_string());
    };
    let line_start = bytes[..first as usize]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let indent = String::from_utf8_lossy(&bytes[line_start..first as usize]).into_owned();
    let on_own_line = line_start > 0 && indent.trim().is_empty();
    if !on_own_line {
        return (",".to_string(), String::new());
    }
    (format!(",{newline}{indent}"), indent)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod conflict_tests;
