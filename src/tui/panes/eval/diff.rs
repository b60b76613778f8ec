//! A word-level diff of an answer against its reference: the longest common
//! subsequence of their words. Answer words outside it are what the model
//! added or changed; reference words outside it are what the answer missed.
//!
//! Words are runs of non-whitespace. They match when equal after lowercasing
//! and trimming surrounding punctuation (`Health.` matches `health`); a word
//! of punctuation alone must match exactly.

use std::collections::HashMap;
use std::ops::Range;

/// Cells the exact LCS table may take (2 bytes each), after trimming the
/// common start and end. Past it a word counts as matched while the other
/// side still has an unused copy of it (`WordDiff::approximate`).
const MAX_CELLS: usize = 4_000_000;

/// The words of both texts (byte ranges), each marked whether it is shared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WordDiff {
    pub answer: Vec<(Range<usize>, bool)>,
    pub reference: Vec<(Range<usize>, bool)>,
    /// The texts were too long for the exact LCS; words were matched by count.
    pub approximate: bool,
}

impl WordDiff {
    /// (shared, all) words of the answer.
    pub fn answer_shared(&self) -> (usize, usize) {
        count(&self.answer)
    }

    /// (shared, all) words of the reference.
    pub fn reference_shared(&self) -> (usize, usize) {
        count(&self.reference)
    }
}

fn count(words: &[(Range<usize>, bool)]) -> (usize, usize) {
    (words.iter().filter(|(_, s)| *s).count(), words.len())
}

/// Byte ranges of the whitespace-separated words of `text`.
pub fn words(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, ch) in text.char_indices() {
        match (ch.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

/// What a word is compared by.
fn key(word: &str) -> String {
    let trimmed = word.trim_matches(|c: char| !c.is_alphanumeric());
    if trimmed.is_empty() {
        word.to_string()
    } else {
        trimmed.to_lowercase()
    }
}

/// Diffs `answer` against `reference` word by word.
pub fn diff(answer: &str, reference: &str) -> WordDiff {
    let a_words = words(answer);
    let r_words = words(reference);
    let a_keys: Vec<String> = a_words.iter().map(|r| key(&answer[r.clone()])).collect();
    let r_keys: Vec<String> = r_words.iter().map(|r| key(&reference[r.clone()])).collect();
    let (a_shared, r_shared, approximate) = common(&a_keys, &r_keys);
    WordDiff {
        answer: a_words.into_iter().zip(a_shared).collect(),
        reference: r_words.into_iter().zip(r_shared).collect(),
        approximate,
    }
}

/// Which items of `a` and of `b` belong to a longest common subsequence
/// (or, past `MAX_CELLS`, to the multiset intersection); and whether it was
/// the approximation.
pub fn common<T: Eq + std::hash::Hash>(a: &[T], b: &[T]) -> (Vec<bool>, Vec<bool>, bool) {
    let mut in_a = vec![false; a.len()];
    let mut in_b = vec![false; b.len()];
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    for i in (0..prefix).chain(a.len() - suffix..a.len()) {
        in_a[i] = true;
    }
    for j in (0..prefix).chain(b.len() - suffix..b.len()) {
        in_b[j] = true;
    }
    let a_mid = &a[prefix..a.len() - suffix];
    let b_mid = &b[prefix..b.len() - suffix];
    let (n, m) = (a_mid.len(), b_mid.len());
    if n == 0 || m == 0 {
        return (in_a, in_b, false);
    }
    if (n + 1).saturating_mul(m + 1) > MAX_CELLS {
        by_count(a_mid, b_mid, &mut in_a[prefix..prefix + n]);
        by_count(b_mid, a_mid, &mut in_b[prefix..prefix + m]);
        return (in_a, in_b, true);
    }
    // table[i * (m + 1) + j]: LCS length of a_mid[i..] and b_mid[j..]. It
    // fits u16: the table is bounded, so min(n, m) < 2000.
    let width = m + 1;
    let mut table = vec![0u16; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if a_mid[i] == b_mid[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a_mid[i] == b_mid[j] {
            in_a[prefix + i] = true;
            in_b[prefix + j] = true;
            i += 1;
            j += 1;
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    (in_a, in_b, false)
}

/// Marks the items of `xs` that `ys` still has an unused copy of.
fn by_count<T: Eq + std::hash::Hash>(xs: &[T], ys: &[T], marks: &mut [bool]) {
    let mut left: HashMap<&T, usize> = HashMap::new();
    for y in ys {
        *left.entry(y).or_default() += 1;
    }
    for (x, mark) in xs.iter().zip(marks.iter_mut()) {
        if let Some(n) = left.get_mut(x).filter(|n| **n > 0) {
            *n -= 1;
            *mark = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared<'a>(text: &'a str, words: &[(Range<usize>, bool)]) -> Vec<&'a str> {
        words
            .iter()
            .filter(|(_, s)| *s)
            .map(|(r, _)| &text[r.clone()])
            .collect()
    }

    fn missing<'a>(text: &'a str, words: &[(Range<usize>, bool)]) -> Vec<&'a str> {
        words
            .iter()
            .filter(|(_, s)| !*s)
            .map(|(r, _)| &text[r.clone()])
            .collect()
    }

    #[test]
    fn words_are_runs_of_non_whitespace() {
        let text = "  fn main() {\n\treturn 1; }";
        let got: Vec<&str> = words(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(got, ["fn", "main()", "{", "return", "1;", "}"]);
        assert!(words("").is_empty());
        assert!(words(" \n ").is_empty());
        let wide = "犬 é";
        let got: Vec<&str> = words(wide).into_iter().map(|r| &wide[r]).collect();
        assert_eq!(got, ["犬", "é"]);
    }

    #[test]
    fn the_lcs_marks_shared_and_extra_words() {
        let answer = "the quick red fox jumps";
        let reference = "the quick brown fox jumps over";
        let d = diff(answer, reference);
        assert_eq!(shared(answer, &d.answer), ["the", "quick", "fox", "jumps"]);
        assert_eq!(missing(answer, &d.answer), ["red"]);
        assert_eq!(missing(reference, &d.reference), ["brown", "over"]);
        assert_eq!(d.answer_shared(), (4, 5));
        assert_eq!(d.reference_shared(), (4, 6));
        assert!(!d.approximate);
    }

    #[test]
    fn order_matters_not_just_presence() {
        // "b a" against "a b": only one of the two can be in a common
        // subsequence.
        let d = diff("b a", "a b");
        assert_eq!(d.answer_shared(), (1, 2));
        assert_eq!(d.reference_shared(), (1, 2));
        // Repeated words are matched once each.
        let d = diff("yes yes yes", "yes");
        assert_eq!(d.answer_shared(), (1, 3));
    }

    #[test]
    fn case_and_surrounding_punctuation_are_ignored() {
        let d = diff("Return the Health.", "return (the) health");
        assert_eq!(d.answer_shared(), (3, 3));
        // Punctuation alone must match exactly.
        let d = diff("{ }", "( )");
        assert_eq!(d.answer_shared(), (0, 2));
    }

    #[test]
    fn empty_sides() {
        let d = diff("", "some words");
        assert!(d.answer.is_empty());
        assert_eq!(d.reference_shared(), (0, 2));
        let d = diff("some words", "");
        assert_eq!(d.answer_shared(), (0, 2));
        assert_eq!(diff("", ""), WordDiff::default());
    }

    #[test]
    fn common_start_and_end_are_trimmed_before_the_table() {
        let (a, b, approx) = common(&[1, 2, 3, 9, 4, 5], &[1, 2, 3, 4, 5]);
        assert_eq!(a, [true, true, true, false, true, true]);
        assert_eq!(b, [true; 5]);
        assert!(!approx);
    }

    #[test]
    fn long_texts_fall_back_to_counting() {
        let a: Vec<u32> = (0..3000).collect();
        let mut b: Vec<u32> = (0..3000).rev().collect();
        b.push(99_999);
        let (in_a, in_b, approx) = common(&a, &b);
        assert!(approx);
        assert!(in_a.iter().all(|&x| x));
        assert_eq!(in_b.iter().filter(|&&x| !x).count(), 1);
        assert!(!in_b[3000]);
    }
}
