//! Scores for records that carry a `label`: the generated answer names a
//! class when, trimmed, it equals one of the labels seen in the file, or
//! else when its first non-empty line (trimmed) does. Matching is exact and
//! case-sensitive; any other answer is "(none)", a wrong answer that is no
//! class of its own. Precision, recall and F1 are computed per label and
//! averaged with equal weight (macro), 0 where a ratio has no denominator,
//! as scikit-learn does with `zero_division=0` and `labels` = the gold labels.

use super::{f_measure, mean};
use serde::{Deserialize, Serialize};

/// The column of the confusion matrix for answers that name no label.
pub const NO_LABEL: &str = "(none)";

/// The label an answer names, if any of `labels`.
pub fn predicted_label<'a>(answer: &str, labels: &'a [String]) -> Option<&'a String> {
    let whole = answer.trim();
    let first_line = answer.lines().map(str::trim).find(|l| !l.is_empty());
    labels
        .iter()
        .find(|l| l.as_str() == whole)
        .or_else(|| labels.iter().find(|l| Some(l.as_str()) == first_line))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub samples: usize,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    /// The gold labels, sorted; rows of `confusion` follow this order.
    pub labels: Vec<String>,
    /// `confusion[gold][predicted]`; the last column counts answers that
    /// named no label ([`NO_LABEL`]).
    pub confusion: Vec<Vec<usize>>,
}

/// Scores (gold label, answer) pairs.
pub fn classify<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Classification {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    let mut labels: Vec<String> = pairs.iter().map(|(g, _)| g.to_string()).collect();
    labels.sort();
    labels.dedup();
    let n = labels.len();
    let mut confusion = vec![vec![0usize; n + 1]; n];
    for (gold, answer) in &pairs {
        let Ok(row) = labels.binary_search_by(|l| l.as_str().cmp(gold)) else {
            continue;
        };
        let column = predicted_label(answer, &labels)
            .and_then(|p| labels.iter().position(|l| l == p))
            .unwrap_or(n);
        confusion[row][column] += 1;
    }
    let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_label: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let predicted: usize = (0..n).map(|g| confusion[g][i]).sum();
            let gold: usize = confusion[i].iter().sum();
            (
                ratio(confusion[i][i], predicted),
                ratio(confusion[i][i], gold),
            )
        })
        .collect();
    Classification {
        samples: pairs.len(),
        accuracy: ratio(correct, pairs.len()),
        macro_precision: mean(per_label.iter().map(|p| p.0)),
        macro_recall: mean(per_label.iter().map(|p| p.1)),
        macro_f1: mean(per_label.iter().map(|&(p, r)| f_measure(p, r))),
        labels,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_whole_or_by_first_line() {
        let labels = vec!["negative".to_string(), "positive".to_string()];
        assert_eq!(predicted_label("  positive \n", &labels), Some(&labels[1]));
        assert_eq!(
            predicted_label("\nnegative\nbecause...", &labels),
            Some(&labels[0])
        );
        assert_eq!(predicted_label("Positive", &labels), None);
    }

    #[test]
    fn macro_scores_and_confusion() {
        // gold:   a a a b b c
        // answer: a a b b x c   (x names no label)
        let c = classify([
            ("a", "a"),
            ("a", "a"),
            ("a", "b"),
            ("b", "b"),
            ("b", "maybe"),
            ("c", "c"),
        ]);
        assert_eq!(c.labels, ["a", "b", "c"]);
        assert_eq!(c.confusion, [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]);
        assert!((c.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // precision a 1, b 1/2, c 1; recall a 2/3, b 1/2, c 1
        assert!((c.macro_precision - 2.5 / 3.0).abs() < 1e-12);
        assert!((c.macro_recall - (2.0 / 3.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        let f1_a = 2.0 * (2.0 / 3.0) / (1.0 + 2.0 / 3.0);
        assert!((c.macro_f1 - (f1_a + 0.5 + 1.0) / 3.0).abs() < 1e-12);
    }
}
