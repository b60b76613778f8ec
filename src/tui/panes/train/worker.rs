//! Train pane jobs that run off the UI thread: measuring the data for the
//! estimate, launching (and reaping) training processes, stopping one.

use super::launch::{self, Launch};
use super::{Job, Msg};
use crate::train::run_lock::ProcessId;
use crate::tui::action::Action;
use crate::tui::services::Services;
use std::sync::Arc;
use std::sync::mpsc::Sender;

pub fn run(job: Job, services: &Arc<Services>, tx: &Sender<Action>) {
    let tx = tx.clone();
    match job {
        Job::Measure(job) => {
            std::thread::spawn(move || {
                let measured = super::estimate::measure(&job);
                let _ = tx.send(Action::Train(Msg::Measured(Box::new(measured))));
            });
        }
        Job::Launch(launch) => {
            let exe = services.exe.clone();
            std::thread::spawn(move || start_and_wait(&exe, launch, &tx));
        }
        Job::Stop { dir, child } => {
            let result = launch::stop(&dir, child);
            let _ = tx.send(Action::Train(Msg::Signalled { dir, result }));
        }
    }
}

/// Starts the child, reports its pid, then waits for it (so it never
/// lingers as a zombie that looks alive) and reports how it ended.
fn start_and_wait(exe: &std::path::Path, launch: Launch, tx: &Sender<Action>) {
    let dir = launch.run_dir().to_path_buf();
    let mut child = match launch.spawn(exe) {
        Ok(child) => child,
        Err(e) => {
            let error = format!("starting {} train: {e}", exe.display());
            let _ = tx.send(Action::Train(Msg::LaunchFailed { dir, error }));
            return;
        }
    };
    let pid = child.id();
    // Read before the child can be reaped, so it names this process.
    let process = ProcessId::of(pid).unwrap_or(ProcessId {
        pid,
        start_time: None,
    });
    let resumed = matches!(launch, Launch::Resume { .. });
    let _ = tx.send(Action::Train(Msg::Launched {
        dir: dir.clone(),
        process,
        resumed,
    }));
    let code = child.wait().ok().and_then(|s| s.code());
    if let Some(file) = launch.config_file() {
        // The run wrote its resolved config.toml; the launch file is spent.
        let _ = std::fs::remove_file(file);
    }
    let tail = launch::console_tail(&dir);
    let _ = tx.send(Action::Train(Msg::Exited {
        dir,
        pid,
        code,
        tail,
    }));
}
