//! From a record's bytes to a sample: UTF-8, JSON, format, canonical form.
//! Validation, statistics, split and conversion all go through here.

pub use super::dup_keys::DuplicateKey;
use super::finding::{FindingKind, Problem};
use super::format::Format;
use super::read;
use super::sample::Sample;
use super::store::Store;
use serde_json::Value;
use std::collections::BTreeMap;

/// How many records are looked at to decide a file's format.
const FORMAT_SAMPLE: usize = 200;

/// A record's bytes were not a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxProblem {
    pub kind: FindingKind,
    /// 0-based line and 1-based column inside the record's text.
    pub line_offset: usize,
    pub column: usize,
    pub message: String,
}

/// Parses a record's bytes as UTF-8 JSON.
pub fn parse_json(bytes: &[u8]) -> Result<Value, SyntaxProblem> {
    parse_json_noting_duplicates(bytes).map(|(value, _)| value)
}

/// [`parse_json`], also returning the keys that appear twice in one object.
fn parse_json_noting_duplicates(bytes: &[u8]) -> Result<(Value, Vec<DuplicateKey>), SyntaxProblem> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        SyntaxProblem {
            kind: FindingKind::InvalidUtf8,
            line_offset: good.iter().filter(|&&b| b == b'\n').count(),
            column,
            message: format!(
                "invalid UTF-8 byte 0x{:02X}; the file must be UTF-8 encoded",
                bytes[e.valid_up_to()]
            ),
        }
    })?;
    super::dup_keys::from_str(text).map_err(|e| SyntaxProblem {
        kind: FindingKind::InvalidJson,
        line_offset: e.line().saturating_sub(1),
        column: e.column(),
        message: format!("invalid JSON: {}", strip_position(&e.to_string())),
    })
}

/// serde_json appends " at line L column C"; the finding carries those itself.
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}

/// The format most of the first records have; `None` if none is recognised.
pub fn detect_file_format(store: &Store) -> std::io::Result<Option<Format>> {
    let mut votes: BTreeMap<Format, usize> = BTreeMap::new();
    let mut looked = 0;
    for i in 0..store.len() {
        if looked == FORMAT_SAMPLE {
            break;
        }
        if let Ok(value) = parse_json(&store.raw(i)?) {
            looked += 1;
            if let Some(format) = Format::detect(&value) {
                *votes.entry(format).or_default() += 1;
            }
        }
    }
    Ok(votes
        .into_iter()
        .max_by_key(|&(format, count)| (count, std::cmp::Reverse(format)))
        .map(|(format, _)| format))
}

/// One record after parsing: its value, format and canonical sample, with
/// the problems found on the way.
#[derive(Debug, Default)]
pub struct Parsed {
    pub value: Option<Value>,
    pub format: Option<Format>,
    pub sample: Option<Sample>,
    pub syntax: Option<SyntaxProblem>,
    /// Keys given twice in one object (JSON readers keep the last value).
    pub duplicate_keys: Vec<DuplicateKey>,
    pub problems: Vec<Problem>,
}

/// Parses a record. With `forced`, every record is read as that format;
/// otherwise each as the format its keys show, and one that differs from
/// `file_format` is reported.
pub fn parse_record(bytes: &[u8], file_format: Option<Format>, forced: Option<Format>) -> Parsed {
    let mut parsed = Parsed::default();
    let (value, duplicates) = match parse_json_noting_duplicates(bytes) {
        Ok(parsed) => parsed,
        Err(problem) => {
            parsed.syntax = Some(problem);
            return parsed;
        }
    };
    parsed.duplicate_keys = duplicates;
    let format = forced.or_else(|| Format::detect(&value));
    match format {
        None => parsed.problems.push(unknown_shape(&value)),
        Some(format) => {
            if let Some(expected) = file_format.filter(|&f| f != format) {
                parsed.problems.push(Problem::warning(
                    FindingKind::MixedFormat,
                    "",
                    format!(
                        "this record is {} but the file is {}",
                        format.label(),
                        expected.label()
                    ),
                ));
            }
            parsed.sample = read::to_sample(format, &value, &mut parsed.problems);
        }
    }
    parsed.format = format;
    parsed.value = Some(value);
    parsed
}

fn unknown_shape(value: &Value) -> Problem {
    let found = match value.as_object() {
        Some(obj) if obj.is_empty() => "an empty object".to_string(),
        Some(obj) => {
            let keys: Vec<_> = obj.keys().map(|k| format!("`{k}`")).collect();
            format!("keys {}", keys.join(", "))
        }
        None => "not an object".to_string(),
    };
    Problem::error(
        FindingKind::UnknownShape,
        "",
        format!(
            "unknown record shape ({found}); expected `text`, `prompt`+`completion`, `messages`, \
             `instruction`+`output`, `conversations`, or `prompt`+`output.files`"
        ),
    )
}
