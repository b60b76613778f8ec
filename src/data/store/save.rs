//! Saving: never over a file another program changed since it was opened,
//! never over a read-only file, unless the caller says so; through a
//! symbolic link into its target; keeping the file's mode bits.

use super::atomic::{atomic_write, replace_if};
use super::disk::{DiskChange, Seen, resolve_links};
use super::{Store, StoreError};
use std::fs::{self, Metadata};
use std::io;
use std::path::Path;

/// What a save may write over; by default nothing unexpected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Replace the file even though another program changed it since it was
    /// opened (its changes are lost; the user confirmed that).
    pub overwrite_changed: bool,
    /// Replace a file nobody may write to; it stays read-only.
    pub overwrite_read_only: bool,
}

impl Store {
    /// Saves atomically and reopens, so the overlay is empty afterwards.
    /// Refuses, writing nothing, when the file changed on disk
    /// ([`StoreError::Changed`]) or is read-only ([`StoreError::ReadOnly`]).
    pub fn save(&mut self) -> Result<(), StoreError> {
        self.save_with(SaveOptions::default())
    }

    pub fn save_with(&mut self, options: SaveOptions) -> Result<(), StoreError> {
        let target = resolve_links(&self.path).map_err(|e| self.io_error(e))?;
        let change = match self.disk_change()? {
            None if !self.originals_hold()? => Some(DiskChange::Rewritten),
            change => change,
        };
        match change {
            None => {}
            Some(change) if !options.overwrite_changed => {
                return Err(StoreError::Changed {
                    path: self.path.clone(),
                    change,
                });
            }
            Some(_) => self.require_intact_source()?,
        }
        let before = fs::metadata(&target).ok();
        if let Some(mode) = before.as_ref().and_then(read_only_mode)
            && !options.overwrite_read_only
        {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
                mode,
            });
        }
        let replaced = replace_if(
            &target,
            |out| self.write_to(out),
            || {
                Ok(before.as_ref().map(Seen::of)
                    == fs::metadata(&target).ok().as_ref().map(Seen::of))
            },
        )
        .map_err(|e| self.io_error(e))?;
        if !replaced {
            let now = fs::metadata(&target).map_or(0, |m| m.len());
            let was = before.map_or(0, |m| m.len());
            let change = match was == now {
                true => DiskChange::Rewritten,
                false => DiskChange::Resized { was, now },
            };
            return Err(StoreError::Changed {
                path: self.path.clone(),
                change,
            });
        }
        *self = Store::open(&self.path)?;
        Ok(())
    }

    /// Writes the document to a new file `path` and goes on with that one;
    /// the file opened is left as it is.
    pub fn save_as(&mut self, path: &Path) -> Result<(), StoreError> {
        if fs::symlink_metadata(path).is_ok() {
            return Err(StoreError::Exists {
                path: path.to_path_buf(),
            });
        }
        self.require_intact_source()?;
        atomic_write(path, |out| self.write_to(out)).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        *self = Store::open(path)?;
        Ok(())
    }

    /// Refuses to write the document out when the untouched records can no
    /// longer be read as they were indexed.
    fn require_intact_source(&self) -> Result<(), StoreError> {
        match self.source_intact()? {
            true => Ok(()),
            false => Err(StoreError::SourceRewritten {
                path: self.path.clone(),
            }),
        }
    }

    /// Refuses `out` as a place to write this file's records into when it is
    /// this very file (by any name: a symbolic or hard link counts). The
    /// caller names `out` in the message.
    pub fn refuse_as_output(&self, out: &Path) -> io::Result<()> {
        if super::disk::same_file(out, &self.path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "it is the input file {}; refusing to write over it (choose another path)",
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }
}

/// The mode of a file with no write permission for anyone (mode 444), which
/// editors ask about before replacing.
fn read_only_mode(meta: &Metadata) -> Option<u32> {
    #[cfg(unix)]
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
    #[cfg(not(unix))]
    let mode = if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    };
    meta.permissions().readonly().then_some(mode)
}
