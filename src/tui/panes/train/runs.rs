//! The runs directory: which runs there are, newest first, each followed by
//! its own incremental reader, and what state each is in.

use super::follow::{Follower, Metrics};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A run without a start event whose files changed this recently is taken
/// to be still loading its model.
const STARTING_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Launched, no start event yet (loading the model and data).
    Starting,
    Running,
    Completed,
    Stopped,
    Failed,
    /// No end event and its process is gone (killed, crashed, machine rebooted).
    Crashed,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
            Status::Crashed => "crashed",
        }
    }

    pub fn is_live(self) -> bool {
        matches!(self, Status::Starting | Status::Running)
    }
}

#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub name: String,
    pub created: SystemTime,
    pub follower: Follower,
    pub status: Status,
}

impl Run {
    pub fn metrics(&self) -> &Metrics {
        &self.follower.metrics
    }

    /// The training process, from the start event or our own launch.
    pub fn pid(&self, launched: &HashMap<PathBuf, u32>) -> Option<u32> {
        launched
            .get(&self.dir)
            .copied()
            .or_else(|| self.metrics().start.as_ref().and_then(|s| s.pid))
    }

    pub fn steps_label(&self) -> String {
        let m = self.metrics();
        let step = m.last.map_or(0, |l| l.step);
        match m.total_steps() {
            0 => format!("{step}"),
            total => format!("{step}/{total}"),
        }
    }
}

/// The status a run's events and process say it has.
pub fn status_of(metrics: &Metrics, pid: Option<u32>, recently_touched: bool) -> Status {
    if let Some(end) = &metrics.end {
        return match end.status.as_str() {
            "completed" => Status::Completed,
            "stopped" => Status::Stopped,
            _ => Status::Failed,
        };
    }
    let alive = pid.is_some_and(training_process_alive);
    match (metrics.start.is_some(), alive) {
        (true, true) => Status::Running,
        (false, true) => Status::Starting,
        (false, false) if recently_touched && pid.is_none() => Status::Starting,
        _ => Status::Crashed,
    }
}

/// Whether `pid` is a live process that is a training run: `kill(pid, 0)`,
/// and where /proc exists, a command line with `train` in it (a crashed
/// run's pid may since belong to something else).
pub fn training_process_alive(pid: u32) -> bool {
    let Ok(id) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if id <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(id, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        // Empty for a zombie (exited, not yet reaped), and for a moment
        // while a fresh child is still inside exec.
        Ok(cmdline) if cmdline.is_empty() => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| {
                !stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            }),
        Ok(cmdline) => cmdline.split(|&b| b == 0).any(|arg| arg == b"train"),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// The runs in a directory, kept up to date by `rescan`.
#[derive(Debug, Default)]
pub struct Runs {
    pub dir: PathBuf,
    /// Newest first.
    pub list: Vec<Run>,
}

impl Runs {
    pub fn new(dir: PathBuf) -> Runs {
        Runs {
            dir,
            list: Vec::new(),
        }
    }

    pub fn find(&self, dir: &Path) -> Option<usize> {
        self.list.iter().position(|r| r.dir == dir)
    }

    /// Lists the run directories again, reads what every run appended and
    /// re-checks which processes live; true when anything shown changed.
    pub fn rescan(&mut self, launched: &HashMap<PathBuf, u32>) -> bool {
        let found = list_run_dirs(&self.dir);
        let mut changed = found.len() != self.list.len();
        let mut old: HashMap<PathBuf, Run> =
            self.list.drain(..).map(|r| (r.dir.clone(), r)).collect();
        for (dir, created) in found {
            let run = old.remove(&dir).unwrap_or_else(|| {
                changed = true;
                Run {
                    name: dir
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    follower: Follower::new(&dir.join("metrics.jsonl")),
                    dir,
                    created,
                    status: Status::Starting,
                }
            });
            self.list.push(run);
        }
        self.list
            .sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
        for run in &mut self.list {
            changed |= refresh(run, launched);
        }
        changed
    }

    /// Reads what one run appended (the attached run, between rescans).
    pub fn poll(&mut self, index: usize, launched: &HashMap<PathBuf, u32>) -> bool {
        self.list
            .get_mut(index)
            .is_some_and(|run| refresh(run, launched))
    }
}

fn refresh(run: &mut Run, launched: &HashMap<PathBuf, u32>) -> bool {
    let grew = run.follower.poll();
    let touched = modified(&run.dir.join("metrics.jsonl"))
        .or_else(|| modified(&run.dir))
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < STARTING_GRACE);
    let status = status_of(run.metrics(), run.pid(launched), touched);
    let changed = grew || status != run.status;
    run.status = status;
    changed
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Sub-directories that hold a run (a metrics.jsonl or a launch's
/// console.log), with when the run began.
fn list_run_dirs(dir: &Path) -> Vec<(PathBuf, SystemTime)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let path = e.path();
            let marker = ["metrics.jsonl", super::launch::CONSOLE_LOG]
                .iter()
                .map(|name| path.join(name))
                .find(|p| p.exists())?;
            let meta = std::fs::metadata(&marker).ok()?;
            let created = meta.created().or_else(|_| meta.modified()).ok()?;
            Some((path, created))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_follows_events_and_the_process() {
        let mut m = Metrics::default();
        let me = std::process::id();
        // The test binary's command line has no `train` argument.
        assert_eq!(status_of(&m, None, true), Status::Starting);
        assert_eq!(status_of(&m, None, false), Status::Crashed);
        m.apply(&json!({"event": "start", "pid": me, "total_steps": 5}));
        assert_eq!(status_of(&m, Some(me), true), Status::Crashed);
        m.apply(&json!({"event": "end", "status": "stopped"}));
        assert_eq!(status_of(&m, Some(me), true), Status::Stopped);
        m.apply(&json!({"event": "end", "status": "failed"}));
        assert_eq!(status_of(&m, None, false), Status::Failed);
        m.apply(&json!({"event": "end", "status": "completed"}));
        assert_eq!(status_of(&m, None, false), Status::Completed);
        assert!(!training_process_alive(0));
        assert!(!training_process_alive(u32::MAX));
    }

    #[test]
    fn a_live_training_process_is_running() {
        // `train` is $0 of the shell, which stays (two commands: no exec).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 10; true", "train"])
            .spawn()
            .unwrap();
        let mut m = Metrics::default();
        m.apply(&json!({"event": "start", "pid": child.id(), "total_steps": 5}));
        assert_eq!(status_of(&m, Some(child.id()), false), Status::Running);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(status_of(&m, Some(child.id()), false), Status::Crashed);
    }

    #[test]
    fn rescan_finds_new_runs_and_growth() {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = Runs::new(dir.path().to_path_buf());
        let launched = HashMap::new();
        assert!(!runs.rescan(&launched));
        let a = dir.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(dir.path().join("not-a-run")).unwrap();
        std::fs::write(
            a.join("metrics.jsonl"),
            "{\"event\":\"start\",\"total_steps\":4}\n{\"event\":\"end\",\"status\":\"completed\"}\n",
        )
        .unwrap();
        assert!(runs.rescan(&launched));
        assert_eq!(runs.list.len(), 1);
        assert_eq!(runs.list[0].status, Status::Completed);
        assert!(!runs.rescan(&launched), "nothing changed");
    }
}
