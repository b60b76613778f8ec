//! The runs directory: which runs there are, newest first, each followed by
//! its own incremental reader, and what state each is in.

use super::follow::{Follower, Metrics};
use crate::train::run_lock::{ProcessId, is_held};
use crate::train::trainer_folder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A run without a start event whose files changed this recently is taken
/// to be still loading its model.
const STARTING_GRACE: Duration = Duration::from_secs(120);

/// A run trained elsewhere whose files have not changed for this long is
/// shown as idle: its trainer may be between saves, stopped, or gone, and
/// the files cannot say which.
const ELSEWHERE_QUIET: Duration = Duration::from_secs(30 * 60);

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
    /// Trained elsewhere, unfinished, and its files quiet for a while.
    Idle,
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
            Status::Idle => "idle",
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

    pub fn steps_label(&self) -> String {
        let m = self.metrics();
        let step = m.last.map_or(0, |l| l.step);
        match m.total_steps() {
            0 => format!("{step}"),
            total => format!("{step}/{total}"),
        }
    }
}

/// The status a run's events say it has, given whether a process is
/// training it (it holds the run's lock, or it is a child we launched that
/// has not taken the lock yet).
pub fn status_of(metrics: &Metrics, alive: bool, recently_touched: bool) -> Status {
    if let Some(end) = &metrics.end {
        return match end.status.as_str() {
            "completed" => Status::Completed,
            "stopped" => Status::Stopped,
            _ => Status::Failed,
        };
    }
    match (metrics.start.is_some(), alive) {
        (true, true) => Status::Running,
        (false, true) => Status::Starting,
        (false, false) if recently_touched => Status::Starting,
        _ => Status::Crashed,
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
    pub fn rescan(&mut self, launched: &HashMap<PathBuf, ProcessId>) -> bool {
        // Pointed at one Trainer output folder (a mirror of a remote run),
        // that folder is the one run.
        let found = if trainer_folder::is_trainer_folder(&self.dir) {
            vec![(
                self.dir.clone(),
                modified(&self.dir).unwrap_or(SystemTime::UNIX_EPOCH),
            )]
        } else {
            list_run_dirs(&self.dir)
        };
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
                    follower: if !dir.join("metrics.jsonl").exists()
                        && trainer_folder::is_trainer_folder(&dir)
                    {
                        Follower::trainer(&dir)
                    } else {
                        Follower::new(&dir.join("metrics.jsonl"))
                    },
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
    pub fn poll(&mut self, index: usize, launched: &HashMap<PathBuf, ProcessId>) -> bool {
        self.list
            .get_mut(index)
            .is_some_and(|run| refresh(run, launched))
    }
}

fn refresh(run: &mut Run, launched: &HashMap<PathBuf, ProcessId>) -> bool {
    let grew = run.follower.poll();
    if run.follower.is_trainer() {
        let status = elsewhere_status(run.metrics(), last_change(&run.dir));
        let changed = grew || status != run.status;
        run.status = status;
        return changed;
    }
    let touched = modified(&run.dir.join("metrics.jsonl"))
        .or_else(|| modified(&run.dir))
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < STARTING_GRACE);
    // Never the pid in the start event: it may since belong to another program.
    let alive = is_held(&run.dir) || launched.contains_key(&run.dir);
    let status = status_of(run.metrics(), alive, touched);
    let changed = grew || status != run.status;
    run.status = status;
    changed
}

/// A Trainer folder's status: its final summary ends it; until then its
/// files' age is all there is to go by.
fn elsewhere_status(metrics: &Metrics, quiet_for: Option<Duration>) -> Status {
    if metrics.end.is_some() {
        Status::Completed
    } else if quiet_for.is_some_and(|age| age < ELSEWHERE_QUIET) {
        Status::Running
    } else {
        Status::Idle
    }
}

/// How long ago a Trainer folder's newest file changed.
fn last_change(dir: &Path) -> Option<Duration> {
    trainer_folder::watched_files(dir)
        .iter()
        .filter_map(|f| modified(f))
        .max()
        .and_then(|t| t.elapsed().ok())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Sub-directories that hold a run (a metrics.jsonl, a launch's
/// console.log, or an HF Trainer output folder), with when the run began.
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
                .find(|p| p.exists())
                .or_else(|| trainer_folder::is_trainer_folder(&path).then(|| path.clone()))?;
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
        assert_eq!(status_of(&m, false, true), Status::Starting);
        assert_eq!(status_of(&m, false, false), Status::Crashed);
        assert_eq!(status_of(&m, true, false), Status::Starting);
        m.apply(&json!({"event": "start", "pid": 1, "total_steps": 5}));
        assert_eq!(status_of(&m, true, false), Status::Running);
        assert_eq!(status_of(&m, false, true), Status::Crashed);
        m.apply(&json!({"event": "end", "status": "stopped"}));
        assert_eq!(status_of(&m, true, true), Status::Stopped);
        m.apply(&json!({"event": "end", "status": "failed"}));
        assert_eq!(status_of(&m, false, false), Status::Failed);
        m.apply(&json!({"event": "end", "status": "completed"}));
        assert_eq!(status_of(&m, false, false), Status::Completed);
    }

    #[test]
    fn a_run_is_running_while_its_lock_is_held_whatever_pid_it_names() {
        let dir = tempfile::tempdir().unwrap();
        // A live process with `train` in its arguments, named by the start
        // event, but holding no lock: the pid of a crashed run, reused.
        let mut decoy = std::process::Command::new("sh")
            .args(["-c", "sleep 30; true", "train"])
            .spawn()
            .unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("metrics.jsonl"),
            format!(
                "{}\n",
                json!({"event": "start", "pid": decoy.id(), "total_steps": 5})
            ),
        )
        .unwrap();
        let mut runs = Runs::new(dir.path().to_path_buf());
        let launched = HashMap::new();
        runs.rescan(&launched);
        assert_eq!(runs.list[0].status, Status::Crashed);
        let lock = crate::train::run_lock::RunLock::acquire(&run).unwrap();
        runs.rescan(&launched);
        assert_eq!(runs.list[0].status, Status::Running);
        drop(lock);
        runs.rescan(&launched);
        assert_eq!(runs.list[0].status, Status::Crashed);
        decoy.kill().unwrap();
        decoy.wait().unwrap();
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
