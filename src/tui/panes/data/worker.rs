//! Data pane jobs that run off the UI thread: whole-file validation,
//! filtering (streaming matches back), and tokenisation with the loaded
//! model's tokenizer. Each job reads its own snapshot of the store.

use super::filter::{Criteria, Matcher};
use super::findings::Item;
use super::tokens::Tokens;
use super::{FilterBatch, Job, Msg, Validated};
use crate::data::Format;
use crate::data::sample::Sample;
use crate::data::store::Store;
use crate::data::validate::{self, Options};
use crate::model::tokenize::ChatTokenizer;
use crate::tui::action::Action;
use crate::tui::services::Services;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// How often a running filter reports.
const REPORT_EVERY: Duration = Duration::from_millis(50);

pub fn run(job: Job, services: &Arc<Services>, tx: &Sender<Action>) {
    let services = Arc::clone(services);
    let tx = tx.clone();
    std::thread::spawn(move || {
        let send = |msg: Msg| tx.send(Action::Data(msg)).is_ok();
        match job {
            Job::Validate { generation, store } => {
                send(Msg::Validated {
                    generation,
                    result: validate_all(&store.0),
                });
            }
            Job::Filter {
                id,
                store,
                criteria,
                flagged,
                cancel,
            } => filter(id, &store.0, &criteria, flagged, &cancel, &send),
            Job::FileTokens { seq, contents } => {
                let result = with_tokenizer(&services, |t| count_files(t, &contents));
                send(Msg::FileTokens { seq, result });
            }
            Job::Tokens { seq, sample } => {
                let result = with_tokenizer(&services, |t| encode(t, &sample));
                send(Msg::Tokens { seq, result });
            }
        }
    });
}

fn with_tokenizer<T>(
    services: &Services,
    f: impl FnOnce(&ChatTokenizer) -> Result<T, String>,
) -> Result<T, String> {
    let slot = services
        .model
        .read()
        .map_err(|_| "model lock poisoned".to_string())?;
    match slot.as_ref() {
        Some(model) => f(&model.tokenizer),
        None => Err("the model is not loaded (yet)".to_string()),
    }
}

/// Validates every record and ties each finding to its record.
pub fn validate_all(store: &Store) -> Result<Validated, String> {
    let report = validate::validate(store, &Options::default())
        .map_err(|e| format!("validating {}: {e}", store.path().display()))?;
    // Records from disk keep their file order through inserts and removals,
    // so their lines ascend.
    let lines: Vec<(usize, usize)> = (0..store.len())
        .filter_map(|i| store.line(i).map(|line| (line, i)))
        .collect();
    let mut items = Vec::with_capacity(report.findings.len());
    for mut finding in report.findings {
        if finding.line == 0 {
            continue;
        }
        let at = lines.partition_point(|&(line, _)| line <= finding.line);
        let Some(&(start, record)) = lines.get(at.saturating_sub(1)) else {
            continue;
        };
        finding.line = finding.line.saturating_sub(start);
        items.push(Item { record, finding });
    }
    let formats: Vec<Format> = report.formats.keys().copied().collect();
    Ok(Validated {
        items,
        formats,
        format: report.format,
    })
}

/// Checks every record against `criteria`, sending matches as they are
/// found; stops when `cancel` no longer holds `id`.
pub fn filter(
    id: u64,
    store: &Store,
    criteria: &Criteria,
    flagged: Vec<usize>,
    cancel: &AtomicU64,
    send: &dyn Fn(Msg) -> bool,
) {
    let mut matcher = Matcher::new(criteria, flagged);
    let total = store.len();
    let mut rows = Vec::new();
    let mut last = Instant::now();
    let batch = |rows: Vec<usize>, scanned: usize, done: bool, error: Option<String>| {
        Msg::Filtered(FilterBatch {
            id,
            rows,
            scanned,
            total,
            done,
            error,
        })
    };
    let result = store.visit(|record| {
        if record.index % 1024 == 0 && cancel.load(Ordering::Relaxed) != id {
            return Err(io::Error::other("cancelled"));
        }
        if matcher.matches(record.index, record.bytes) {
            rows.push(record.index);
        }
        if last.elapsed() >= REPORT_EVERY {
            last = Instant::now();
            if !send(batch(
                std::mem::take(&mut rows),
                record.index + 1,
                false,
                None,
            )) {
                return Err(io::Error::other("cancelled"));
            }
        }
        Ok(())
    });
    if cancel.load(Ordering::Relaxed) != id {
        return;
    }
    let error = result.err().map(|e| format!("filtering: {e}"));
    send(batch(rows, total, true, error));
}

/// Tokens of each file's content (`None` stays uncounted).
pub fn count_files(
    tokenizer: &ChatTokenizer,
    contents: &[Option<String>],
) -> Result<Vec<Option<usize>>, String> {
    contents
        .iter()
        .map(|c| {
            c.as_ref()
                .map(|c| {
                    tokenizer
                        .tokenizer
                        .encode(c.as_str(), false)
                        .map(|e| e.len())
                        .map_err(|e| e.to_string())
                })
                .transpose()
        })
        .collect()
}

/// A sample's tokens under the chat template, each decoded alone.
pub fn encode(tokenizer: &ChatTokenizer, sample: &Sample) -> Result<Tokens, String> {
    let encoded = tokenizer.encode(sample, false).map_err(|e| e.to_string())?;
    let pieces = encoded
        .ids
        .iter()
        .map(|&id| tokenizer.tokenizer.decode(&[id], false).unwrap_or_default())
        .collect();
    Ok(Tokens {
        pieces,
        trained: encoded.trained,
    })
}
