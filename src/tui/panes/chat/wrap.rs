//! Wrapping text to a column's width: at spaces where it can, inside a
//! word where it must; indentation is kept.

use ratatui::text::Span;

/// Display width of one character (wide CJK takes two cells).
fn char_width(ch: char) -> usize {
    let mut buf = [0u8; 4];
    Span::raw(&*ch.encode_utf8(&mut buf)).width()
}

/// `text` as lines no wider than `width` (at least 1).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for raw in text.split('\n') {
        let mut line = String::new();
        let mut line_width = 0;
        // Where the line may break: byte offset after a space, and the
        // width up to there.
        let mut breakable: Option<(usize, usize)> = None;
        for ch in raw.chars() {
            if ch == '\t' {
                for _ in 0..4 {
                    push(
                        &mut out,
                        &mut line,
                        &mut line_width,
                        &mut breakable,
                        ' ',
                        width,
                    );
                }
            } else {
                push(
                    &mut out,
                    &mut line,
                    &mut line_width,
                    &mut breakable,
                    ch,
                    width,
                );
            }
        }
        out.push(line);
    }
    out
}

fn push(
    out: &mut Vec<String>,
    line: &mut String,
    line_width: &mut usize,
    breakable: &mut Option<(usize, usize)>,
    ch: char,
    width: usize,
) {
    let w = char_width(ch);
    if *line_width + w > width && !line.is_empty() {
        if ch == ' ' {
            // The space becomes the break itself.
            out.push(std::mem::take(line));
            *line_width = 0;
            *breakable = None;
            return;
        }
        match breakable.take() {
            Some((at, at_width)) if at < line.len() => {
                let rest = line.split_off(at);
                out.push(std::mem::replace(line, rest));
                *line_width -= at_width;
            }
            _ => {
                out.push(std::mem::take(line));
                *line_width = 0;
            }
        }
    }
    line.push(ch);
    *line_width += w;
    if ch == ' ' {
        *breakable = Some((line.len(), *line_width));
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_spaces_then_inside_words() {
        assert_eq!(wrap("hello world", 5), ["hello", "world"]);
        assert_eq!(wrap("hello big world", 9), ["hello big", "world"]);
        assert_eq!(wrap("hello big world", 8), ["hello ", "big ", "world"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("  indented\n\nx", 20), ["  indented", "", "x"]);
        assert_eq!(wrap("", 3), [""]);
        assert_eq!(wrap("犬猫犬", 4), ["犬猫", "犬"]);
    }
}
