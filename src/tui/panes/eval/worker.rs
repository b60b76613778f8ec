//! Eval pane jobs that run off the UI thread.

use super::Job;
use crate::tui::action::Action;
use crate::tui::services::Services;
use std::sync::Arc;
use std::sync::mpsc::Sender;

pub fn run(job: Job, _services: &Arc<Services>, _tx: &Sender<Action>) {
    match job {}
}
