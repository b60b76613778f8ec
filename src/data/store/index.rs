//! Finding where each record starts without parsing any of them.
//!
//! JSON Lines: every non-blank line is a record. A `.json` file holding a
//! top-level array: every element is a record, found by a scanner that only
//! tracks strings and nesting. A pretty-printed object (or several, one after
//! another, as `jq .` writes them): every top-level value is a record.

use super::blocks::read_at_most;
use super::digest::Digest;
use std::fs::File;
use std::io;

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One record per line.
    JsonLines,
    /// One top-level JSON array of records.
    JsonArray,
    /// Top-level JSON values written over several lines, one after another.
    JsonValues,
}

/// Where the records of a file are.
#[derive(Debug, Default, Clone)]
pub struct Index {
    /// Byte offset where each record starts.
    pub starts: Vec<u64>,
    /// 1-based line of each record; `None` when it is simply index + 1.
    pub lines: Option<Vec<u32>>,
    /// Where the record area ends: the end of the file for JSON Lines, the
    /// closing `]` for an array.
    pub content_end: u64,
    pub file_len: u64,
    /// Fingerprint of every byte indexed, to tell later whether the file
    /// was changed by another program.
    pub content_hash: u64,
    pub bom: bool,
    /// The line terminator new records get (the file's first one, else `\n`).
    pub newline: &'static str,
}

impl Index {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    pub fn line(&self, i: usize) -> usize {
        self.lines.as_ref().map_or(i + 1, |l| l[i] as usize)
    }

    /// The bytes of record `i` run from its start to here, plus trailing
    /// whitespace (and a comma in arrays) that [`trim_record`] removes.
    pub fn region_end(&self, i: usize) -> u64 {
        self.starts.get(i + 1).copied().unwrap_or(self.content_end)
    }
}

/// Splits a record region into the record and what follows it.
pub fn trim_record(region: &[u8]) -> (&[u8], &[u8]) {
    let keep = region
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b','))
        .map_or(0, |p| p + 1);
    region.split_at(keep)
}

/// Indexes a JSON Lines file in large blocks.
pub fn index_lines(file: &File) -> io::Result<Index> {
    let mut index = Index {
        newline: "\n",
        ..Index::default()
    };
    let mut buf = vec![0u8; super::disk::block_for(file)];
    let mut base = 0u64; // file offset of buf[0]
    let mut line_no: u32 = 1;
    let mut line_start = 0u64;
    let mut seen_content = false;
    let mut first_newline_seen = false;
    let mut prev_byte = 0u8;
    let mut digest = Digest::default();
    loop {
        let got = read_at_most(file, &mut buf, base)?;
        if got == 0 {
            break;
        }
        let block = &buf[..got];
        digest.update(block);
        let mut pos = 0usize;
        if base == 0 && block.starts_with(BOM) {
            index.bom = true;
            pos = BOM.len();
            line_start = pos as u64;
        }
        while pos < got {
            if !seen_content {
                // Skip leading blanks of the line to see whether it holds anything.
                while pos < got && matches!(block[pos], b' ' | b'\t' | b'\r') {
                    pos += 1;
                }
                if pos == got {
                    break;
                }
                if block[pos] != b'\n' {
                    seen_content = true;
                    push_record(&mut index, line_start, line_no);
                }
            }
            match memchr::memchr(b'\n', &block[pos..]) {
                None => {
                    pos = got;
                }
                Some(at) => {
                    let nl = pos + at;
                    if !first_newline_seen {
                        first_newline_seen = true;
                        let before = if nl > 0 { block[nl - 1] } else { prev_byte };
                        if before == b'\r' {
                            index.newline = "\r\n";
                        }
                    }
                    if !seen_content {
                        note_blank_line(&mut index);
                    }
                    pos = nl + 1;
                    line_start = base + pos as u64;
                    line_no = line_no.saturating_add(1);
                    seen_content = false;
                }
            }
        }
        prev_byte = block[got - 1];
        base += got as u64;
    }
    index.file_len = base;
    index.content_end = base;
    index.content_hash = digest.finish();
    Ok(index)
}

fn push_record(index: &mut Index, start: u64, line: u32) {
    index.starts.push(start);
    if let Some(lines) = &mut index.lines {
        lines.push(line);
    }
}

/// Line numbers stop being index + 1 at the first blank line.
fn note_blank_line(index: &mut Index) {
    if index.lines.is_none() {
        index.lines = Some((1..=index.starts.len() as u32).collect());
    }
}

/// Why a `.json` array could not be split into records.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Indexes a file holding one top-level JSON array.
pub fn index_array(bytes: &[u8]) -> Result<Index, ArrayError> {
    let (mut index, mut scan) = start_scan(bytes);
    scan.expect(b'[', "expected `[` opening an array of records")?;
    scan.skip_ws();
    if scan.peek() == Some(b']') {
        index.content_end = scan.pos as u64;
    } else {
        loop {
            scan.record(&mut index)?;
            match scan.peek() {
                Some(b',') => {
                    scan.pos += 1;
                    scan.skip_ws();
                }
                Some(b']') => {
                    index.content_end = scan.pos as u64;
                    break;
                }
                _ => return Err(scan.error("expected `,` or `]` after a record")),
            }
        }
    }
    scan.pos += 1;
    scan.skip_ws();
    if scan.pos < bytes.len() {
        return Err(scan.error("unexpected text after the closing `]`"));
    }
    Ok(index)
}

/// Indexes a file of top-level values separated only by whitespace.
pub fn index_values(bytes: &[u8]) -> Result<Index, ArrayError> {
    let (mut index, mut scan) = start_scan(bytes);
    while let Some(b) = scan.peek() {
        if matches!(b, b',' | b']' | b'}') {
            return Err(
                scan.error("expected a JSON object; records are separated by line breaks only")
            );
        }
        scan.record(&mut index)?;
    }
    index.content_end = bytes.len() as u64;
    Ok(index)
}

/// Whether the first value of `bytes` (which may be cut short) has a line
/// break inside it, which no JSON Lines record has.
pub fn first_value_spans_lines(bytes: &[u8]) -> bool {
    let (_, mut scan) = start_scan(bytes);
    let first_line = scan.line;
    let _ = scan.skip_value();
    scan.line > first_line
}

/// An index for a file held in memory, and a scanner at its first value.
fn start_scan(bytes: &[u8]) -> (Index, Scanner<'_>) {
    let mut index = Index {
        newline: if memchr::memmem::find(bytes, b"\r\n").is_some() {
            "\r\n"
        } else {
            "\n"
        },
        file_len: bytes.len() as u64,
        content_hash: Digest::of(bytes),
        lines: Some(Vec::new()),
        ..Index::default()
    };
    let mut scan = Scanner {
        bytes,
        pos: 0,
        line: 1,
        line_start: 0,
    };
    if bytes.starts_with(BOM) {
        index.bom = true;
        scan.pos = BOM.len();
        scan.line_start = BOM.len();
    }
    scan.skip_ws();
    (index, scan)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

impl Scanner<'_> {
    /// Notes a record starting here and moves past it and the blanks after.
    fn record(&mut self, index: &mut Index) -> Result<(), ArrayError> {
        index.starts.push(self.pos as u64);
        if let Some(lines) = &mut index.lines {
            lines.push(self.line as u32);
        }
        self.skip_value()?;
        self.skip_ws();
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, message: &str) -> ArrayError {
        let column = String::from_utf8_lossy(&self.bytes[self.line_start..self.pos])
            .chars()
            .count()
            + 1;
        ArrayError {
            line: self.line,
            column,
            message: message.to_string(),
        }
    }

    fn expect(&mut self, byte: u8, message: &str) -> Result<(), ArrayError> {
        if self.peek() != Some(byte) {
            return Err(self.error(message));
        }
        self.pos += 1;
        Ok(())
    }

    fn newline_at(&mut self, at: usize) {
        self.line += 1;
        self.line_start = at + 1;
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => self.newline_at(self.pos),
                b' ' | b'\t' | b'\r' => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    /// Moves past one JSON value without checking it beyond its extent.
    fn skip_value(&mut self) -> Result<(), ArrayError> {
        let mut depth = 0usize;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("the array is not closed: the file ends inside a record"));
            };
            match b {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    depth += 1;
                    self.pos += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.pos += 1;
                }
                b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => {
                    return Ok(());
                }
                b'\n' => {
                    self.newline_at(self.pos);
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
            if depth == 0 && matches!(b, b'"' | b'}' | b']') {
                return Ok(());
            }
        }
    }

    fn skip_string(&mut self) -> Result<(), ArrayError> {
        self.pos += 1;
        loop {
            let rest = &self.bytes[self.pos..];
            let Some(at) = memchr::memchr3(b'"', b'\\', b'\n', rest) else {
                self.pos = self.bytes.len();
                return Err(self.error("a string is not closed before the end of the file"));
            };
            self.pos += at;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => self.pos += 2,
                _ => {
                    self.newline_at(self.pos);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_and_lines() {
        let text = b"[\n  {\"a\": \"x,]\\\"\"},\n  {\"b\": [1, 2]},\n  3\n]\n";
        let index = index_array(text).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(index.lines.as_deref(), Some(&[2, 3, 4][..]));
        let first = &text[index.starts[0] as usize..index.region_end(0) as usize];
        assert_eq!(trim_record(first).0, b"{\"a\": \"x,]\\\"\"}");
        let last = &text[index.starts[2] as usize..index.region_end(2) as usize];
        assert_eq!(trim_record(last).0, b"3");
    }

    #[test]
    fn broken_array_reports_position() {
        let err = index_array(b"[\n {\"a\": 1}\n {\"b\": 2}\n]").unwrap_err();
        assert_eq!((err.line, err.column), (3, 2));
        let err = index_array(b"[{\"a\": \"open").unwrap_err();
        assert!(err.message.contains("not closed"), "{err:?}");
    }

    #[test]
    fn values_one_after_another() {
        let text = b"{\n  \"a\": \"}{\"\n}\n{\n  \"b\": [1,\n 2]\n}\n";
        let index = index_values(text).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.lines.as_deref(), Some(&[1, 4][..]));
        let last = &text[index.starts[1] as usize..index.region_end(1) as usize];
        assert_eq!(trim_record(last).0, b"{\n  \"b\": [1,\n 2]\n}");
        assert!(index_values(b"{\"a\": {").is_err());
        assert!(index_values(b"{\n}, {}").is_err());
        assert!(first_value_spans_lines(b"\xEF\xBB\xBF {\n\"a\": 1}"));
        assert!(!first_value_spans_lines(b"{\"a\": 1}\n{\"b\": 2}"));
    }

    #[test]
    fn empty_array() {
        let index = index_array(b" [ ] ").unwrap();
        assert!(index.is_empty());
        assert_eq!(index.content_end, 3);
    }
}
