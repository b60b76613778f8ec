//! The real binary in a pseudo-terminal: signals that end the workbench
//! must give the terminal back (alternate screen left, cursor shown, mouse
//! capture and bracketed paste off).

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ENTER_ALTERNATE: &str = "\x1b[?1049h";
const RESTORED: [(&str, &str); 4] = [
    ("\x1b[?1049l", "leaves the alternate screen"),
    ("\x1b[?25h", "shows the cursor"),
    ("\x1b[?1000l", "ends mouse capture"),
    ("\x1b[?2004l", "ends bracketed paste"),
];

/// A pty pair (master, slave), 100x30.
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors we then own; the name and
    // termios pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn wait_for(output: &Mutex<Vec<u8>>, what: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if String::from_utf8_lossy(&output.lock().unwrap()).contains(what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The workbench running in a pty, and everything it wrote so far.
struct Session {
    child: std::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
    master: std::fs::File,
    reader: std::thread::JoinHandle<()>,
    _work: tempfile::TempDir,
}

impl Session {
    fn start() -> Session {
        let work = tempfile::tempdir().unwrap();
        let data = work.path().join("chat.jsonl");
        std::fs::write(
            &data,
            r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}"#,
        )
        .unwrap();
        let (master, slave) = open_pty();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tunebench"))
            .args(["ui", "--model", "/nope", "--data"])
            .arg(&data)
            .arg("--runs")
            .arg(work.path().join("runs"))
            .current_dir(work.path())
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let master = std::fs::File::from(master);
        let reader = {
            let output = Arc::clone(&output);
            let mut master = master.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Ends with EIO once the child and every slave copy are gone.
                while let Ok(n) = master.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        let entered = wait_for(&output, ENTER_ALTERNATE, Duration::from_secs(30));
        if !entered {
            let _ = child.kill();
        }
        assert!(entered, "the workbench did not start");
        // Let it draw once, so what follows is not mixed up with the start.
        std::thread::sleep(Duration::from_millis(300));
        Session {
            child,
            output,
            master,
            reader,
            _work: work,
        }
    }

    /// What the workbench wrote from byte `from` on.
    fn written_since(&self, from: usize) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()[from..]).into_owned()
    }

    fn written(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: sends a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// The child's state letter from /proc ('T' when stopped).
    fn state(&self) -> char {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after_name = stat.rsplit(')').next().unwrap_or_default();
        after_name.trim_start().chars().next().unwrap_or('?')
    }

    fn wait(mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("the workbench did not end");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(self.master);
        let _ = self.reader.join();
        status
    }
}

fn assert_restored(written: &str, when: &str) {
    for (sequence, does) in RESTORED {
        assert!(
            written.contains(sequence),
            "{when} the workbench {does}: {written:?}"
        );
    }
}

fn restores_the_terminal_on(signal: libc::c_int) {
    let session = Session::start();
    let before = session.written();
    session.signal(signal);
    let output = Arc::clone(&session.output);
    let status = session.wait();
    let after = String::from_utf8_lossy(&output.lock().unwrap()[before..]).into_owned();
    assert_restored(&after, &format!("on signal {signal}"));
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_restores_the_terminal() {
    restores_the_terminal_on(libc::SIGTERM);
}

#[test]
fn sighup_restores_the_terminal() {
    restores_the_terminal_on(libc::SIGHUP);
}

#[test]
fn ctrl_z_suspends_with_the_terminal_restored_and_fg_redraws() {
    use std::io::Write;
    let mut session = Session::start();
    let before = session.written();
    session.master.write_all(&[0x1a]).unwrap(); // Ctrl+z
    let start = Instant::now();
    while session.state() != 'T' && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(session.state(), 'T', "Ctrl+z stops the process");
    // What it wrote before stopping may still be on its way through the pty.
    let restored = |written: &str| {
        RESTORED
            .iter()
            .all(|(sequence, _)| written.contains(sequence))
    };
    let start = Instant::now();
    while !restored(&session.written_since(before)) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_restored(&session.written_since(before), "suspended,");

    let stopped = session.written();
    session.signal(libc::SIGCONT); // what `fg` sends
    assert!(
        wait_for(&session.output, ENTER_ALTERNATE, Duration::from_secs(10))
            && wait_for_after(&session, stopped, "Hello."),
        "fg takes the screen again and redraws: {:?}",
        session.written_since(stopped)
    );
    session.signal(libc::SIGTERM);
    assert!(session.wait().success());
}

/// Waits until `what` appears in the output after byte `from`.
fn wait_for_after(session: &Session, from: usize, what: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if session.written_since(from).contains(what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
