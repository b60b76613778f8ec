//! What the pane shows, as plain data: the results files found, the one
//! loaded with its aggregate figures, the order of its samples, and the
//! texts and word diffs of the selected sample.

use super::diff::{WordDiff, diff};
use crate::eval::code::answer::parse_files;
use crate::eval::loss::{LossReport, SampleLoss};
use crate::eval::results::{RESULTS_FILE, SampleResult, SideResult};
use crate::eval::summary::{Aggregate, aggregate};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One `eval-results.jsonl` on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsFile {
    pub path: PathBuf,
    /// The run's name, or the folder's path for a file outside the runs.
    pub label: String,
    pub modified: SystemTime,
    pub bytes: u64,
}

/// What a scan of the runs folder found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scan {
    /// Newest first.
    pub files: Vec<ResultsFile>,
    /// The newest run with an `adapter/` folder, for the how-to.
    pub newest_adapter: Option<PathBuf>,
}

/// Every `<runs>/*/eval-results.jsonl`, and the `extra` files, newest first.
/// Only reads folder entries and file metadata.
pub fn scan(runs_dir: &Path, extra: &[PathBuf]) -> Scan {
    let mut files = Vec::new();
    let mut adapters: Vec<(SystemTime, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(runs_dir) {
        for entry in entries.flatten() {
            let dir = entry.path();
            if let Some(file) = stat(
                &dir.join(RESULTS_FILE),
                &entry.file_name().to_string_lossy(),
            ) {
                files.push(file);
            }
            let adapter = dir.join("adapter");
            if let Some(meta) = std::fs::metadata(&adapter).ok().filter(|m| m.is_dir()) {
                adapters.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), adapter));
            }
        }
    }
    for path in extra {
        if files.iter().any(|f| &f.path == path) {
            continue;
        }
        let label = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or(".".to_string(), |p| p.display().to_string());
        if let Some(file) = stat(path, &label) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.label.cmp(&b.label)));
    adapters.sort();
    Scan {
        files,
        newest_adapter: adapters.pop().map(|(_, p)| p),
    }
}

fn stat(path: &Path, label: &str) -> Option<ResultsFile> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    Some(ResultsFile {
        path: path.to_path_buf(),
        label: label.to_string(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        bytes: meta.len(),
    })
}

/// A results file read and summed up.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    /// The file's modification time when it was read.
    pub modified: Option<SystemTime>,
    pub samples: Vec<SampleResult>,
    pub base: Aggregate,
    /// `None` when the evaluation ran without an adapter.
    pub adapter: Option<Aggregate>,
}

impl Loaded {
    /// The figures of `eval-report.md` for both sides, from the samples.
    pub fn new(path: PathBuf, modified: Option<SystemTime>, samples: Vec<SampleResult>) -> Loaded {
        let has_adapter = samples.iter().any(|s| s.adapter.is_some());
        let base = aggregate(&samples, base_side, &losses(&samples, base_side));
        let adapter =
            has_adapter.then(|| aggregate(&samples, adapter_side, &losses(&samples, adapter_side)));
        Loaded {
            path,
            modified,
            samples,
            base,
            adapter,
        }
    }

    /// (better, worse, same) samples with the adapter.
    pub fn tally(&self) -> (usize, usize, usize) {
        self.samples
            .iter()
            .filter_map(|s| s.score_delta)
            .fold((0, 0, 0), |(b, w, s), d| {
                if d > 0.0 {
                    (b + 1, w, s)
                } else if d < 0.0 {
                    (b, w + 1, s)
                } else {
                    (b, w, s + 1)
                }
            })
    }
}

fn base_side(s: &SampleResult) -> Option<&SideResult> {
    Some(&s.base)
}

fn adapter_side(s: &SampleResult) -> Option<&SideResult> {
    s.adapter.as_ref()
}

/// The loss report a side's per-sample losses add up to (token-weighted,
/// as `eval` computes it).
fn losses(
    samples: &[SampleResult],
    side: impl Fn(&SampleResult) -> Option<&SideResult>,
) -> LossReport {
    let per_sample: Vec<SampleLoss> = samples
        .iter()
        .filter_map(|s| {
            side(s).map(|r| SampleLoss {
                index: s.index,
                tokens: r.tokens,
                loss: r.loss,
            })
        })
        .collect();
    let (sum, tokens) = per_sample
        .iter()
        .filter_map(|s| Some((s.loss? * s.tokens as f64, s.tokens)))
        .fold((0.0, 0), |(a, n), (l, t)| (a + l, n + t));
    let loss = if tokens == 0 {
        0.0
    } else {
        sum / tokens as f64
    };
    LossReport {
        samples: per_sample.len(),
        tokens,
        loss,
        perplexity: loss.exp(),
        truncated: 0,
        skipped: Vec::new(),
        per_sample,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Where the adapter lost most comes first.
    WorstFirst,
    BestFirst,
}

impl Order {
    pub fn flip(self) -> Order {
        match self {
            Order::WorstFirst => Order::BestFirst,
            Order::BestFirst => Order::WorstFirst,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Order::WorstFirst => "adapter worst first",
            Order::BestFirst => "adapter best first",
        }
    }
}

/// What a sample is sorted by: adapter minus base, or the base score when
/// the evaluation had no adapter.
pub fn sort_key(sample: &SampleResult, has_adapter: bool) -> Option<f64> {
    if has_adapter {
        sample.score_delta
    } else {
        Some(sample.base.score)
    }
}

/// The ROUGE-L change, which orders samples whose primary scores tie (two
/// multi-file answers that both fail to parse score 0 as code).
fn rouge_delta(sample: &SampleResult) -> f64 {
    sample
        .adapter
        .as_ref()
        .map_or(sample.base.rouge_l, |a| a.rouge_l - sample.base.rouge_l)
}

/// Positions in `samples`, in `order`; ties go by the ROUGE-L change, then
/// by index; samples without a key come last.
pub fn sorted(samples: &[SampleResult], order: Order) -> Vec<usize> {
    let has_adapter = samples.iter().any(|s| s.adapter.is_some());
    let mut rows: Vec<usize> = (0..samples.len()).collect();
    rows.sort_by(|&a, &b| {
        let (ka, kb) = (
            sort_key(&samples[a], has_adapter),
            sort_key(&samples[b], has_adapter),
        );
        let by_key = match (ka, kb) {
            (Some(x), Some(y)) => match order {
                Order::WorstFirst => x.total_cmp(&y),
                Order::BestFirst => y.total_cmp(&x),
            },
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        let by_rouge = match order {
            Order::WorstFirst => rouge_delta(&samples[a]).total_cmp(&rouge_delta(&samples[b])),
            Order::BestFirst => rouge_delta(&samples[b]).total_cmp(&rouge_delta(&samples[a])),
        };
        by_key
            .then(by_rouge)
            .then(samples[a].index.cmp(&samples[b].index))
    });
    rows
}

/// Which answer the reference column is diffed against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    Base,
    Adapter,
}

/// The selected sample's texts as shown, and their word diffs against the
/// reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    /// Position in `Loaded::samples`.
    pub sample: usize,
    pub base: String,
    pub adapter: Option<String>,
    pub reference: String,
    pub base_diff: WordDiff,
    pub adapter_diff: Option<WordDiff>,
}

impl Compared {
    pub fn new(samples: &[SampleResult], sample: usize) -> Option<Compared> {
        let s = samples.get(sample)?;
        let base = display_text(&s.base.answer);
        let adapter = s.adapter.as_ref().map(|a| display_text(&a.answer));
        let reference = display_text(&s.reference);
        Some(Compared {
            sample,
            base_diff: diff(&base, &reference),
            adapter_diff: adapter.as_deref().map(|a| diff(a, &reference)),
            base,
            adapter,
            reference,
        })
    }

    /// The diff the reference column shows: against `against`, or the base
    /// answer when there is no adapter.
    pub fn reference_diff(&self, against: Against) -> (&WordDiff, Against) {
        match (&self.adapter_diff, against) {
            (Some(d), Against::Adapter) => (d, Against::Adapter),
            _ => (&self.base_diff, Against::Base),
        }
    }
}

/// An answer as shown: a multi-file answer as its files one after another,
/// anything else as is; tabs as four spaces, no carriage returns.
pub fn display_text(text: &str) -> String {
    let shown = match parse_files(text) {
        Ok(files) if !files.is_empty() => files
            .iter()
            .map(|(path, content)| format!("── {path} ──\n{}", content.trim_end()))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => text.to_string(),
    };
    shown.replace('\r', "").replace('\t', "    ")
}

/// A list's selected row and the first row shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub selected: usize,
    pub offset: usize,
}

impl Cursor {
    /// Moves the selection by `delta` within `len` rows.
    pub fn step(&mut self, delta: isize, len: usize) {
        self.selected = self
            .selected
            .saturating_add_signed(delta)
            .min(len.saturating_sub(1));
    }

    /// The first of `len` rows to show in `height` rows so the selection
    /// is visible and no row is left empty that a row could fill.
    pub fn first(&self, height: usize, len: usize) -> usize {
        let height = height.max(1);
        let first = if self.selected < self.offset {
            self.selected
        } else if self.selected >= self.offset + height {
            self.selected + 1 - height
        } else {
            self.offset
        };
        first.min(len.saturating_sub(height))
    }

    /// Keeps the selection visible in `height` rows.
    pub fn follow(&mut self, height: usize, len: usize) {
        self.offset = self.first(height, len);
    }
}
