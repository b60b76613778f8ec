//! Data pane jobs that run off the UI thread: whole-file validation,
//! filtering (streaming matches back), and tokenisation with the loaded
//! model's tokenizer. Each job reads its own snapshot of the store.

use super::filter::{Criteria, Matcher};
use super::findings::Item;
use super::tokenizer;
use super::tokens::Tokens;
use super::{FilterBatch, Job, Msg, Validated};
use crate::data::Format;
use crate::data::sample::{Conversation, Sample};
use crate::data::store::Store;
use crate::data::validate::{self, Options, TemplateCheck, TokenCounter};
use crate::model::tokenize::ChatTokenizer;
use crate::tui::action::{Action, TokenSettings};
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
            Job::Validate {
                generation,
                store,
                settings,
            } => {
                // Counting tokens takes far longer than the other checks on
                // a big file: their findings come first.
                if settings.is_some() {
                    let first = validate_all(&store.0, None).map(|mut v| {
                        v.partial = true;
                        v
                    });
                    if first.is_err()
                        || !send(Msg::Validated {
                            generation,
                            result: first,
                        })
                    {
                        return;
                    }
                }
                send(Msg::Validated {
                    generation,
                    result: validate_all(&store.0, settings.as_ref()),
                });
            }
            Job::Filter {
                id,
                store,
                criteria,
                flagged,
                cancel,
            } => filter(id, &store.0, &criteria, flagged, &cancel, &send),
            Job::FileTokens {
                seq,
                contents,
                settings,
            } => {
                let result =
                    with_tokenizer(&services, settings.as_ref(), |t| count_files(t, &contents));
                send(Msg::FileTokens { seq, result });
            }
            Job::Tokens {
                seq,
                sample,
                settings,
            } => {
                let result = with_tokenizer(&services, settings.as_ref(), |t| encode(t, &sample));
                send(Msg::Tokens { seq, result });
            }
        }
    });
}

/// Runs `f` with the Train form's tokenizer, else the loaded model's.
fn with_tokenizer<T>(
    services: &Services,
    settings: Option<&TokenSettings>,
    f: impl FnOnce(&ChatTokenizer) -> Result<T, String>,
) -> Result<T, String> {
    if let Some(settings) = settings {
        return f(tokenizer::load(settings)?.as_ref());
    }
    let slot = services
        .model
        .read()
        .map_err(|_| "model lock poisoned".to_string())?;
    match slot.as_ref() {
        Some(model) => f(&model.tokenizer),
        None => Err("the model is not loaded (yet)".to_string()),
    }
}

/// Validates every record and ties each finding to its record; with token
/// settings, also each sample's length and what the chat template drops.
pub fn validate_all(store: &Store, settings: Option<&TokenSettings>) -> Result<Validated, String> {
    let (tokenizer, token_error) = match settings.map(tokenizer::load) {
        Some(Ok(tokenizer)) => (Some(tokenizer), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let count = tokenizer
        .as_ref()
        .map(|t| move |sample: &Sample| t.count_tokens(sample).map_err(|e| e.to_string()));
    let dropped = (tokenizer.as_ref()).map(|t| move |conv: &Conversation| t.template.dropped(conv));
    let options = Options {
        max_seq_len: settings.map_or(Options::default().max_seq_len, |s| s.max_seq_len),
        token_counter: count.as_ref().map(|c| c as TokenCounter),
        template_check: dropped.as_ref().map(|c| c as TemplateCheck),
        ..Options::default()
    };
    let report = validate::validate(store, &options)
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
        fingerprints: report.fingerprints,
        token_error,
        partial: false,
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
    let dropped = match sample {
        Sample::Chat(conv) => (tokenizer.template.dropped(conv).into_iter())
            .map(|part| validate::describe_dropped(part, conv))
            .collect(),
        Sample::Text(_) => Vec::new(),
    };
    Ok(Tokens {
        pieces,
        trained: encoded.trained,
        dropped,
    })
}
