//! Record-level operations (replace, insert, remove) and their undo: each
//! operation applied returns its inverse, which goes on the undo stack.
//! Findings, the filter's rows and running workers' journals follow along.

use super::journal::Change;
use super::state::DataPane;
use crate::tui::action::{Effect, Notice};

/// How many operations can be undone.
const UNDO_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Record `at` becomes `text`.
    Set {
        at: usize,
        text: String,
    },
    /// `text` becomes record `at`.
    Insert {
        at: usize,
        text: String,
    },
    Remove {
        at: usize,
    },
}

impl DataPane {
    /// Applies `op`; returns the operation that undoes it.
    fn apply(&mut self, op: Op) -> Result<Op, String> {
        let (change, inverse) = match op {
            Op::Set { at, text } => {
                let old = self.store.raw(at).map_err(|e| e.to_string())?;
                self.store.set_text(at, text);
                let text = String::from_utf8_lossy(&old).into_owned();
                (Change::Set(at), Op::Set { at, text })
            }
            Op::Insert { at, text } => {
                self.store.insert_text(at, text);
                self.findings.inserted(at);
                self.rows.inserted(at);
                (Change::Insert(at), Op::Remove { at })
            }
            Op::Remove { at } => {
                let old = self.store.remove(at).map_err(|e| e.to_string())?;
                let store = &self.store;
                self.findings
                    .removed(at, |r| super::state::duplicate_source(store, r));
                self.rows.removed(at);
                let text = String::from_utf8_lossy(&old).into_owned();
                (Change::Remove(at), Op::Insert { at, text })
            }
        };
        self.validation_journal.push(change);
        self.filter.journal.push(change);
        match change {
            Change::Set(at) | Change::Insert(at) => {
                self.recheck(at);
                if let Some(pos) = self.rows.position(at) {
                    self.list.set(pos, self.visible_len());
                }
            }
            Change::Remove(_) => self.list.set(self.list.pos, self.visible_len()),
        }
        self.list.follow(self.list_height());
        let len = self.findings.len();
        self.findings_cursor.set(self.findings_cursor.pos, len);
        self.reload = true;
        Ok(inverse)
    }

    /// Applies `op` so that `u` undoes it.
    pub(super) fn perform(&mut self, op: Op) -> Vec<Effect> {
        match self.apply(op) {
            Ok(inverse) => {
                if self.undo.len() == UNDO_DEPTH {
                    self.undo.remove(0);
                }
                self.undo.push(inverse);
                Vec::new()
            }
            Err(e) => vec![Notice::error(format!("could not change the file: {e}"))],
        }
    }

    pub(super) fn undo_last(&mut self) -> Vec<Effect> {
        let Some(op) = self.undo.pop() else {
            return vec![Notice::info("nothing to undo")];
        };
        let what = match &op {
            Op::Set { .. } => "edit",
            Op::Insert { .. } => "deletion",
            Op::Remove { .. } => "addition",
        };
        match self.apply(op) {
            Ok(_) => vec![Notice::info(format!("undid the {what}"))],
            Err(e) => vec![Notice::error(format!("could not undo: {e}"))],
        }
    }
}
