//! Worker reports and messages routed from the app to the Train pane.

use super::runs::Status;
use super::{Msg, TrainPane, dir_name, launch};
use crate::tui::action::{Effect, Notice};

impl TrainPane {
    /// A worker's report or a message routed from the app.
    pub fn message(&mut self, msg: Msg) -> Vec<Effect> {
        let mut effects = Vec::new();
        match msg {
            Msg::Dataset(path) => {
                self.setup.data = path;
                self.switch_form();
                effects.extend(self.measure_if_stale());
            }
            Msg::Model(name) => {
                self.setup.model = name;
                self.switch_form();
                effects.extend(self.measure_if_stale());
            }
            Msg::Measured(measured) => {
                self.measuring = None;
                self.measured = Some(*measured);
            }
            Msg::Launched {
                dir,
                process,
                resumed,
            } => {
                self.launched.insert(dir.clone(), process);
                self.attached = Some(dir.clone());
                self.rescan();
                let verb = if resumed { "resumed" } else { "started" };
                effects.push(Notice::info(format!(
                    "{verb} {} (pid {}); output in {}",
                    dir_name(&dir),
                    process.pid,
                    dir.join(launch::CONSOLE_LOG).display()
                )));
            }
            Msg::LaunchFailed { error, .. } => effects.push(Notice::error(error)),
            Msg::Exited {
                dir,
                pid,
                code,
                tail,
            } => {
                self.launched.remove(&dir);
                self.rescan();
                let status = self
                    .runs
                    .find(&dir)
                    .map(|i| self.runs.list[i].status)
                    .unwrap_or(Status::Failed);
                let name = dir_name(&dir);
                effects.push(match status {
                    Status::Completed => Notice::info(format!("{name} completed")),
                    Status::Stopped => Notice::info(format!("{name} stopped; r resumes it")),
                    _ => Notice::error(format!(
                        "{name} (pid {pid}) ended with {}{}",
                        code.map_or("a signal".to_string(), |c| format!("exit code {c}")),
                        tail.map(|t| format!(": {t}")).unwrap_or_default()
                    )),
                });
            }
            Msg::Signalled { dir, result } => effects.push(match result {
                Ok(pid) => Notice::info(format!(
                    "stopping {} (pid {pid}): saving a checkpoint…",
                    dir_name(&dir)
                )),
                Err(e) => Notice::error(e),
            }),
        }
        effects.extend(self.measure_if_stale());
        effects
    }
}
