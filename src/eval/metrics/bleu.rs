//! Corpus BLEU as sacreBLEU 2.x computes it with its defaults: one reference
//! per segment, case kept, `13a` tokens, n-grams up to 4, `exp` smoothing
//! (the NIST rule: the k-th order with no match counts as 1/2^k of a match),
//! no effective order. Statistics are summed over the corpus first, then one
//! score is computed, so it is not the mean of sentence scores.
//!
//! This is tunebench's own implementation; the signature says so in its
//! `impl` field, and `tests/fixtures/eval/` checks it against sacreBLEU.

use super::tok13a::{rstrip_python, tokenize_13a};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const MAX_ORDER: usize = 4;

/// The sacreBLEU version whose results this reproduces.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// A sacreBLEU-style signature of the settings, plus who computed it.
pub fn signature() -> String {
    format!(
        "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}|impl:tunebench-{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Sufficient statistics: matched and total n-grams per order, lengths.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BleuStats {
    pub correct: [u64; MAX_ORDER],
    pub total: [u64; MAX_ORDER],
    pub sys_len: u64,
    pub ref_len: u64,
}

impl BleuStats {
    /// Adds one hypothesis and its reference.
    pub fn add(&mut self, hypothesis: &str, reference: &str) {
        let hyp = tokens(hypothesis);
        let refs = tokens(reference);
        self.sys_len += hyp.len() as u64;
        self.ref_len += refs.len() as u64;
        for n in 1..=MAX_ORDER {
            let reference_counts = ngram_counts(&refs, n);
            let mut hyp_counts = ngram_counts(&hyp, n);
            self.total[n - 1] += hyp.len().saturating_sub(n - 1) as u64;
            for (gram, count) in hyp_counts.drain() {
                let available = reference_counts.get(&gram).copied().unwrap_or(0);
                self.correct[n - 1] += count.min(available) as u64;
            }
        }
    }

    pub fn score(&self) -> Bleu {
        let (sys, reference) = (self.sys_len as f64, self.ref_len as f64);
        let bp = if self.sys_len >= self.ref_len {
            1.0
        } else if self.sys_len > 0 {
            (1.0 - reference / sys).exp()
        } else {
            0.0
        };
        let mut precisions = [0.0; MAX_ORDER];
        let mut score = 0.0;
        if self.correct.iter().any(|&c| c > 0) {
            let mut halving = 1.0;
            for (p, (&correct, &total)) in precisions
                .iter_mut()
                .zip(self.correct.iter().zip(&self.total))
            {
                if total == 0 {
                    break;
                }
                *p = if correct == 0 {
                    halving *= 2.0;
                    100.0 / (halving * total as f64)
                } else {
                    100.0 * correct as f64 / total as f64
                };
            }
            // An order with no n-gram at all makes the score 0, as sacreBLEU's
            // log of a zero precision does.
            if precisions.iter().all(|&p| p > 0.0) {
                let log_sum: f64 = precisions.iter().map(|p| p.ln()).sum();
                score = bp * (log_sum / MAX_ORDER as f64).exp();
            }
        }
        Bleu {
            score,
            precisions,
            bp,
            sys_len: self.sys_len,
            ref_len: self.ref_len,
        }
    }
}

/// A corpus BLEU result; `score` and `precisions` are on sacreBLEU's 0-100 scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    pub score: f64,
    pub precisions: [f64; MAX_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    pub sys_len: u64,
    pub ref_len: u64,
}

/// Corpus BLEU of (hypothesis, reference) pairs.
pub fn corpus_bleu<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Bleu {
    let mut stats = BleuStats::default();
    for (hypothesis, reference) in pairs {
        stats.add(hypothesis, reference);
    }
    stats.score()
}

fn tokens(segment: &str) -> Vec<String> {
    tokenize_13a(rstrip_python(segment))
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_100_and_empty_scores_0() {
        let b = corpus_bleu([("the cat sat on the mat", "the cat sat on the mat")]);
        assert!((b.score - 100.0).abs() < 1e-9);
        assert_eq!(corpus_bleu([("", "the cat sat on the mat")]).score, 0.0);
        // Fewer than four tokens in the whole corpus: no 4-gram, score 0.
        assert_eq!(corpus_bleu([("the cat", "the cat")]).score, 0.0);
    }

    #[test]
    fn signature_names_the_settings_and_the_implementation() {
        let s = signature();
        assert!(s.starts_with("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2."));
        assert!(s.contains("impl:tunebench-"));
    }
}
