//! Text metrics that compare a generated answer with its reference. Each
//! follows a reference implementation's exact rules (sacreBLEU, rouge-score,
//! the SQuAD evaluation script) so the numbers can be compared with papers;
//! `tests/fixtures/eval/` holds values computed once with those packages.

pub mod bleu;
pub mod classify;
pub mod f1;
pub mod rouge;
pub mod tok13a;

/// Whitespace as Python's `str.isspace` sees it: Unicode White_Space plus
/// the four ASCII separators U+001C..U+001F.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no arguments.
pub fn python_split(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_python_space).filter(|t| !t.is_empty())
}

/// The mean of `values`, 0 for none.
pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Harmonic mean of precision and recall, 0 when both are 0.
pub fn f_measure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}
