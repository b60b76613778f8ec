//! Writing a fresh file of records in the layout of a source file: one per
//! line (pretty-printed ones one after another), or a JSON array styled like
//! the source's.

use super::{Layout, Store};
use std::io::{self, Write};

pub struct RecordWriter<'w> {
    out: &'w mut dyn Write,
    header: String,
    separator: String,
    footer: String,
    written: usize,
}

impl<'w> RecordWriter<'w> {
    /// Writes JSON Lines, or a pretty JSON array when `layout` says so.
    pub fn new(out: &'w mut dyn Write, layout: Layout, newline: &str, indent: &str) -> Self {
        let (header, separator, footer) = match layout {
            Layout::JsonLines | Layout::JsonValues => {
                (String::new(), newline.to_string(), newline.to_string())
            }
            Layout::JsonArray if indent.is_empty() && !newline.is_empty() => {
                ("[".into(), ",".into(), format!("]{newline}"))
            }
            Layout::JsonArray => (
                format!("[{newline}{indent}"),
                format!(",{newline}{indent}"),
                format!("{newline}]{newline}"),
            ),
        };
        RecordWriter {
            out,
            header,
            separator,
            footer,
            written: 0,
        }
    }

    /// A writer in the same layout and style as `store`'s file.
    pub fn like(out: &'w mut dyn Write, store: &Store) -> Self {
        Self::new(out, store.layout(), store.index.newline, &store.indent)
    }

    pub fn push(&mut self, record: &[u8]) -> io::Result<()> {
        let before = if self.written == 0 {
            &self.header
        } else {
            &self.separator
        };
        self.out.write_all(before.as_bytes())?;
        self.out.write_all(record)?;
        self.written += 1;
        Ok(())
    }

    pub fn finish(self) -> io::Result<usize> {
        match (self.written, self.header.is_empty()) {
            (0, true) => {}
            (0, false) => self.out.write_all(b"[]\n")?,
            _ => self.out.write_all(self.footer.as_bytes())?,
        }
        self.out.flush()?;
        Ok(self.written)
    }
}
