//! Per-sample results of `eval --generate`, and `eval-results.jsonl`, the
//! file other tools (the workbench's Eval view) read them from.
//!
//! `eval-results.jsonl` holds one JSON object per evaluated record:
//!
//! ```text
//! index        0-based position of the record in the data file
//! line         1-based line where the record starts
//! prompt       the last user turn, cut to 300 characters ("…" marks a cut)
//! reference    the record's final assistant answer
//! label        the record's `label` field (absent when it has none)
//! primary      "rouge_l", or "code_score" for multi-file answers
//! tokens, loss trained tokens and mean loss of the reference under the model
//!              as loaded (with the adapter when one is given)
//! base         the base model's side (adapter switched off), see below
//! adapter      the adapter's side, or null when no adapter was given
//! score_delta  adapter minus base of the primary score, or null
//!
//! a side:  answer, stop ("end_of_turn" | "stop_string" | "max_tokens" |
//!          "cancelled"), new_tokens, seconds, exact_match (bool), f1,
//!          rouge_l, score (the primary score), loss and tokens on the
//!          reference; predicted_label and label_correct for labelled
//!          records; code (see `eval::code::CodeCheck`) for multi-file ones
//! ```
//!
//! All scores are fractions in 0..=1. Fields are only ever added.

use super::code::CodeCheck;
use crate::data::store::atomic_write;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

pub const RESULTS_FILE: &str = "eval-results.jsonl";

/// Characters of the user turn kept in `prompt`.
pub const PROMPT_EXCERPT: usize = 300;

/// One model's answer to a record, and its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideResult {
    pub answer: String,
    pub stop: String,
    pub new_tokens: usize,
    pub seconds: f64,
    pub exact_match: bool,
    pub f1: f64,
    pub rouge_l: f64,
    /// The primary score: `rouge_l`, or `code.score` for multi-file answers.
    pub score: f64,
    /// Mean loss on the reference answer's tokens (`None` when none is trained).
    pub loss: Option<f64>,
    pub tokens: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_correct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeCheck>,
}

/// One line of `eval-results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    pub index: usize,
    pub line: usize,
    pub prompt: String,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub primary: String,
    pub tokens: usize,
    pub loss: Option<f64>,
    pub base: SideResult,
    pub adapter: Option<SideResult>,
    pub score_delta: Option<f64>,
}

/// The first `max` characters of `text`, with "…" when it was longer.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The request itself, on one line, for lists: a rendered prompt's text
/// under its first markdown heading ("## Request"), up to the next heading.
pub fn request_words(prompt: &str) -> String {
    let is_heading = |line: &&str| line.trim_start().starts_with('#');
    let body = prompt
        .lines()
        .skip_while(|line| is_heading(line) || line.trim().is_empty())
        .take_while(|line| !is_heading(line));
    let words: Vec<&str> = body.flat_map(str::split_whitespace).collect();
    words.join(" ")
}

/// Writes `results` to `path` as JSON lines, atomically.
pub fn write_results(path: &Path, results: &[SampleResult]) -> std::io::Result<()> {
    atomic_write(path, |out: &mut dyn Write| {
        for r in results {
            serde_json::to_writer(&mut *out, r)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Reads `eval-results.jsonl`; errors name the line.
pub fn read_results(path: &Path) -> Result<Vec<SampleResult>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("héllo", 10), "héllo");
        assert_eq!(excerpt("héllo", 2), "hé…");
    }
}
