//! Whether the file on disk is still the one the store indexed.
//!
//! Opening records a [`Stamp`]: size, modification time, device and inode
//! (taken before indexing, so a change during it shows up as a difference)
//! and the fingerprint of every byte indexed. A cheap poll compares only the
//! metadata and reads the file again only when that differs with the same
//! size (a `touch`, or a rewrite of equal length); the check before a save
//! always compares the fingerprint too, since a rewrite can keep size and
//! time.

use super::blocks::read_at_most;
use super::digest::Digest;
use super::{Store, StoreError};
use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The metadata that tells a file changed without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub identity: (u64, u64),
}

impl Seen {
    pub fn of(meta: &Metadata) -> Seen {
        Seen {
            len: meta.len(),
            modified: meta.modified().ok(),
            identity: identity(meta),
        }
    }
}

/// What the store saw of its file when it indexed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub seen: Seen,
    pub hash: u64,
    /// The last metadata a poll found different and what reading the file
    /// then showed, so a timer does not read it again until it changes again.
    polled: Option<(Seen, DiskChange)>,
}

/// How the file on disk differs from what was indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskChange {
    Deleted,
    Resized {
        was: u64,
        now: u64,
    },
    /// Same size, other bytes.
    Rewritten,
}

impl std::fmt::Display for DiskChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskChange::Deleted => write!(f, "it was deleted"),
            DiskChange::Resized { was, now } => write!(f, "{was} bytes then, {now} now"),
            DiskChange::Rewritten => write!(f, "same size, other content"),
        }
    }
}

impl Stamp {
    pub fn new(meta: &Metadata, hash: u64) -> Stamp {
        Stamp {
            seen: Seen::of(meta),
            hash,
            polled: None,
        }
    }
}

#[cfg(unix)]
pub fn identity(meta: &Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
pub fn identity(_meta: &Metadata) -> (u64, u64) {
    (0, 0)
}

/// The fingerprint and length of everything `file` holds now.
pub fn hash_file(file: &File) -> io::Result<(u64, u64)> {
    hash_prefix(file, u64::MAX)
}

/// The fingerprint and length of the first `limit` bytes of `file` (fewer
/// if it is shorter).
fn hash_prefix(file: &File, limit: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; block_for(file)];
    let mut digest = Digest::default();
    let mut offset = 0u64;
    while offset < limit {
        let want = (limit - offset).min(buf.len() as u64) as usize;
        let got = read_at_most(file, &mut buf[..want], offset)?;
        if got == 0 {
            break;
        }
        digest.update(&buf[..got]);
        offset += got as u64;
    }
    Ok((digest.finish(), offset))
}

/// A read buffer for `file`: large for large files, small for small ones
/// (a fresh 8 MiB buffer costs more than reading a small file).
pub fn block_for(file: &File) -> usize {
    const BLOCK: u64 = 8 << 20;
    let len = file.metadata().map_or(BLOCK, |m| m.len());
    len.clamp(64 << 10, BLOCK) as usize
}

/// Whether `a` and `b` name the same file: the same device and inode, so a
/// symbolic or hard link to it counts. False when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) if cfg!(unix) => identity(&a) == identity(&b),
        _ => match (fs::canonicalize(a), fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
    }
}

/// The file a path finally names, following symbolic links (even one whose
/// target does not exist yet), so a save replaces the target and the link
/// stays a link.
pub fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // The same bound the kernel puts on nested links.
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(path),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

impl Store {
    pub(super) fn io_error(&self, source: io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// A cheap look at the file (its metadata; its bytes only when the
    /// metadata changed but the size did not). For a timer in a UI.
    pub fn poll_disk(&mut self) -> Result<Option<DiskChange>, StoreError> {
        let seen = match fs::metadata(&self.path) {
            Ok(meta) => Seen::of(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(DiskChange::Deleted)),
            Err(e) => return Err(self.io_error(e)),
        };
        if seen == self.stamp.seen {
            return Ok(None);
        }
        if let Some((polled, change)) = &self.stamp.polled
            && *polled == seen
        {
            return Ok(Some(change.clone()));
        }
        let change = self.disk_change()?;
        if let Some(change) = &change {
            self.stamp.polled = Some((seen, change.clone()));
        }
        Ok(change)
    }

    /// Whether the file on disk differs from what was indexed, by its bytes.
    /// A file that only got a new time or inode with the same bytes (a
    /// `touch`, a copy of itself) is taken as unchanged and read from there
    /// on.
    pub fn disk_change(&mut self) -> Result<Option<DiskChange>, StoreError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(DiskChange::Deleted)),
            Err(e) => return Err(self.io_error(e)),
        };
        let meta = file.metadata().map_err(|e| self.io_error(e))?;
        let (was, now) = (self.stamp.seen.len, meta.len());
        if was != now {
            return Ok(Some(DiskChange::Resized { was, now }));
        }
        let (hash, len) = hash_file(&file).map_err(|e| self.io_error(e))?;
        if len != was {
            return Ok(Some(DiskChange::Resized { was, now: len }));
        }
        if hash != self.stamp.hash {
            return Ok(Some(DiskChange::Rewritten));
        }
        if Seen::of(&meta) != self.stamp.seen {
            self.stamp = Stamp::new(&meta, hash);
            self.file = file;
        }
        Ok(None)
    }

    /// Whether every record the user changed still reads as it did when they
    /// changed it. A file written over in place and then put back (same
    /// bytes, new time) passes the other checks, but what the user saw and
    /// edited in between were other records.
    pub(super) fn originals_hold(&self) -> Result<bool, StoreError> {
        for (&row, original) in &self.originals {
            if self.disk_record(row).map_err(|e| self.io_error(e))? != *original {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the bytes the store reads untouched records from are still
    /// the ones indexed. They are after another program replaced the file
    /// (the store holds the old one open) or appended to it, not after it
    /// wrote into what was there.
    pub(super) fn source_intact(&self) -> Result<bool, StoreError> {
        let len = self.stamp.seen.len;
        let (hash, read) = hash_prefix(&self.file, len).map_err(|e| self.io_error(e))?;
        Ok(read == len && hash == self.stamp.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_to_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.jsonl");
        fs::write(&real, "{}\n").unwrap();
        let link = dir.path().join("link.jsonl");
        let chain = dir.path().join("chain.jsonl");
        std::os::unix::fs::symlink("real.jsonl", &link).unwrap();
        std::os::unix::fs::symlink(&link, &chain).unwrap();
        assert_eq!(resolve_links(&chain).unwrap(), real);
        assert_eq!(resolve_links(&real).unwrap(), real);
        let hard = dir.path().join("hard.jsonl");
        fs::hard_link(&real, &hard).unwrap();
        assert!(same_file(&hard, &chain));
        assert!(!same_file(&real, &dir.path().join("missing.jsonl")));
    }
}
