//! The sandbox's file system, assembled in a tmpfs and entered with
//! pivot_root: read-only binds of the system and interpreter folders, the
//! project read-write at /project, a private /tmp, a fresh /proc, a /dev with
//! only null, zero, random and urandom. Nothing else of the host (its /tmp,
//! /run, /home, sockets) exists inside.

use super::sys::{self, Context, Step};
use super::{PROJECT_MOUNT, Spec};
use std::path::{Path, PathBuf};

const DEVICES: [&str; 4] = ["null", "zero", "random", "urandom"];

/// Builds the root described by `spec` and moves the process into it.
/// Runs inside the new mount namespace.
pub fn enter_root(spec: &Spec) -> Step {
    // Nothing mounted here may propagate back to the host.
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let root = &spec.root;
    sys::mount(
        None,
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=1m"),
    )?;
    // The private /tmp first, so that an interpreter living under /tmp is
    // bound on top of it rather than hidden by it.
    let tmp = inside(root, Path::new("/tmp"));
    make_dir(&tmp)?;
    let tmp_options = format!("mode=1777,size={}", spec.limits.tmp_size);
    let no_exec = libc::MS_NOSUID | libc::MS_NODEV;
    sys::mount(None, &tmp, Some("tmpfs"), no_exec, Some(&tmp_options))?;
    for path in bind_list(&spec.read_only) {
        bind_read_only(root, &path)?;
    }
    let project = inside(root, Path::new(PROJECT_MOUNT));
    make_dir(&project)?;
    sys::mount(Some(&spec.project), &project, None, libc::MS_BIND, None)?;
    build_dev(root)?;
    let proc = inside(root, Path::new("/proc"));
    make_dir(&proc)?;
    // A fresh /proc shows only the sandbox's processes; where the kernel
    // refuses it, Python runs without /proc rather than with the host's.
    if let Err(e) = sys::mount(None, &proc, Some("proc"), no_exec | libc::MS_NOEXEC, None) {
        eprintln!("tunebench sandbox: no /proc ({e})");
    }
    sys::pivot_into(root)?;
    sys::make_read_only(Path::new("/"), false)
}

/// The paths to bind, parents first, without those a listed folder already
/// holds (binding a folder brings what is under it). The host's root is
/// never bound: read-only does not stop connecting to the sockets under it.
fn bind_list(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.is_absolute() && p.parent().is_some() && p.symlink_metadata().is_ok())
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    let is_folder = |p: &PathBuf| p.symlink_metadata().is_ok_and(|m| m.is_dir());
    let folders: Vec<PathBuf> = paths.iter().filter(|p| is_folder(p)).cloned().collect();
    paths
        .into_iter()
        .filter(|p| !folders.iter().any(|f| f != p && p.starts_with(f)))
        .collect()
}

/// `path` of the sandbox, as seen from outside while it is assembled.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn make_dir(path: &Path) -> Step {
    std::fs::create_dir_all(path).step(|| format!("creating {}", path.display()))
}

/// Binds `path` read-only at the same place under `root`; a symbolic link is
/// recreated as the same link (its target is bound on its own when listed).
fn bind_read_only(root: &Path, path: &Path) -> Step {
    let target = inside(root, path);
    if let Some(parent) = target.parent() {
        make_dir(parent)?;
    }
    let meta = path
        .symlink_metadata()
        .step(|| format!("reading {}", path.display()))?;
    if meta.is_symlink() {
        let link = std::fs::read_link(path).step(|| format!("reading {}", path.display()))?;
        return std::os::unix::fs::symlink(&link, &target)
            .step(|| format!("linking {}", target.display()));
    }
    if meta.is_dir() {
        make_dir(&target)?;
    } else {
        std::fs::write(&target, b"").step(|| format!("creating {}", target.display()))?;
    }
    // Recursive, because a user namespace may not bind a folder without the
    // mounts below it; every one of them is made read-only next.
    sys::mount(
        Some(path),
        &target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    sys::make_read_only(&target, true)
}

/// A read-only tmpfs /dev holding binds of the harmless devices, the
/// standard stream links and a small /dev/shm.
fn build_dev(root: &Path) -> Step {
    let dev = inside(root, Path::new("/dev"));
    make_dir(&dev)?;
    sys::mount(
        None,
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID,
        Some("mode=0755,size=64k"),
    )?;
    for name in DEVICES {
        let node = dev.join(name);
        std::fs::write(&node, b"").step(|| format!("creating {}", node.display()))?;
        let host = Path::new("/dev").join(name);
        sys::mount(Some(&host), &node, None, libc::MS_BIND, None)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .step(|| format!("linking /dev/{link}"))?;
    }
    let shm = dev.join("shm");
    make_dir(&shm)?;
    sys::mount(
        None,
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777,size=64m"),
    )?;
    sys::make_read_only(&dev, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_already_bound_are_not_bound_again() {
        let list = bind_list(&[
            "/usr/lib".into(),
            "/usr".into(),
            "/etc".into(),
            "relative".into(),
            "/no/such/path/anywhere".into(),
            "/usr".into(),
            "/".into(),
        ]);
        assert_eq!(list, [PathBuf::from("/etc"), PathBuf::from("/usr")]);
        assert_eq!(
            inside(Path::new("/r"), Path::new("/usr/bin")),
            Path::new("/r/usr/bin")
        );
    }
}
