//! `data stats`: what a dataset holds, in counts and length percentiles.

use super::format::Format;
use super::language::language_of;
use super::parse;
use super::read::code_files;
use super::sample::{Role, Sample};
use super::store::Store;
use super::validate::TokenCounter;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io;

/// Distribution of a per-sample quantity.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub min: usize,
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(values: &mut [usize]) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        // Nearest-rank percentile.
        let rank =
            |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Some(Percentiles {
            min: values[0],
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: values[values.len() - 1],
            mean: values.iter().sum::<usize>() as f64 / values.len() as f64,
        })
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CodeStats {
    pub samples: usize,
    pub files_per_sample: Option<Percentiles>,
    pub languages: BTreeMap<String, usize>,
    pub domains: BTreeMap<String, usize>,
    pub tech_stack: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub file: String,
    pub format: Option<Format>,
    pub records: usize,
    pub samples: usize,
    /// Records that could not be read as a sample (invalid JSON, unknown shape, ...).
    pub unusable: usize,
    pub formats: BTreeMap<Format, usize>,
    pub messages_by_role: BTreeMap<&'static str, usize>,
    /// Turns per conversation, not counting the system text.
    pub turns: Option<Percentiles>,
    pub chars: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Percentiles>,
    /// Records that repeat an earlier record exactly.
    pub duplicates: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeStats>,
}

pub fn stats(
    store: &Store,
    forced: Option<Format>,
    token_counter: Option<TokenCounter>,
) -> io::Result<Stats> {
    let file_format = match forced {
        Some(f) => Some(f),
        None => parse::detect_file_format(store)?,
    };
    let mut formats = BTreeMap::new();
    let mut roles: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut turns, mut chars, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut samples = 0;
    let mut code = CodeStats::default();
    let mut files_per_sample = Vec::new();
    store.visit(|record| {
        let parsed = parse::parse_record(record.bytes, file_format, forced);
        if let Some(format) = parsed.format {
            *formats.entry(format).or_default() += 1;
        }
        let Some(sample) = parsed.sample else {
            return Ok(());
        };
        samples += 1;
        if !seen.insert(sample.fingerprint()) {
            duplicates += 1;
        }
        chars.push(sample.char_len());
        if let Some(count) = token_counter
            && let Ok(n) = count(&sample)
        {
            tokens.push(n);
        }
        if let Sample::Chat(conv) = &sample {
            if conv.system.is_some() {
                *roles.entry(Role::System.as_str()).or_default() += 1;
            }
            for m in &conv.messages {
                *roles.entry(m.role.as_str()).or_default() += 1;
            }
            turns.push(conv.messages.len());
        }
        if parsed.format == Some(Format::MultiFile)
            && let Some(value) = &parsed.value
        {
            tally_code(value, &mut code, &mut files_per_sample);
        }
        Ok(())
    })?;
    code.files_per_sample = Percentiles::of(&mut files_per_sample);
    Ok(Stats {
        file: store.path().display().to_string(),
        format: file_format,
        records: store.len(),
        samples,
        unusable: store.len() - samples,
        formats,
        messages_by_role: roles,
        turns: Percentiles::of(&mut turns),
        chars: Percentiles::of(&mut chars),
        tokens: Percentiles::of(&mut tokens),
        duplicates,
        code: (code.samples > 0).then_some(code),
    })
}

fn tally_code(record: &Value, code: &mut CodeStats, files_per_sample: &mut Vec<usize>) {
    code.samples += 1;
    if let Some(files) = code_files(record) {
        files_per_sample.push(files.len());
        for path in files.keys() {
            *code
                .languages
                .entry(language_of(path).to_string())
                .or_default() += 1;
        }
    }
    let Some(context) = record.get("context") else {
        return;
    };
    if let Some(domain) = context.get("domain").and_then(Value::as_str) {
        *code.domains.entry(domain.to_string()).or_default() += 1;
    }
    let stack: Vec<&str> = match context.get("tech_stack") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split(',').map(str::trim).collect(),
        _ => Vec::new(),
    };
    for item in stack.into_iter().filter(|s| !s.is_empty()) {
        *code.tech_stack.entry(item.to_string()).or_default() += 1;
    }
}
