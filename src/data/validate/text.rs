//! Checks on the text a record holds: control characters and answers too
//! short to teach anything.

use crate::data::finding::{FindingKind, Problem};
use crate::data::sample::Sample;
use serde_json::Value;

/// Reports the first control character of each string field (tab, line feed
/// and carriage return are fine).
pub fn check_control_characters(value: &Value, problems: &mut Vec<Problem>) {
    let mut path = Vec::new();
    walk(value, &mut path, problems);
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn walk<'a>(value: &'a Value, path: &mut Vec<Segment<'a>>, problems: &mut Vec<Problem>) {
    match value {
        Value::String(s) => {
            if let Some((at, c)) = first_control(s) {
                problems.push(Problem::warning(
                    FindingKind::ControlCharacter,
                    render_path(path),
                    format!(
                        "control character U+{:04X} at character {}",
                        c as u32,
                        at + 1
                    ),
                ));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                walk(item, path, problems);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                path.push(Segment::Key(key));
                walk(item, path, problems);
                path.pop();
            }
        }
        _ => {}
    }
}

fn first_control(s: &str) -> Option<(usize, char)> {
    if !may_hold_control(s.as_bytes()) {
        return None;
    }
    s.chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// A branch-free scan the compiler vectorises: C0 controls other than tab,
/// line feed and carriage return, DEL, and 0xC2 (the lead byte of C1 controls).
fn may_hold_control(bytes: &[u8]) -> bool {
    bytes.chunks(64).any(|chunk| {
        chunk.iter().fold(0u8, |acc, &b| {
            let c0 = (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
            acc | u8::from(c0) | u8::from(b == 0x7F) | u8::from(b == 0xC2)
        }) != 0
    })
}

fn render_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => out = crate::data::read::join_key(&out, key),
            Segment::Index(i) => out = format!("{out}[{i}]"),
        }
    }
    out
}

/// An answer (or a raw text) with fewer than `min_words` words.
pub fn check_length(sample: &Sample, field: &str, min_words: usize, problems: &mut Vec<Problem>) {
    let (text, what) = match sample {
        Sample::Text(text) => (text.as_str(), "text"),
        Sample::Chat(conv) => match conv.last_reply() {
            Some(reply) if reply.tool_calls.is_empty() => (reply.content.as_str(), "answer"),
            _ => return,
        },
    };
    let words = count_words(text, min_words);
    if words > 0 && words < min_words {
        problems.push(Problem::warning(
            FindingKind::ShortOutput,
            field,
            format!("{what} has {words} word(s), fewer than {min_words}"),
        ));
    }
}

/// Words as a reader counts them, up to `limit`: runs of non-space
/// characters, except that each Chinese, Japanese or Korean character is a
/// word of its own (those scripts put no spaces between words).
pub fn count_words(text: &str, limit: usize) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for c in text.chars() {
        if words >= limit {
            break;
        }
        if is_cjk(c) {
            words += 1;
            in_word = false;
        } else if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            words += 1;
            in_word = true;
        }
    }
    words
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF // kana
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F // ideographs
        | 0xAC00..=0xD7AF) // hangul
}

#[cfg(test)]
mod tests {
    use super::{count_words, first_control};

    #[test]
    fn control_characters_but_not_whitespace() {
        assert_eq!(first_control("tabs\tand\r\nlines are fine é"), None);
        assert_eq!(first_control("bell\u{7}"), Some((4, '\u{7}')));
        assert_eq!(first_control("del\u{7f}"), Some((3, '\u{7f}')));
        assert_eq!(first_control("c1 \u{85} next line"), Some((3, '\u{85}')));
        assert_eq!(first_control(&"x".repeat(200)), None);
    }

    #[test]
    fn words_in_spaced_and_unspaced_scripts() {
        assert_eq!(count_words("  two words ", 10), 2);
        assert_eq!(count_words("我存在的目的", 10), 6);
        assert_eq!(count_words("GPU是什么", 10), 4);
        assert_eq!(count_words("", 10), 0);
        assert_eq!(count_words("one two three four", 2), 2);
    }
}
