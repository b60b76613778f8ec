//! Corpus-level figures of one side (base or adapter) of a comparison.

use super::code::CodeCheck;
use super::loss::LossReport;
use super::metrics::bleu::{Bleu, corpus_bleu};
use super::metrics::classify::{Classification, classify};
use super::metrics::mean;
use super::results::{SampleResult, SideResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub samples: usize,
    /// Fraction of answers equal to the reference after SQuAD normalisation.
    pub exact_match: f64,
    /// Mean token F1.
    pub f1: f64,
    /// Mean ROUGE-L F-measure.
    pub rouge_l: f64,
    /// Mean primary score (ROUGE-L, or the code score of multi-file samples).
    pub score: f64,
    /// Corpus BLEU (0-100) over every sample.
    pub bleu: Bleu,
    /// Token-weighted mean loss on the reference answers, and its exp.
    pub loss: f64,
    pub perplexity: f64,
    pub tokens: usize,
    pub new_tokens: usize,
    /// Answers that ended by themselves (end of turn or a stop string).
    #[serde(default)]
    pub ended: usize,
    /// Answers cut at max_new_tokens or at the model's last position.
    #[serde(default)]
    pub cut_at_limit: usize,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeSummary {
    pub samples: usize,
    /// Answers that parsed as `{"files": {...}}`.
    pub parsed: usize,
    pub files: usize,
    pub checked_files: usize,
    pub syntax_errors: usize,
    /// Mean coverage of the expected files.
    pub coverage: f64,
    /// Answers importing at least one invented or undeclared package.
    pub samples_with_invented: usize,
    pub invented_packages: Vec<String>,
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSummary {
    pub samples: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    /// Passed tests over tests that ran, over all samples.
    pub pass_rate: f64,
    /// Samples whose test run passed with at least one test and no failure.
    pub samples_passing: usize,
    pub timed_out: usize,
}

/// Sums up one side: `side` picks it from each sample.
pub fn aggregate(
    samples: &[SampleResult],
    side: impl Fn(&SampleResult) -> Option<&SideResult>,
    loss: &LossReport,
) -> Aggregate {
    let pairs: Vec<(&SampleResult, &SideResult)> = samples
        .iter()
        .filter_map(|s| side(s).map(|r| (s, r)))
        .collect();
    let n = pairs.len();
    let labelled: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(s, r)| Some((s.label.as_deref()?, r.answer.as_str())))
        .collect();
    let codes: Vec<&CodeCheck> = pairs.iter().filter_map(|(_, r)| r.code.as_ref()).collect();
    let stopped_by = |reasons: &[&str]| {
        pairs
            .iter()
            .filter(|(_, r)| reasons.contains(&r.stop.as_str()))
            .count()
    };
    Aggregate {
        samples: n,
        ended: stopped_by(&["end_of_turn", "stop_string"]),
        cut_at_limit: stopped_by(&["max_tokens", "context_full"]),
        exact_match: mean(
            pairs
                .iter()
                .map(|(_, r)| f64::from(u8::from(r.exact_match))),
        ),
        f1: mean(pairs.iter().map(|(_, r)| r.f1)),
        rouge_l: mean(pairs.iter().map(|(_, r)| r.rouge_l)),
        score: mean(pairs.iter().map(|(_, r)| r.score)),
        bleu: corpus_bleu(
            pairs
                .iter()
                .map(|(s, r)| (r.answer.as_str(), s.reference.as_str())),
        ),
        loss: loss.loss,
        perplexity: loss.perplexity,
        tokens: loss.tokens,
        new_tokens: pairs.iter().map(|(_, r)| r.new_tokens).sum(),
        seconds: pairs.iter().map(|(_, r)| r.seconds).sum(),
        classification: (!labelled.is_empty()).then(|| classify(labelled)),
        code: (!codes.is_empty()).then(|| code_summary(&codes)),
    }
}

fn code_summary(codes: &[&CodeCheck]) -> CodeSummary {
    let invented: BTreeSet<&String> = codes.iter().flat_map(|c| &c.invented_packages).collect();
    let runs: Vec<_> = codes.iter().filter_map(|c| c.tests.as_ref()).collect();
    let tests = (!runs.is_empty()).then(|| {
        let (passed, failed, errors) = runs.iter().fold((0, 0, 0), |(p, f, e), r| {
            (p + r.passed, f + r.failed, e + r.errors)
        });
        let ran = passed + failed + errors;
        TestSummary {
            samples: runs.len(),
            passed,
            failed,
            errors,
            pass_rate: if ran == 0 {
                0.0
            } else {
                passed as f64 / ran as f64
            },
            samples_passing: runs
                .iter()
                .filter(|r| !r.timed_out && r.passed > 0 && r.failed + r.errors == 0)
                .count(),
            timed_out: runs.iter().filter(|r| r.timed_out).count(),
        }
    });
    CodeSummary {
        samples: codes.len(),
        parsed: codes.iter().filter(|c| c.parsed).count(),
        files: codes.iter().map(|c| c.files).sum(),
        checked_files: codes.iter().map(|c| c.checked_files).sum(),
        syntax_errors: codes.iter().map(|c| c.syntax_errors.len()).sum(),
        coverage: mean(codes.iter().map(|c| c.coverage)),
        samples_with_invented: codes
            .iter()
            .filter(|c| !c.invented_packages.is_empty())
            .count(),
        invented_packages: invented.into_iter().cloned().collect(),
        score: mean(codes.iter().map(|c| c.score)),
        tests,
    }
}
