//! Exact match and token F1 after the SQuAD evaluation script's
//! normalisation: lowercase, drop ASCII punctuation, drop the whole words
//! `a`, `an` and `the`, split on whitespace. Following SQuAD 2.0, two answers
//! that both normalise to nothing agree (F1 1), and one empty side scores 0.

use super::{f_measure, python_split};
use std::collections::HashMap;

/// The normalised tokens of an answer.
pub fn squad_tokens(text: &str) -> Vec<String> {
    let lowered: String = text
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let without_articles = drop_articles(&lowered);
    python_split(&without_articles)
        .map(str::to_string)
        .collect()
}

/// Replaces each whole word `a`, `an` or `the` (bounded by non-word
/// characters, as a regex `\b` sees them) with a space.
fn drop_articles(text: &str) -> String {
    let is_word = |c: char| c == '_' || c.is_alphanumeric();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let run_end = rest
            .char_indices()
            .find(|&(_, d)| is_word(d) != is_word(c))
            .map_or(rest.len(), |(i, _)| i);
        let run = &rest[..run_end];
        if is_word(c) && matches!(run, "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
        rest = &rest[run_end..];
    }
    out
}

/// Whether the two answers are equal after normalisation.
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    squad_tokens(prediction) == squad_tokens(reference)
}

/// Token-overlap F1 of the normalised answers.
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let (pred, gold) = (squad_tokens(prediction), squad_tokens(reference));
    if pred.is_empty() || gold.is_empty() {
        return if pred == gold { 1.0 } else { 0.0 };
    }
    let mut available: HashMap<&str, usize> = HashMap::new();
    for t in &gold {
        *available.entry(t.as_str()).or_insert(0) += 1;
    }
    let mut same = 0usize;
    for t in &pred {
        if let Some(n) = available.get_mut(t.as_str()).filter(|n| **n > 0) {
            *n -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    f_measure(
        same as f64 / pred.len() as f64,
        same as f64 / gold.len() as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_articles_and_punctuation() {
        assert_eq!(
            squad_tokens("The Cat, an apple & a theme!"),
            ["cat", "apple", "theme"]
        );
        assert!(exact_match("the Eiffel Tower.", "Eiffel tower"));
        assert!((token_f1("Paris France", "Paris") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(token_f1("", ""), 1.0);
        assert_eq!(token_f1("the", "cat"), 0.0);
    }
}
