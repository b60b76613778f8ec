//! Sequential reads of byte ranges from a file through one large buffer, so
//! scanning a 1 GB file costs a few hundred read calls and little memory.

use std::fs::File;
use std::io;

pub struct BlockReader<'f> {
    file: &'f File,
    /// How much to read at a time (less for a small file).
    block: usize,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
}

impl<'f> BlockReader<'f> {
    pub fn new(file: &'f File) -> Self {
        BlockReader {
            file,
            block: super::disk::block_for(file),
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The bytes `start..end` of the file. Fastest when calls move forward.
    pub fn range(&mut self, start: u64, end: u64) -> io::Result<&[u8]> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if start < self.buf_start || end > buf_end {
            let want = ((end - start) as usize).max(self.block);
            self.buf.resize(want, 0);
            let got = read_at_most(self.file, &mut self.buf, start)?;
            self.buf.truncate(got);
            self.buf_start = start;
            if (got as u64) < end - start {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file got shorter while it was open",
                ));
            }
        }
        let from = (start - self.buf_start) as usize;
        let to = (end - self.buf_start) as usize;
        Ok(&self.buf[from..to])
    }
}

/// Reads from `offset` until `buf` is full or the file ends; returns bytes read.
pub fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_at(file, &mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}
