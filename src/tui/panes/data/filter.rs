//! Filtering the list by text, format and finding severity. The criteria
//! are checked record by record on a worker over a snapshot of the store,
//! which streams the matches back; here live the criteria, the matcher both
//! sides use, and the state of the running filter.

use super::journal::Journal;
use crate::data::Format;
use crate::data::finding::Severity;
use crate::data::parse::parse_json;
use memchr::memmem::Finder;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Criteria {
    /// Substring of the record's text; case-insensitive unless it holds a
    /// capital letter.
    pub text: String,
    pub format: Option<Format>,
    /// Records with a finding at least this severe.
    pub severity: Option<Severity>,
}

impl Criteria {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.format.is_none() && self.severity.is_none()
    }

    /// A short label for the list's title.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            parts.push(format!("/{}", self.text));
        }
        if let Some(format) = self.format {
            parts.push(format!("format {}", format.name()));
        }
        match self.severity {
            Some(Severity::Error) => parts.push("errors".to_string()),
            Some(Severity::Warning) => parts.push("warnings+errors".to_string()),
            None => {}
        }
        parts.join(" · ")
    }
}

/// The criteria compiled for checking many records.
pub struct Matcher {
    finder: Option<Finder<'static>>,
    fold_case: bool,
    format: Option<Format>,
    /// With a severity filter: the records it lets through, ascending.
    records: Option<Vec<usize>>,
    lowered: Vec<u8>,
}

impl Matcher {
    /// `flagged`: the records with findings of the wanted severity (only
    /// read when the criteria filter by severity).
    pub fn new(criteria: &Criteria, flagged: Vec<usize>) -> Matcher {
        let fold_case = !criteria.text.chars().any(char::is_uppercase);
        let needle = if fold_case {
            criteria.text.to_lowercase()
        } else {
            criteria.text.clone()
        };
        Matcher {
            finder: (!needle.is_empty()).then(|| Finder::new(needle.as_bytes()).into_owned()),
            fold_case,
            format: criteria.format,
            records: criteria.severity.map(|_| flagged),
            lowered: Vec::new(),
        }
    }

    pub fn matches(&mut self, record: usize, bytes: &[u8]) -> bool {
        if let Some(records) = &self.records
            && records.binary_search(&record).is_err()
        {
            return false;
        }
        if let Some(finder) = &self.finder {
            let haystack = if self.fold_case {
                self.lowered.clear();
                self.lowered
                    .extend(bytes.iter().map(|b| b.to_ascii_lowercase()));
                &self.lowered[..]
            } else {
                bytes
            };
            if finder.find(haystack).is_none() {
                return false;
            }
        }
        match self.format {
            None => true,
            Some(format) => parse_json(bytes)
                .ok()
                .is_some_and(|v| Format::detect(&v) == Some(format)),
        }
    }
}

/// The filter in force and the worker applying it.
#[derive(Debug, Default)]
pub struct FilterState {
    pub criteria: Criteria,
    /// Id of the latest filter job; a worker whose id is no longer this stops.
    pub id: u64,
    pub cancel: Arc<AtomicU64>,
    /// (records scanned, records in all) while the worker runs.
    pub progress: Option<(usize, usize)>,
    /// Changes since the worker's snapshot.
    pub journal: Journal,
}

impl FilterState {
    pub fn running(&self) -> bool {
        self.progress.is_some()
    }
}

/// The next format in the `f` cycle: none, then each of `present`.
pub fn next_format(current: Option<Format>, present: &[Format]) -> Option<Format> {
    match current {
        None => present.first().copied(),
        Some(f) => match present.iter().position(|&p| p == f) {
            Some(i) => present.get(i + 1).copied(),
            None => None,
        },
    }
}

/// The next severity in the `s` cycle: off, errors, warnings and errors.
pub fn next_severity(current: Option<Severity>) -> Option<Severity> {
    match current {
        None => Some(Severity::Error),
        Some(Severity::Error) => Some(Severity::Warning),
        Some(Severity::Warning) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_smart_case_and_formats_parse() {
        let criteria = Criteria {
            text: "hello".into(),
            ..Criteria::default()
        };
        let mut m = Matcher::new(&criteria, Vec::new());
        assert!(m.matches(0, br#"{"text": "Say HELLO"}"#));
        assert!(!m.matches(1, br#"{"text": "bye"}"#));
        let mut m = Matcher::new(
            &Criteria {
                text: "Hello".into(),
                ..Criteria::default()
            },
            Vec::new(),
        );
        assert!(!m.matches(0, br#"{"text": "hello"}"#));
        let mut m = Matcher::new(
            &Criteria {
                format: Some(Format::Text),
                severity: Some(Severity::Error),
                ..Criteria::default()
            },
            vec![2],
        );
        assert!(!m.matches(0, br#"{"text": "x"}"#));
        assert!(m.matches(2, br#"{"text": "x"}"#));
        assert!(!m.matches(2, br#"{"prompt": "x", "completion": "y"}"#));
        assert!(!m.matches(2, b"{broken"));
    }

    #[test]
    fn cycles_wrap_around() {
        let present = [Format::Chat, Format::MultiFile];
        assert_eq!(next_format(None, &present), Some(Format::Chat));
        assert_eq!(
            next_format(Some(Format::Chat), &present),
            Some(Format::MultiFile)
        );
        assert_eq!(next_format(Some(Format::MultiFile), &present), None);
        assert_eq!(next_severity(next_severity(next_severity(None))), None);
    }
}
