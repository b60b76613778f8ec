//! Validation findings tied to records: the whole file's, from a worker at
//! open and after saving, kept in step with edits, inserts and removals.

use super::list::{on_insert, on_remove};
use crate::data::finding::{Finding, Severity};
use crate::data::format::Format;
use crate::data::store::Store;
use crate::data::validate::{self, Options};

/// A finding of one record; `finding.line` counts from the record's first
/// line (0 = that line).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub record: usize,
    pub finding: Finding,
}

#[derive(Debug, Default)]
pub struct Findings {
    /// Sorted by record.
    items: Vec<Item>,
    /// Whether the first whole-file validation has reported.
    pub ready: bool,
    /// A whole-file validation is running.
    pub running: bool,
}

impl Findings {
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Replaces all findings with a whole-file report.
    pub fn replace_all(&mut self, mut items: Vec<Item>) {
        items.sort_by_key(|i| i.record);
        self.items = items;
        self.ready = true;
        self.running = false;
    }

    /// The findings of one record.
    pub fn of(&self, record: usize) -> &[Item] {
        let start = self.items.partition_point(|i| i.record < record);
        let end = self.items.partition_point(|i| i.record <= record);
        &self.items[start..end]
    }

    /// Replaces one record's findings.
    pub fn set_record(&mut self, record: usize, findings: Vec<Finding>) {
        let start = self.items.partition_point(|i| i.record < record);
        let end = self.items.partition_point(|i| i.record <= record);
        let new = findings.into_iter().map(|finding| Item { record, finding });
        self.items.splice(start..end, new);
    }

    pub fn inserted(&mut self, at: usize) {
        on_insert(&mut self.items, at, |i| &mut i.record);
    }

    pub fn removed(&mut self, at: usize) {
        on_remove(&mut self.items, at, |i| &mut i.record);
    }

    /// (errors, warnings).
    pub fn counts(&self) -> (usize, usize) {
        let errors = self
            .items
            .iter()
            .filter(|i| i.finding.severity == Severity::Error)
            .count();
        (errors, self.items.len() - errors)
    }

    /// The worst severity among a record's findings.
    pub fn worst(&self, record: usize) -> Option<Severity> {
        self.of(record).iter().map(|i| i.finding.severity).min()
    }

    /// Records with a finding at least as severe as `severity`, ascending.
    pub fn records_at_least(&self, severity: Severity) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .items
            .iter()
            .filter(|i| i.finding.severity <= severity)
            .map(|i| i.record)
            .collect();
        out.dedup();
        out
    }
}

/// Validates one record as it stands in the store.
pub fn check(store: &Store, record: usize, file_format: Option<Format>) -> Vec<Finding> {
    match store.raw(record) {
        Ok(bytes) => validate::check_record(&bytes, 0, file_format, &Options::default()),
        Err(e) => vec![Finding {
            line: 0,
            column: None,
            field: String::new(),
            kind: crate::data::FindingKind::InvalidUtf8,
            severity: Severity::Error,
            message: format!("cannot read the record: {e}"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FindingKind;

    fn finding(severity: Severity) -> Finding {
        Finding {
            line: 0,
            column: None,
            field: String::new(),
            kind: FindingKind::EmptyField,
            severity,
            message: "m".into(),
        }
    }

    #[test]
    fn records_keep_their_findings_through_edits() {
        let mut f = Findings::default();
        f.replace_all(vec![
            Item {
                record: 3,
                finding: finding(Severity::Warning),
            },
            Item {
                record: 1,
                finding: finding(Severity::Error),
            },
        ]);
        assert_eq!(f.counts(), (1, 1));
        f.inserted(2);
        assert_eq!(f.of(4).len(), 1);
        f.removed(1);
        assert_eq!(f.counts(), (0, 1));
        assert_eq!(f.worst(3), Some(Severity::Warning));
        f.set_record(0, vec![finding(Severity::Error)]);
        assert_eq!(f.records_at_least(Severity::Error), vec![0]);
        assert_eq!(f.records_at_least(Severity::Warning), vec![0, 3]);
    }
}
