//! Replacing a user's file so that a crash at any moment leaves either the old
//! file or the new one, never a mix: write a temporary file beside it, flush
//! it to disk, then rename it over the original.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` atomically with what `fill` writes. If `fill` fails, the
/// original file is untouched and the temporary file is removed.
pub fn atomic_write<F>(path: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    replace_if(path, fill, || Ok(true)).map(|_| ())
}

/// Like [`atomic_write`], but asks `still_ok` right before the rename (the
/// last moment to notice the file changed while the new one was written);
/// when it says no, nothing is replaced and this returns `false`.
pub fn replace_if<F, C>(path: &Path, fill: F, still_ok: C) -> io::Result<bool>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
    C: FnOnce() -> io::Result<bool>,
{
    let temp = temp_path(path);
    let result = write_temp(&temp, path, fill).and_then(|()| match still_ok()? {
        true => fs::rename(&temp, path).map(|()| true),
        false => Ok(false),
    });
    if !matches!(result, Ok(true)) {
        let _ = fs::remove_file(&temp);
        return result;
    }
    sync_dir(path);
    Ok(true)
}

fn write_temp<F>(temp: &Path, original: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    // Keep the original's permissions (and owner, where allowed) on the
    // replacement.
    if let Ok(meta) = fs::metadata(original) {
        keep_owner(&file, &meta);
        let _ = fs::set_permissions(temp, meta.permissions());
    }
    let mut out = BufWriter::with_capacity(1 << 20, file);
    fill(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

#[cfg(unix)]
fn keep_owner(file: &File, meta: &fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    // Only root may give a file away; for anyone else this is a no-op or
    // refused, and the file is theirs anyway.
    let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
}

#[cfg(not(unix))]
fn keep_owner(_file: &File, _meta: &fs::Metadata) {}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tunebench-tmp", std::process::id()))
}

/// Makes the rename itself durable; not every platform can open a directory.
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_original_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        fs::write(&path, "{\"text\": \"keep me\"}\n").unwrap();
        let result = atomic_write(&path, |w| {
            w.write_all(b"{\"text\": \"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(result.is_err());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"text\": \"keep me\"}\n"
        );
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }
}
