//! The sandbox generated projects run in (Linux): new user, mount, PID,
//! network and IPC namespaces; a root of read-only binds of the system and
//! the interpreter's folders, the project folder as the only writable path,
//! a private /tmp, a fresh /proc and a minimal /dev; rlimits; no network.
//!
//! Creating a user namespace needs a single-threaded process, so the sandbox
//! is entered through the tunebench binary itself: `tunebench __sandbox
//! <spec>` (handled before argument parsing, hidden from `--help`) sets it up
//! and runs the spec's command as PID 1 of the new PID namespace. Killing
//! that launcher kills PID 1 (parent-death signal), and with it the kernel
//! kills every process of the namespace, `setsid` children included.

#[cfg(target_os = "linux")]
mod launch;
#[cfg(target_os = "linux")]
mod mounts;
#[cfg(target_os = "linux")]
mod sys;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The hidden subcommand that enters the sandbox.
pub const SUBCOMMAND: &str = "__sandbox";
/// The launcher's exit code when the kernel refuses the namespaces.
pub const EXIT_REFUSED: u8 = 121;
/// The launcher's exit code when the sandbox could not be built.
pub const EXIT_SETUP_FAILED: u8 = 122;
/// Set (to anything) for a launcher to act as if namespaces were refused;
/// tests use it to reach the refusal path on machines that allow them.
pub const FORCE_REFUSAL_VAR: &str = "TUNEBENCH_SANDBOX_FORCE_REFUSAL";
/// Where the project folder appears inside the sandbox.
pub const PROJECT_MOUNT: &str = "/project";

/// Resource limits inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Address space of each process, bytes.
    pub memory: u64,
    /// Processes (and threads) of the sandbox's user.
    pub processes: u64,
    /// Largest file a process may write, bytes.
    pub file_size: u64,
    /// Size of the private /tmp, bytes.
    pub tmp_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 4 << 30,
            processes: 256,
            file_size: 256 << 20,
            tmp_size: 256 << 20,
        }
    }
}

/// Everything the launcher needs, passed to it as one JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// An empty folder outside the sandbox where its root is assembled.
    pub root: PathBuf,
    /// The folder that appears read-write at [`PROJECT_MOUNT`].
    pub project: PathBuf,
    /// Absolute paths bound read-only at the same place (symbolic links are
    /// recreated as links).
    pub read_only: Vec<PathBuf>,
    pub limits: Limits,
    /// Bring the namespace's own loopback up (it reaches nothing outside).
    pub loopback: bool,
    /// The program and its arguments, run in [`PROJECT_MOUNT`].
    pub command: Vec<String>,
    /// The whole environment of the command.
    pub env: Vec<(String, String)>,
}

/// How a generated project's code is contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxKind {
    /// The namespace sandbox of this module.
    Namespaces,
    /// None: the user chose `--exec-unsandboxed`.
    Unsandboxed,
}

impl SandboxKind {
    pub fn name(self) -> &'static str {
        match self {
            SandboxKind::Namespaces => "namespaces",
            SandboxKind::Unsandboxed => "unsandboxed",
        }
    }
}

/// The system folders every sandbox binds read-only (those that exist).
pub const SYSTEM_PATHS: [&str; 6] = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"];

/// The command that runs `spec` in the sandbox through `launcher` (the
/// tunebench binary).
pub fn command(launcher: &Path, spec: &Spec) -> Command {
    let mut command = Command::new(launcher);
    let spec = serde_json::to_string(spec).expect("a spec always serialises");
    command.arg(SUBCOMMAND).arg(spec).env_clear();
    if let Some(value) = std::env::var_os(FORCE_REFUSAL_VAR) {
        command.env(FORCE_REFUSAL_VAR, value);
    }
    command
}

/// Runs the launcher when the process was started as `tunebench __sandbox
/// <spec>`; `None` otherwise. Must be called first in `main`, before any
/// thread exists.
pub fn enter_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != SUBCOMMAND {
        return None;
    }
    let spec = args
        .next()
        .and_then(|a| a.into_string().ok())
        .and_then(|a| serde_json::from_str::<Spec>(&a).ok());
    let Some(spec) = spec else {
        eprintln!("tunebench sandbox: expected one JSON spec argument");
        return Some(ExitCode::from(EXIT_SETUP_FAILED));
    };
    Some(run(spec))
}

#[cfg(target_os = "linux")]
fn run(spec: Spec) -> ExitCode {
    launch::run(spec)
}

#[cfg(not(target_os = "linux"))]
fn run(_spec: Spec) -> ExitCode {
    eprintln!("tunebench sandbox: namespaces refused: only Linux has them");
    ExitCode::from(EXIT_REFUSED)
}
