//! Running a generated project's tests: the files go into a fresh temporary
//! folder and `python -m pytest`, pinned to that folder, runs there in the
//! namespace sandbox (see [`super::sandbox`]) under a time limit, its output
//! read through a pipe with only the end kept. Without a sandbox the tests
//! run only when the user allowed it (`--exec-unsandboxed`).

use super::capture::{Captured, run_captured};
use super::pytest::{self, summary_line};
use super::sandbox::{self, Limits, SandboxKind, Spec};
use crate::data::validate::unsafe_path;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Variables that would route traffic through a proxy.
const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "ALL_PROXY",
];

/// Variables of the caller's environment that reach the sandbox (they shape
/// the interpreter's module path, whose folders are bound read-only).
const PASSED_VARS: [&str; 2] = ["PYTHONPATH", "PYTHONHOME"];

/// Asks the interpreter where it lives and whether it has pytest.
const INTERPRETER_QUERY: &str = "import json, sys, importlib.util
print(json.dumps({'executable': sys.executable,
  'folders': [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix] + sys.path,
  'pytest': importlib.util.find_spec('pytest') is not None}))";

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The Python interpreter (with pytest and the project's dependencies).
    pub python: String,
    pub timeout: Duration,
    /// The tunebench binary that enters the sandbox (default: this process's).
    pub launcher: Option<PathBuf>,
    /// Run without a sandbox where none can be made (else refuse).
    pub allow_unsandboxed: bool,
    pub limits: Limits,
    /// Where the temporary project folders go (default: the system's).
    pub work_dir: Option<PathBuf>,
    /// Act as if the kernel refused the namespaces (for tests of that path).
    pub force_refusal: bool,
}

impl ExecOptions {
    pub fn new(python: impl Into<String>, timeout: Duration) -> Self {
        ExecOptions {
            python: python.into(),
            timeout,
            launcher: None,
            allow_unsandboxed: false,
            limits: Limits::default(),
            work_dir: None,
            force_refusal: false,
        }
    }
}

/// Why tests cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The interpreter or its pytest is missing.
    #[error("{0}")]
    Python(String),
    /// No sandbox can be made and running without one was not allowed.
    #[error(
        "no sandbox for generated code: {0}; refusing to run it unsandboxed (pass --exec-unsandboxed to run it with your user's rights anyway)"
    )]
    NoSandbox(String),
}

/// Test counts from pytest's summary line, and how the run ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestRun {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
    /// pytest's exit code; `None` when it was killed.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The summary line, or why there is none.
    pub summary: String,
    pub seconds: f64,
    /// Bytes of output dropped (only the last 64 KiB are kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TestRun {
    /// Passed tests over tests that ran (0 when none did).
    pub fn pass_rate(&self) -> f64 {
        let ran = self.passed + self.failed + self.errors;
        if ran == 0 || self.timed_out {
            0.0
        } else {
            self.passed as f64 / ran as f64
        }
    }

    fn failed_to_start(why: String) -> TestRun {
        TestRun {
            summary: why,
            ..Default::default()
        }
    }
}

/// Where the interpreter lives, as it says itself.
#[derive(Debug, Clone, Deserialize)]
struct Interpreter {
    executable: PathBuf,
    /// Prefixes and module path entries: bound read-only in the sandbox.
    folders: Vec<PathBuf>,
    pytest: bool,
}

/// Runs pytest on generated projects, once its tools and the sandbox are
/// known to work.
pub struct Runner {
    options: ExecOptions,
    interpreter: Interpreter,
    launcher: PathBuf,
    pub kind: SandboxKind,
    /// Why there is no sandbox, when `kind` is unsandboxed.
    unsandboxed_because: Option<String>,
}

impl Runner {
    /// Checks that the interpreter runs and has pytest, and that the sandbox
    /// works (by importing pytest inside it).
    pub fn probe(options: ExecOptions) -> Result<Runner, ProbeError> {
        let interpreter = query_interpreter(&options.python)?;
        let launcher = match &options.launcher {
            Some(path) => Ok(path.clone()),
            None => std::env::current_exe().map_err(|e| format!("no tunebench binary: {e}")),
        };
        let mut runner = Runner {
            interpreter,
            launcher: launcher.clone().unwrap_or_default(),
            kind: SandboxKind::Namespaces,
            unsandboxed_because: None,
            options,
        };
        let why = match launcher.and_then(|_| runner.try_sandbox()) {
            Ok(()) => return Ok(runner),
            Err(why) => why,
        };
        if !runner.options.allow_unsandboxed {
            return Err(ProbeError::NoSandbox(why));
        }
        runner.kind = SandboxKind::Unsandboxed;
        runner.unsandboxed_because = Some(why);
        Ok(runner)
    }

    /// A line for the user about how the tests are contained.
    pub fn note(&self) -> String {
        match self.kind {
            SandboxKind::Namespaces => format!(
                "sandbox: namespaces (new user, mount, PID, network and IPC namespaces; only the project folder is writable; no network; {} s per run)",
                self.options.timeout.as_secs_f64()
            ),
            SandboxKind::Unsandboxed => format!(
                "unsandboxed (--exec-unsandboxed): generated code runs with your user's rights, files and network, because {}",
                self.unsandboxed_because
                    .as_deref()
                    .unwrap_or("no sandbox was made")
            ),
        }
    }

    /// Imports pytest inside a sandbox; the error says why that failed.
    fn try_sandbox(&self) -> Result<(), String> {
        let dir = TempDir::new(self.options.work_dir.as_deref())
            .map_err(|e| format!("no temporary folder: {e}"))?;
        let project = dir.path.join("project");
        std::fs::create_dir(&project)
            .map_err(|e| format!("creating {}: {e}", project.display()))?;
        let program = vec!["-c".to_string(), "import pytest".to_string()];
        let command = self.sandboxed(&dir, &project, program);
        let finished = run_captured(command, Duration::from_secs(60))
            .map_err(|e| format!("cannot run {}: {e}", self.launcher.display()))?;
        let last_line = || {
            let text = finished.output.text();
            let line = text.lines().rev().find(|l| !l.trim().is_empty());
            let line = line.unwrap_or("no output").trim();
            line.strip_prefix("tunebench sandbox: ")
                .unwrap_or(line)
                .to_string()
        };
        match finished.status.and_then(|s| s.code()) {
            Some(0) => Ok(()),
            Some(code) if code == i32::from(sandbox::EXIT_REFUSED) => Err(last_line()),
            None => Err("the sandbox did not start Python within 60 s".into()),
            Some(_) => Err(format!(
                "Python did not start in the sandbox: {}",
                last_line()
            )),
        }
    }

    /// Writes `files` into a temporary folder and runs pytest there.
    pub fn run(&self, files: &[(String, String)]) -> TestRun {
        self.run_with_output(files).0
    }

    /// [`Runner::run`], with the end of pytest's output.
    pub fn run_with_output(&self, files: &[(String, String)]) -> (TestRun, Captured) {
        let started = Instant::now();
        let (mut run, output) = match TempDir::new(self.options.work_dir.as_deref()) {
            Ok(dir) => self.run_in(&dir, files),
            Err(e) => (
                TestRun::failed_to_start(format!("could not create a temporary folder: {e}")),
                Captured::default(),
            ),
        };
        run.seconds = started.elapsed().as_secs_f64();
        (run, output)
    }

    fn run_in(&self, dir: &TempDir, files: &[(String, String)]) -> (TestRun, Captured) {
        let project = dir.path.join("project");
        let config = match write_project(&project, files) {
            Ok(config) => config,
            Err(e) => {
                let why = format!("could not write the project: {e}");
                return (TestRun::failed_to_start(why), Captured::default());
            }
        };
        let command = match self.kind {
            SandboxKind::Namespaces => {
                let inside = Path::new(sandbox::PROJECT_MOUNT);
                self.sandboxed(dir, &project, pytest::arguments(inside, config))
            }
            SandboxKind::Unsandboxed => self.unsandboxed(&project, config),
        };
        match run_captured(command, self.options.timeout) {
            Err(e) => (
                TestRun::failed_to_start(format!("could not run pytest: {e}")),
                Captured::default(),
            ),
            Ok(finished) => {
                let mut run = TestRun {
                    exit_code: finished.status.and_then(|s| s.code()),
                    timed_out: finished.status.is_none(),
                    output_dropped: finished.output.dropped,
                    ..Default::default()
                };
                self.read_summary(&finished.output.text(), &mut run);
                (run, finished.output)
            }
        }
    }

    fn read_summary(&self, output: &str, run: &mut TestRun) {
        match summary_line(output) {
            Some((line, c)) => {
                (run.passed, run.failed, run.errors, run.skipped) =
                    (c.passed, c.failed, c.errors, c.skipped);
                run.summary = line.to_string();
            }
            None if run.timed_out => {
                run.summary = format!(
                    "killed after {} s without finishing",
                    self.options.timeout.as_secs_f64()
                );
            }
            None => {
                let tail = output.lines().rev().find(|l| !l.trim().is_empty());
                run.summary = format!(
                    "no pytest summary line; last output: {}",
                    tail.unwrap_or("(none)").trim()
                );
            }
        }
    }

    /// The interpreter with `arguments`, in a sandbox over `project`.
    fn sandboxed(&self, dir: &TempDir, project: &Path, arguments: Vec<String>) -> Command {
        let python = &self.interpreter;
        let mut read_only: Vec<PathBuf> = sandbox::SYSTEM_PATHS.iter().map(PathBuf::from).collect();
        // Canonical, so that no folder is reached through a link the sandbox
        // recreates (such as /lib -> usr/lib).
        read_only.extend(
            python
                .folders
                .iter()
                .chain([&python.executable])
                .filter(|p| p.is_absolute())
                .filter_map(|p| p.canonicalize().ok()),
        );
        let bin = python.executable.parent().unwrap_or(Path::new("/usr/bin"));
        let mut env = vec![
            (
                "PATH".to_string(),
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
            ),
            ("HOME".into(), "/tmp".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("PIP_NO_INDEX".into(), "1".into()),
        ];
        env.extend(
            PASSED_VARS
                .iter()
                .filter_map(|&k| Some((k.to_string(), std::env::var(k).ok()?))),
        );
        let spec = Spec {
            root: dir.path.join("root"),
            project: project.to_path_buf(),
            read_only,
            limits: self.options.limits,
            loopback: true,
            command: std::iter::once(python.executable.display().to_string())
                .chain(arguments)
                .collect(),
            env,
        };
        let _ = std::fs::create_dir(&spec.root);
        let mut command = sandbox::command(&self.launcher, &spec);
        if self.options.force_refusal {
            command.env(sandbox::FORCE_REFUSAL_VAR, "1");
        }
        command
    }

    /// pytest on `project` with the user's rights (no proxy variables).
    fn unsandboxed(&self, project: &Path, config: &str) -> Command {
        let mut command = Command::new(&self.options.python);
        command
            .args(pytest::arguments(project, config))
            .current_dir(project)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PIP_NO_INDEX", "1");
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        command
    }
}

fn query_interpreter(python: &str) -> Result<Interpreter, ProbeError> {
    let output = Command::new(python)
        .args(["-c", INTERPRETER_QUERY])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ProbeError::Python(format!("cannot run `{python}`: {e}")))?;
    let interpreter: Interpreter = serde_json::from_slice(&output.stdout)
        .ok()
        .filter(|_| output.status.success())
        .ok_or_else(|| {
            ProbeError::Python(format!(
                "`{python}` did not answer where it lives: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        })?;
    if !interpreter.pytest {
        return Err(ProbeError::Python(format!(
            "`{python} -c \"import pytest\"` failed: pytest is not installed for that interpreter"
        )));
    }
    Ok(interpreter)
}

/// Writes the files under `root` (paths that would leave it are refused) and
/// returns the name of the pytest configuration file, writing an empty one
/// when the project has none.
fn write_project(root: &Path, files: &[(String, String)]) -> std::io::Result<&'static str> {
    std::fs::create_dir_all(root)?;
    for (path, content) in files {
        if unsafe_path(path).is_some() {
            continue;
        }
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, content)?;
    }
    match pytest::project_config(files) {
        Some(name) => Ok(name),
        None => {
            std::fs::write(root.join(pytest::GENERATED_INI), "[pytest]\n")?;
            Ok(pytest::GENERATED_INI)
        }
    }
}

/// A folder under `base` (default: the system's temporary folder), removed
/// on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(base: Option<&Path>) -> std::io::Result<TempDir> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for attempt in 0..100u32 {
            let path = base.join(format!(
                "tunebench-eval-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temporary folder name"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
