//! Running a command under a time limit while reading its output through a
//! pipe as it comes: only the last [`KEEP`] bytes are kept, the rest is
//! counted, so a test run that prints gigabytes costs no memory.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Bytes of output kept (the end of it, where pytest's summary is).
pub const KEEP: usize = 64 << 10;
/// How long to keep reading after the command ended, for writers it left
/// behind (none can outlive the sandbox; unsandboxed ones may).
const DRAIN: Duration = Duration::from_millis(500);

/// The end of a command's output and how much came before it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    pub tail: Vec<u8>,
    /// Bytes read and dropped to keep `tail` at [`KEEP`] bytes.
    pub dropped: u64,
}

impl Captured {
    fn push(&mut self, chunk: &[u8]) {
        self.tail.extend_from_slice(chunk);
        // Trimming at twice the size keeps the copying linear.
        if self.tail.len() > 2 * KEEP {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let excess = self.tail.len().saturating_sub(KEEP);
        self.tail.drain(..excess);
        self.dropped += excess as u64;
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.tail).into_owned()
    }
}

/// How a command run by [`run_captured`] ended.
#[derive(Debug)]
pub struct Finished {
    /// `None` when it ran over the time limit and was killed.
    pub status: Option<ExitStatus>,
    pub output: Captured,
}

/// Runs `command` with stdout and stderr into one pipe, in its own process
/// group, which is killed after `timeout`.
pub fn run_captured(mut command: Command, timeout: Duration) -> std::io::Result<Finished> {
    let (mut reader, writer) = pipe()?;
    command
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn()?;
    // The command holds the pipe's write ends: without dropping it the pipe
    // never reports its end.
    drop(command);
    let deadline = Instant::now() + timeout;
    let mut output = Captured::default();
    let mut buffer = vec![0u8; 16 << 10];
    let mut status = None;
    let mut ended_at = None;
    let mut open = true;
    loop {
        if open && readable(&reader, Duration::from_millis(20)) {
            match reader.read(&mut buffer) {
                Ok(0) => open = false,
                Ok(n) => output.push(&buffer[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => open = false,
            }
        }
        if ended_at.is_none() {
            if let Some(s) = child.try_wait()? {
                status = Some(s);
                ended_at = Some(Instant::now());
            } else if Instant::now() >= deadline {
                kill_group(&mut child);
                child.wait()?;
                ended_at = Some(Instant::now());
            }
        }
        match ended_at {
            Some(at) if !open || at.elapsed() >= DRAIN => break,
            None if !open => std::thread::sleep(Duration::from_millis(20)),
            _ => {}
        }
    }
    output.trim();
    Ok(Finished { status, output })
}

/// A pipe (read end, write end), both closed on exec.
fn pipe() -> std::io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    let [read, write] = fds.map(|fd| File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
    Ok((read, write))
}

/// Whether the pipe has data (or its end) within `wait`.
fn readable(reader: &File, wait: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: reader.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut fd, 1, wait.as_millis() as libc::c_int) };
    ready > 0
}

fn kill_group(child: &mut std::process::Child) {
    // The child leads its own process group (process_group(0) above), so
    // this reaches everything it started that stayed in the group; the
    // sandbox's PID 1 follows its launcher through the parent-death signal.
    let pgid = child.id() as libc::pid_t;
    // SAFETY: killpg only sends a signal; a stale id fails harmlessly.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let _ = child.kill();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tail_is_kept() {
        let mut c = Captured::default();
        for _ in 0..10 {
            c.push(&vec![b'x'; KEEP / 3]);
        }
        c.push(b"end");
        c.trim();
        assert_eq!(c.tail.len(), KEEP);
        assert!(c.tail.ends_with(b"xend"));
        assert_eq!(c.dropped as usize, 10 * (KEEP / 3) + 3 - KEEP);
    }

    #[test]
    fn a_run_over_time_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("background.pid");
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("sleep 30 & echo $! > {}; wait", pid_file.display()),
        ]);
        let started = Instant::now();
        let finished = run_captured(command, Duration::from_millis(500)).unwrap();
        assert!(finished.status.is_none(), "killed");
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
        ok.args(["-c", "echo hi; echo there >&2"]);
        let finished = run_captured(ok, Duration::from_secs(10)).unwrap();
        assert!(finished.status.unwrap().success());
        assert_eq!(finished.output.text(), "hi\nthere\n");
    }
}
