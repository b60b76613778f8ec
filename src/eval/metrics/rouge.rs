//! ROUGE-L as Google's `rouge-score` package computes it with its default
//! tokenizer and no stemming: lowercase the text, turn every run of
//! characters other than `a-z`/`0-9` into a space, split; then precision and
//! recall of the longest common subsequence of tokens, and their F-measure.
//! A corpus figure is the plain mean of the per-sample F-measures.

use super::f_measure;

/// rouge-score's default tokens of `text`.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    let spaced: String = lowered
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                ' '
            }
        })
        .collect();
    spaced
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Precision, recall and F-measure of the LCS between two token lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RougeL {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// ROUGE-L of `prediction` against `reference` (0 when either has no token).
pub fn rouge_l(prediction: &str, reference: &str) -> RougeL {
    let (pred, target) = (rouge_tokens(prediction), rouge_tokens(reference));
    if pred.is_empty() || target.is_empty() {
        return RougeL {
            precision: 0.0,
            recall: 0.0,
            fmeasure: 0.0,
        };
    }
    let lcs = lcs_len(&target, &pred) as f64;
    let precision = lcs / pred.len() as f64;
    let recall = lcs / target.len() as f64;
    RougeL {
        precision,
        recall,
        fmeasure: f_measure(precision, recall),
    }
}

/// Length of the longest common subsequence, in two rows of memory (answers
/// of whole projects run to thousands of tokens).
fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                previous[j + 1].max(current[j])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_lcs() {
        assert_eq!(rouge_tokens("Hello, World-42!"), ["hello", "world", "42"]);
        let r = rouge_l(
            "the cat was found under the bed",
            "the cat was under the bed",
        );
        assert!((r.recall - 1.0).abs() < 1e-12);
        assert!((r.precision - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(rouge_l("", "x").fmeasure, 0.0);
    }
}
