//! Running a generated project's tests: the files go into a fresh temporary
//! directory, `python -m pytest -q` runs there under a time limit (the whole
//! process group is killed when it runs over), with proxy variables removed
//! and, where `unshare -rn` works (Linux user namespaces), no network at all.

use crate::data::validate::unsafe_path;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
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

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The Python interpreter (with pytest and the project's dependencies).
    pub python: String,
    pub timeout: Duration,
}

/// How the tests are kept off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A new user and network namespace (`unshare -rn`): no network at all.
    Unshare,
    /// Only the proxy variables are removed.
    EnvOnly,
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
}

/// Runs pytest on generated projects, once its tools are known to be there.
pub struct Runner {
    options: ExecOptions,
    pub isolation: Isolation,
}

impl Runner {
    /// Checks that the interpreter runs and has pytest, and whether network
    /// isolation is available; the error says what is missing.
    pub fn probe(options: ExecOptions) -> Result<Runner, String> {
        let probe = Command::new(&options.python)
            .args(["-c", "import pytest"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match probe {
            Err(e) => return Err(format!("cannot run `{}`: {e}", options.python)),
            Ok(s) if !s.success() => {
                return Err(format!(
                    "`{} -c \"import pytest\"` failed: pytest is not installed for that interpreter",
                    options.python
                ));
            }
            Ok(_) => {}
        }
        let unshare = cfg!(target_os = "linux")
            && Command::new("unshare")
                .args(["-rn", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let isolation = if unshare {
            Isolation::Unshare
        } else {
            Isolation::EnvOnly
        };
        Ok(Runner { options, isolation })
    }

    /// A line for the user about network isolation.
    pub fn isolation_note(&self) -> &'static str {
        match self.isolation {
            Isolation::Unshare => "tests run without network (unshare -rn)",
            Isolation::EnvOnly => {
                "network isolation is unavailable (no working `unshare -rn`): tests run with proxy variables removed only"
            }
        }
    }

    /// Writes `files` into a temporary directory and runs pytest there.
    pub fn run(&self, files: &[(String, String)]) -> TestRun {
        let started = Instant::now();
        let mut run = match TempDir::new() {
            Ok(dir) => self.run_in(&dir, files),
            Err(e) => TestRun {
                summary: format!("could not create a temporary directory: {e}"),
                ..Default::default()
            },
        };
        run.seconds = started.elapsed().as_secs_f64();
        run
    }

    fn run_in(&self, dir: &TempDir, files: &[(String, String)]) -> TestRun {
        let project = dir.path.join("project");
        if let Err(e) = write_project(&project, files) {
            return TestRun {
                summary: format!("could not write the project: {e}"),
                ..Default::default()
            };
        }
        let mut command = match self.isolation {
            Isolation::Unshare => {
                let mut c = Command::new("unshare");
                c.args(["-rn", &self.options.python]);
                c
            }
            Isolation::EnvOnly => Command::new(&self.options.python),
        };
        command
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .current_dir(&project)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PIP_NO_INDEX", "1");
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        let log = dir.path.join("pytest.log");
        match run_with_timeout(command, &log, self.options.timeout) {
            Err(e) => TestRun {
                summary: format!("could not run pytest: {e}"),
                ..Default::default()
            },
            Ok(status) => {
                let output = std::fs::read(&log).unwrap_or_default();
                let output = String::from_utf8_lossy(&output);
                let mut run = TestRun {
                    exit_code: status.and_then(|s| s.code()),
                    timed_out: status.is_none(),
                    ..Default::default()
                };
                match summary_line(&output) {
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
                run
            }
        }
    }
}

/// Writes the files under `root`; paths that would leave it are refused.
fn write_project(root: &Path, files: &[(String, String)]) -> std::io::Result<()> {
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
    Ok(())
}

/// Runs `command` with stdout and stderr into `log`; kills its whole process
/// group after `timeout`. `Ok(None)` means it was killed.
pub fn run_with_timeout(
    mut command: Command,
    log: &Path,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let out = std::fs::File::create(log)?;
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        // The child leads its own process group (process_group(0) above), so
        // this reaches everything it started too.
        let pgid = child.id() as libc::pid_t;
        // SAFETY: killpg only sends a signal; a stale id fails harmlessly.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// The counts of pytest's summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
}

/// pytest's final line (`2 failed, 3 passed, 1 warning in 0.52s`, possibly
/// framed by `=`), and its counts.
pub fn summary_line(output: &str) -> Option<(&str, Counts)> {
    output.lines().rev().find_map(|raw| {
        let line = raw.trim().trim_matches('=').trim();
        let (counts_part, _) = line.rsplit_once(" in ")?;
        if counts_part == "no tests ran" {
            return Some((line, Counts::default()));
        }
        let mut counts = Counts::default();
        for item in counts_part.split(", ") {
            let (number, word) = item.split_once(' ')?;
            let n: usize = number.parse().ok()?;
            match word {
                "passed" => counts.passed = n,
                "failed" => counts.failed = n,
                "error" | "errors" => counts.errors = n,
                "skipped" => counts.skipped = n,
                "xfailed" | "xpassed" | "warning" | "warnings" | "deselected" | "rerun" => {}
                _ => return None,
            }
        }
        Some((line, counts))
    })
}

/// A directory under the system's temporary folder, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
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
        Err(std::io::Error::other("no free temporary directory name"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        let counts = |out: &str| {
            let c = summary_line(out).unwrap().1;
            (c.passed, c.failed, c.errors, c.skipped)
        };
        let out = "....F\n=== FAILURES ===\nblah\n1 failed, 4 passed, 2 warnings in 0.52s\n";
        assert_eq!(counts(out), (4, 1, 0, 0));
        assert_eq!(
            counts("==== 3 passed, 1 skipped in 1.01s (0:00:01) ====\n"),
            (3, 0, 0, 1)
        );
        assert_eq!(counts("ERROR x\n1 error in 0.1s\n"), (0, 0, 1, 0));
        assert_eq!(counts("no tests ran in 0.01s"), (0, 0, 0, 0));
        assert!(summary_line("Traceback ... in foo\nImportError: x\n").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_run_over_time_is_killed_with_its_children() {
        let dir = TempDir::new().unwrap();
        let pid_file = dir.path.join("background.pid");
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("sleep 30 & echo $! > {}; wait", pid_file.display()),
        ]);
        let started = Instant::now();
        let status =
            run_with_timeout(command, &dir.path.join("log"), Duration::from_millis(500)).unwrap();
        assert!(status.is_none(), "killed");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: libc::pid_t = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signal 0 only asks whether the process exists.
        let alive = || unsafe { libc::kill(pid, 0) } == 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the background child was killed with its group");
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo hi"]);
        let status = run_with_timeout(ok, &dir.path.join("log2"), Duration::from_secs(10)).unwrap();
        assert!(status.unwrap().success());
        assert_eq!(
            std::fs::read_to_string(dir.path.join("log2")).unwrap(),
            "hi\n"
        );
    }
}
