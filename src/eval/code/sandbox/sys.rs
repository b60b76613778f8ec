//! Thin wrappers over the system calls the sandbox makes, each returning an
//! error that says which step failed.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A failed step of building the sandbox.
#[derive(Debug)]
pub struct StepError {
    pub step: String,
    pub error: io::Error,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

pub type Step<T = ()> = Result<T, StepError>;

/// Adds the step's description to an I/O error.
pub trait Context<T> {
    fn step(self, what: impl FnOnce() -> String) -> Step<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Step<T> {
        self.map_err(|error| StepError {
            step: what(),
            error,
        })
    }
}

/// `Ok` when a libc call returned 0 (or more), the OS error otherwise.
pub fn check(result: libc::c_long) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("NUL in path"))
}

fn c_str(text: &str) -> CString {
    CString::new(text).expect("fixed strings have no NUL")
}

/// mount(2); `source`, `fstype` and `data` may be absent.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Step {
    let what = || {
        format!(
            "mounting {} on {}",
            source.map_or_else(
                || fstype.unwrap_or("").to_string(),
                |s| s.display().to_string()
            ),
            target.display()
        )
    };
    let source = source.map(c_path).transpose().step(what)?;
    let target_c = c_path(target).step(what)?;
    let fstype = fstype.map(c_str);
    let data = data.map(c_str);
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
    let result = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    check(result.into()).step(what)
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;
/// The same number on every Linux architecture.
const SYS_MOUNT_SETATTR: libc::c_long = 442;

/// Makes the mount at `target` (and, with `recursive`, every mount below it)
/// read-only, without set-user-id programs or device files. One call covers
/// the submounts of a recursive bind, which a remount would have to visit
/// one by one (Linux 5.12 and later).
pub fn make_read_only(target: &Path, recursive: bool) -> Step {
    let what = || format!("making {} read-only", target.display());
    let path = c_path(target).step(what)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the path is NUL-terminated and the attribute struct has the
    // kernel's layout and size; both outlive the call.
    let result = unsafe {
        libc::syscall(
            SYS_MOUNT_SETATTR,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(result).step(what)
}

/// Makes `new_root` (the current directory) the root and detaches the old one.
pub fn pivot_into(new_root: &Path) -> Step {
    std::env::set_current_dir(new_root).step(|| format!("entering {}", new_root.display()))?;
    let dot = c_str(".");
    // SAFETY: "." is a valid NUL-terminated path; pivot_root(".", ".") stacks
    // the old root on the new one, and the detach below removes it.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })
        .step(|| "pivot_root".into())?;
    // SAFETY: as above.
    check(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) }.into())
        .step(|| "detaching the old root".into())?;
    std::env::set_current_dir("/").step(|| "entering the new root".into())
}

/// Sets a resource limit (soft and hard).
pub fn set_limit(resource: libc::__rlimit_resource_t, value: u64, name: &str) -> Step {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: the struct is fully initialised and only read by the kernel.
    check(unsafe { libc::setrlimit(resource, &limit) }.into())
        .step(|| format!("setting the {name} limit"))
}

/// prctl(2) with one argument.
pub fn prctl(option: libc::c_int, arg: libc::c_ulong, name: &str) -> Step {
    let zero: libc::c_ulong = 0;
    // SAFETY: the options used take one integer argument and no pointers;
    // the unused ones must be zero at full width.
    check(unsafe { libc::prctl(option, arg, zero, zero, zero) }.into()).step(|| name.to_string())
}

/// Brings the network namespace's loopback interface up.
pub fn loopback_up() -> Step {
    let what = || "bringing up the loopback interface".to_string();
    // SAFETY: a plain socket for the interface ioctls, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd.into()).step(what)?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: fd is open and the request names the interface and its flags.
    let result = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &request as *const libc::ifreq) };
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    check(result.into()).step(what)
}
