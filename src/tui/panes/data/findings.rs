//! Validation findings tied to records: the whole file's, from a worker at
//! open, after saving and when the Train form's token settings change, kept
//! in step with edits, inserts and removals (exact duplicates included:
//! each record's fingerprint is kept, so an edit re-links only the records
//! that share its old or new content).

use super::list::{on_insert, on_remove};
use crate::data::finding::{Finding, FindingKind, Severity};
use crate::data::format::Format;
use crate::data::parse;
use crate::data::sample::Conversation;
use crate::data::store::Store;
use crate::data::validate::{self, Options};
use crate::model::ChatTokenizer;
use std::sync::Arc;

/// A record without a sample has no fingerprint.
const NO_SAMPLE: u64 = 0;

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
    /// Each record's sample fingerprint (`NO_SAMPLE` for none), by record;
    /// None until a whole-file validation found them.
    fingerprints: Option<Vec<u64>>,
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
        if let Some(all) = self.fingerprints.as_mut().filter(|all| at <= all.len()) {
            all.insert(at, NO_SAMPLE);
        }
    }

    /// Record `at` is gone; the copies of its content are linked anew
    /// (`source` names a record for a duplicate's message).
    pub fn removed(&mut self, at: usize, source: impl Fn(usize) -> String) {
        on_remove(&mut self.items, at, |i| &mut i.record);
        if let Some(all) = self.fingerprints.as_mut().filter(|all| at < all.len()) {
            let gone = all.remove(at);
            self.link_duplicates(gone, &source);
        }
    }

    /// The fingerprints a whole-file validation found, as (record,
    /// fingerprint), for a store of `len` records.
    pub fn set_fingerprints(&mut self, len: usize, found: impl Iterator<Item = (usize, u64)>) {
        let mut all = vec![NO_SAMPLE; len];
        for (record, fingerprint) in found {
            if let Some(slot) = all.get_mut(record) {
                *slot = fingerprint.max(1);
            }
        }
        self.fingerprints = Some(all);
    }

    /// Record `record` now holds a sample with `fingerprint` (None: no
    /// sample): the records sharing its old content and its new content get
    /// their duplicate findings anew. Scans the fingerprints once or twice,
    /// a few milliseconds on a million records.
    pub fn set_fingerprint(
        &mut self,
        record: usize,
        fingerprint: Option<u64>,
        source: impl Fn(usize) -> String,
    ) {
        let Some(slot) = self
            .fingerprints
            .as_mut()
            .and_then(|all| all.get_mut(record))
        else {
            return;
        };
        let new = fingerprint.map_or(NO_SAMPLE, |f| f.max(1));
        let old = std::mem::replace(slot, new);
        self.clear_duplicates(record);
        self.link_duplicates(old, &source);
        if new != old {
            self.link_duplicates(new, &source);
        }
    }

    /// Every record with `fingerprint` but the first is a duplicate of it.
    fn link_duplicates(&mut self, fingerprint: u64, source: &dyn Fn(usize) -> String) {
        let Some(all) = self
            .fingerprints
            .as_ref()
            .filter(|_| fingerprint != NO_SAMPLE)
        else {
            return;
        };
        let group: Vec<usize> = (all.iter().enumerate())
            .filter(|(_, f)| **f == fingerprint)
            .map(|(record, _)| record)
            .collect();
        let Some((&first, copies)) = group.split_first() else {
            return;
        };
        let message = validate::duplicate_of(&source(first)).at_line(0);
        self.clear_duplicates(first);
        for &record in copies {
            self.clear_duplicates(record);
            let at = self.items.partition_point(|i| i.record <= record);
            let finding = message.clone();
            self.items.insert(at, Item { record, finding });
        }
    }

    fn clear_duplicates(&mut self, record: usize) {
        let start = self.items.partition_point(|i| i.record < record);
        let end = self.items.partition_point(|i| i.record <= record);
        let mut at = start;
        for _ in start..end {
            if self.items[at].finding.kind == FindingKind::Duplicate {
                self.items.remove(at);
            } else {
                at += 1;
            }
        }
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

/// One record's findings and its sample's fingerprint.
pub struct Checked {
    pub findings: Vec<Finding>,
    pub fingerprint: Option<u64>,
}

/// Validates one record as it stands in the store; with a tokenizer (and
/// its max_seq_len), its length and what the chat template drops too.
pub fn check(
    store: &Store,
    record: usize,
    file_format: Option<Format>,
    tokenizer: Option<(Arc<ChatTokenizer>, usize)>,
) -> Checked {
    let bytes = match store.raw(record) {
        Ok(bytes) => bytes,
        Err(e) => {
            let finding = Finding {
                line: 0,
                column: None,
                field: String::new(),
                kind: FindingKind::InvalidUtf8,
                severity: Severity::Error,
                message: format!("cannot read the record: {e}"),
            };
            return Checked {
                findings: vec![finding],
                fingerprint: None,
            };
        }
    };
    let findings = match &tokenizer {
        Some((tokenizer, max_seq_len)) => {
            let count = |sample: &_| tokenizer.count_tokens(sample).map_err(|e| e.to_string());
            let dropped = |conv: &Conversation| tokenizer.template.dropped(conv);
            let options = Options {
                max_seq_len: *max_seq_len,
                token_counter: Some(&count),
                template_check: Some(&dropped),
                ..Options::default()
            };
            validate::check_record(&bytes, 0, file_format, &options)
        }
        None => validate::check_record(&bytes, 0, file_format, &Options::default()),
    };
    let parsed = parse::parse_record(&bytes, file_format, None);
    Checked {
        findings,
        fingerprint: parsed.sample.map(|s| s.fingerprint()),
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
        f.removed(1, |r| r.to_string());
        assert_eq!(f.counts(), (0, 1));
        assert_eq!(f.worst(3), Some(Severity::Warning));
        f.set_record(0, vec![finding(Severity::Error)]);
        assert_eq!(f.records_at_least(Severity::Error), vec![0]);
        assert_eq!(f.records_at_least(Severity::Warning), vec![0, 3]);
    }
}
