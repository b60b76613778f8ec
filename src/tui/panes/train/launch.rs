//! Training as a child process: `tunebench train` in its own session (so it
//! outlives the workbench), its output into the run's console.log (never on
//! the workbench's screen), and SIGTERM for a graceful stop.

use crate::train::run_lock::{self, ProcessId};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the child prints (progress, errors before the run log opens).
pub const CONSOLE_LOG: &str = "console.log";

#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// A new run: the base configuration written to `config_file`, the
    /// form's values as `--set` overrides.
    New {
        run_dir: PathBuf,
        config_file: PathBuf,
        config_text: String,
        sets: Vec<String>,
    },
    /// Continue a run from its last checkpoint.
    Resume { run_dir: PathBuf },
}

impl Launch {
    pub fn run_dir(&self) -> &Path {
        match self {
            Launch::New { run_dir, .. } | Launch::Resume { run_dir } => run_dir,
        }
    }

    /// The arguments after the executable.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["train".into()];
        match self {
            Launch::New {
                run_dir,
                config_file,
                sets,
                ..
            } => {
                args.push("--config".into());
                args.push(config_file.into());
                for set in sets {
                    args.push("--set".into());
                    args.push(set.into());
                }
                args.push("--run-dir".into());
                args.push(run_dir.into());
            }
            Launch::Resume { run_dir } => {
                args.push("--resume".into());
                args.push(run_dir.into());
            }
        }
        args
    }

    /// The command, without its output redirection and session.
    pub fn command(&self, exe: &Path) -> Command {
        let mut command = Command::new(exe);
        command.args(self.args()).stdin(Stdio::null());
        command
    }

    /// Writes the config file (a new run), then starts the child in its own
    /// session with stdout and stderr appended to the run's console.log.
    pub fn spawn(&self, exe: &Path) -> io::Result<Child> {
        let dir = self.run_dir();
        std::fs::create_dir_all(dir)?;
        if let Launch::New {
            config_file,
            config_text,
            ..
        } = self
        {
            std::fs::write(config_file, config_text)?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(CONSOLE_LOG))?;
        let mut command = self.command(exe);
        command
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        // SAFETY: setsid is async-signal-safe and touches no Rust state; it
        // detaches the child from the terminal's session and process group,
        // so closing the workbench (or Ctrl+C in it) does not stop training.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn()
    }

    /// The config file to remove once the child has read it.
    pub fn config_file(&self) -> Option<&Path> {
        match self {
            Launch::New { config_file, .. } => Some(config_file),
            Launch::Resume { .. } => None,
        }
    }
}

/// `<runs>/<name>`, with `-2`, `-3`… when two runs start in the same second.
pub fn new_run_dir(runs: &Path, name: &str) -> PathBuf {
    let mut dir = runs.join(name);
    let mut n = 2;
    while dir.exists() {
        dir = runs.join(format!("{name}-{n}"));
        n += 1;
    }
    dir
}

/// Asks the process training `dir` to stop (it saves a checkpoint and ends
/// with status "stopped"); returns its pid. That process is the holder of
/// the run's lock, else `child`, a run we launched that has not taken the
/// lock yet; either is checked by pid and start time before the signal.
pub fn stop(dir: &Path, child: Option<ProcessId>) -> Result<u32, String> {
    let process = match run_lock::holder(dir)? {
        Some(holder) => holder,
        None => child.ok_or_else(|| {
            format!(
                "{}: no process holds the run's lock, so nothing is training it",
                dir.display()
            )
        })?,
    };
    process.signal(libc::SIGTERM)?;
    Ok(process.pid)
}

/// The last non-empty line of the run's console.log, to explain a failure.
pub fn console_tail(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join(CONSOLE_LOG)).ok()?;
    text.lines()
        .rev()
        .flat_map(|l| l.rsplit('\r'))
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_resume_commands() {
        let new = Launch::New {
            run_dir: PathBuf::from("runs/m-d-1"),
            config_file: PathBuf::from("runs/.m-d-1.toml"),
            config_text: String::new(),
            sets: vec!["lora.r=8".into(), "model.name=\"m\"".into()],
        };
        let args: Vec<String> = new
            .command(Path::new("/bin/tunebench"))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "train",
                "--config",
                "runs/.m-d-1.toml",
                "--set",
                "lora.r=8",
                "--set",
                "model.name=\"m\"",
                "--run-dir",
                "runs/m-d-1"
            ]
        );
        assert!(!args.iter().any(|a| a == "--json"));
        let resume = Launch::Resume {
            run_dir: PathBuf::from("runs/x"),
        };
        assert_eq!(resume.args(), ["train", "--resume", "runs/x"]);
        assert_eq!(resume.config_file(), None);
    }

    #[test]
    fn spawned_child_has_its_own_session_and_output_goes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch::New {
            run_dir: dir.path().join("run"),
            config_file: dir.path().join(".run.toml"),
            config_text: "x = 1\n".into(),
            sets: vec![],
        };
        // `sh -c '...' train ...`: prints its session id and arguments.
        let script = dir.path().join("fake");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"sid=$(ps -o sid= -p $$) pid=$$ args=$*\"\necho oops >&2\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut child = launch.spawn(&script).unwrap();
        let pid = child.id();
        assert!(child.wait().unwrap().success());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".run.toml")).unwrap(),
            "x = 1\n"
        );
        let log = std::fs::read_to_string(dir.path().join("run").join(CONSOLE_LOG)).unwrap();
        assert!(log.contains("args=train --config"), "{log}");
        let sid: Option<u32> = log
            .split("sid=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok());
        if let Some(sid) = sid {
            assert_eq!(sid, pid, "the child leads its own session: {log}");
        }
        assert_eq!(
            console_tail(&dir.path().join("run")).as_deref(),
            Some("oops")
        );
    }

    #[test]
    fn run_dirs_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let first = new_run_dir(dir.path(), "a");
        std::fs::create_dir_all(&first).unwrap();
        assert_eq!(new_run_dir(dir.path(), "a"), dir.path().join("a-2"));
    }
}
