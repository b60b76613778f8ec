//! Eval pane jobs that run off the UI thread: reading a results file (it
//! can be big) and summing it up.

use super::state::Loaded;
use super::{Job, Msg};
use crate::eval::results::read_results;
use crate::tui::action::Action;
use crate::tui::services::Services;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Sender;

pub fn run(job: Job, _services: &Arc<Services>, tx: &Sender<Action>) {
    match job {
        Job::Load { id, path } => {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let result = load(&path);
                let _ = tx.send(Action::Eval(Msg::Loaded { id, path, result }));
            });
        }
    }
}

/// Reads and summarises `path`; the error names the file and line. A panic
/// while summing up becomes an error too, so the pane never waits forever.
pub fn load(path: &Path) -> Result<Box<Loaded>, String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let samples = read_results(path)?;
    if samples.is_empty() {
        return Err(format!("{}: no results in the file", path.display()));
    }
    std::panic::catch_unwind(|| Box::new(Loaded::new(path.to_path_buf(), modified, samples)))
        .map_err(|_| format!("{}: could not sum up the results", path.display()))
}
