//! The `13a` tokenisation of sacreBLEU (itself the tokeniser of the WMT
//! `mteval-v13a.pl` script), written from its published behaviour:
//!
//! 1. drop `<skipped>`, join words hyphenated across a line break (`-\n`),
//!    turn the other line breaks into spaces;
//! 2. decode the entities `&quot;`, `&amp;`, `&lt;`, `&gt;` (in that order);
//! 3. pad the line with a space on each side and put spaces around every
//!    ASCII symbol except `'`, `,`, `-` and `.` (letters and digits stay);
//! 4. split off `.` and `,` unless they sit between digits (`3.14`, `1,000`
//!    stay whole), then a `-` that follows a digit;
//! 5. collapse whitespace (as Python's `str.split` sees it) to one space.
//!
//! Steps 4's passes scan left to right and never reuse a character that the
//! previous replacement consumed, as a regular-expression substitution does;
//! that is what makes `a..b` and `1.-2` come out exactly like sacreBLEU.

use super::{is_python_space, python_split};

/// Tokenises one segment; tokens are separated by single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        for (entity, text) in [
            ("&quot;", "\""),
            ("&amp;", "&"),
            ("&lt;", "<"),
            ("&gt;", ">"),
        ] {
            line = line.replace(entity, text);
        }
    }
    let padded: Vec<char> = format!(" {line} ").chars().collect();
    let spaced = space_symbols(&padded);
    let pass1 = pairs(
        &spaced,
        |a, b| !a.is_ascii_digit() && is_period_comma(b),
        |a, b| [a, ' ', b, ' '],
    );
    let pass2 = pairs(
        &pass1,
        |a, b| is_period_comma(a) && !b.is_ascii_digit(),
        |a, b| [' ', a, ' ', b],
    );
    let pass3 = pairs(
        &pass2,
        |a, b| a.is_ascii_digit() && b == '-',
        |a, b| [a, ' ', b, ' '],
    );
    let text: String = pass3.into_iter().collect();
    python_split(&text).collect::<Vec<_>>().join(" ")
}

/// The symbols that always become tokens of their own: ASCII punctuation and
/// space except `'`, `,`, `-`, `.` (the ranges `{-~`, `[-``, ` -&`, `(-+`,
/// `:-@` and `/`).
fn is_split_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

fn is_period_comma(c: char) -> bool {
    c == '.' || c == ','
}

fn space_symbols(chars: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 2);
    for &c in chars {
        if is_split_symbol(c) {
            out.extend([' ', c, ' ']);
        } else {
            out.push(c);
        }
    }
    out
}

/// One substitution pass of a two-character pattern: where `hit(a, b)` holds
/// for the next two characters, they are replaced by `with(a, b)` and the
/// scan continues after them; otherwise one character is copied.
fn pairs(
    chars: &[char],
    hit: impl Fn(char, char) -> bool,
    with: impl Fn(char, char) -> [char; 4],
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 4);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && hit(chars[i], chars[i + 1]) {
            out.extend(with(chars[i], chars[i + 1]));
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Python's `str.rstrip()`: sacreBLEU strips each segment's end before tokenising.
pub fn rstrip_python(text: &str) -> &str {
    text.trim_end_matches(is_python_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_numbers_and_entities() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        assert_eq!(tokenize_13a("It costs $1,000.50."), "It costs $ 1,000.50 .");
        assert_eq!(
            tokenize_13a("pages 10-20, e.g. x"),
            "pages 10 - 20 , e . g . x"
        );
        assert_eq!(tokenize_13a("&quot;hi&quot; &amp; bye"), "\" hi \" & bye");
        assert_eq!(tokenize_13a("don't stop"), "don't stop");
        assert_eq!(
            tokenize_13a("well-\nknown\nfact<skipped>"),
            "wellknown fact"
        );
    }
}
