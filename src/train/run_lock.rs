//! One writer per run. A training process holds an exclusive `flock` on
//! `<run>/lock` for its whole life; the kernel drops it when the process
//! exits or is killed, so a crashed run can be resumed and a live one cannot
//! be written twice. The file records the holder's pid and start time, so a
//! viewer signals that process and no other: a pid alone may since belong to
//! an unrelated program.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

pub const LOCK_FILE: &str = "lock";

/// How long `acquire` retries before refusing: a viewer's probe holds a
/// shared lock for an instant, a training run for its whole life.
const ACQUIRE_PATIENCE: Duration = Duration::from_secs(1);

/// A process, told apart from later ones that reuse its pid by its start
/// time (clock ticks after boot, /proc/PID/stat field 22; None without /proc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: Option<u64>,
}

impl ProcessId {
    /// `pid` as it is now (None if there is no such process).
    pub fn of(pid: u32) -> Option<ProcessId> {
        let start_time = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => Some(start_time_field(&stat)?),
            Err(_) if Path::new("/proc/self").exists() => return None,
            Err(_) => None,
        };
        Some(ProcessId { pid, start_time })
    }

    pub fn current() -> ProcessId {
        ProcessId::of(std::process::id()).unwrap_or(ProcessId {
            pid: std::process::id(),
            start_time: None,
        })
    }

    /// Whether this is still the process it was: the pid lives and started
    /// at the recorded time.
    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|now| now.start_time == self.start_time)
    }

    /// Sends `signal` to this process, never to a later one with its pid.
    pub fn signal(&self, signal: libc::c_int) -> Result<(), String> {
        let pid = self.pid;
        let id = libc::pid_t::try_from(pid)
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| format!("pid {pid} is not a process"))?;
        if !self.is_alive() {
            return Err(format!(
                "pid {pid} is no longer the process that was recorded (it ended; the pid may since belong to another program)"
            ));
        }
        // SAFETY: kill only sends a signal.
        if unsafe { libc::kill(id, signal) } == 0 {
            Ok(())
        } else {
            Err(format!(
                "signalling pid {pid}: {}",
                io::Error::last_os_error()
            ))
        }
    }
}

/// Field 22 of /proc/PID/stat; the command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its closing one.
fn start_time_field(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "{dir} is in use by training process {holder}; a run has one writer at a time. Stop it first (the Train tab's x, or kill -TERM {holder}) or wait for it to end"
    )]
    Held { dir: String, holder: String },
}

/// The exclusive lock of a run directory; dropping it (or the process
/// ending in any way) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of the existing directory `dir` and records this
    /// process in it, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_error = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        // Never truncated on open: a refused process must not wipe the
        // holder's record.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        let deadline = std::time::Instant::now() + ACQUIRE_PATIENCE;
        while !try_flock(&file, libc::LOCK_EX).map_err(io_error)? {
            if std::time::Instant::now() >= deadline {
                let holder = read_record(&path).map_or_else(
                    || "(pid not recorded yet)".to_string(),
                    |p| p.pid.to_string(),
                );
                return Err(LockError::Held {
                    dir: dir.display().to_string(),
                    holder,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let record = serde_json::to_string(&ProcessId::current()).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.write_all(format!("{record}\n").as_bytes()))
            .map_err(io_error)?;
        Ok(RunLock { _file: file })
    }
}

/// Whether a live process holds `dir`'s lock. A free lock means no process
/// is training this run, whatever pid its files name.
pub fn is_held(dir: &Path) -> bool {
    // The probe's shared lock conflicts with a writer's exclusive one and
    // lasts an instant (`acquire` waits that out).
    File::open(dir.join(LOCK_FILE))
        .is_ok_and(|file| matches!(try_flock(&file, libc::LOCK_SH), Ok(false)))
}

/// The process training `dir`: None when the lock is free; an error when it
/// is held but the holder cannot be told.
pub fn holder(dir: &Path) -> Result<Option<ProcessId>, String> {
    if !is_held(dir) {
        return Ok(None);
    }
    let path = dir.join(LOCK_FILE);
    match read_record(&path) {
        Some(process) if process.is_alive() => Ok(Some(process)),
        Some(process) => Err(format!(
            "{}: pid {} is not the process that holds the lock; not signalling it",
            path.display(),
            process.pid
        )),
        None => Err(format!(
            "{}: held, but the holder's pid is not recorded (yet); try again in a moment",
            path.display()
        )),
    }
}

fn read_record(path: &Path) -> Option<ProcessId> {
    serde_json::from_str(std::fs::read_to_string(path).ok()?.trim()).ok()
}

/// `flock(operation | LOCK_NB)`: true when taken, false when another open
/// file holds a conflicting lock. A shared probe lock is released at once.
fn try_flock(file: &File, operation: libc::c_int) -> io::Result<bool> {
    // SAFETY: flock on a descriptor this File owns.
    if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
        if operation == libc::LOCK_SH {
            // SAFETY: as above.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_at_a_time_and_free_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_held(dir.path()));
        assert_eq!(holder(dir.path()), Ok(None));
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert!(is_held(dir.path()));
        assert_eq!(holder(dir.path()), Ok(Some(ProcessId::current())));
        let refused = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("training process {}", std::process::id())),
            "{refused}"
        );
        // The refused attempt left the holder's record alone.
        assert_eq!(holder(dir.path()), Ok(Some(ProcessId::current())));
        drop(lock);
        assert!(!is_held(dir.path()));
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn start_time_tells_a_reused_pid_apart() {
        let me = ProcessId::current();
        assert!(me.start_time.is_some(), "this test needs /proc");
        assert!(me.is_alive());
        let impostor = ProcessId {
            start_time: me.start_time.map(|t| t + 1),
            ..me
        };
        assert!(!impostor.is_alive());
        let refused = impostor.signal(0).unwrap_err();
        assert!(refused.contains("no longer the process"), "{refused}");
        me.signal(0).unwrap();
        assert_eq!(
            start_time_field("42 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99 20"),
            Some(99)
        );
    }
}
