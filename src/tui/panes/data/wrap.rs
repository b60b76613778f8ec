//! Prose cut into rows of a width: between words where it can, inside a
//! word only when it is wider than a row. Rows are counted without building
//! them, and only the rows on screen are built.

/// How many lines `wrap_window` makes of `text`, counted without building
/// them.
pub fn wrapped_len(text: &str, width: usize) -> usize {
    text.split('\n').map(|line| line_rows(line, width)).sum()
}

/// Rows one line of text takes at `width`.
fn line_rows(line: &str, width: usize) -> usize {
    let mut rows = 0;
    wrap_line(line, width, |_, _| rows += 1);
    rows
}

/// Column width of a character of prose (tabs show as 4 spaces).
fn columns(c: char) -> usize {
    if c == '\t' { 4 } else { 1 }
}

/// Calls `row` with the byte range of each row one line of text (without
/// its `\r`) takes at `width` columns: rows break at a space, which is
/// dropped, and inside a word only when it is wider than a row.
fn wrap_line(line: &str, width: usize, mut row: impl FnMut(usize, usize)) {
    let line = line.trim_end_matches('\r');
    let width = width.max(1);
    let mut start = 0;
    let mut used = 0;
    // The last space in the row: where it is and the columns after it.
    let mut space: Option<(usize, usize)> = None;
    for (at, c) in line.char_indices() {
        let w = columns(c);
        if used + w > width && at > start {
            if c == ' ' {
                row(start, at);
                (start, used, space) = (at + 1, 0, None);
                continue;
            }
            if let Some((space_at, after)) = space.take() {
                row(start, space_at);
                (start, used) = (space_at + 1, after);
            }
            if used + w > width && at > start {
                row(start, at);
                (start, used) = (at, 0);
            }
        }
        if c == ' ' {
            space = Some((at, 0));
        } else if let Some((_, after)) = &mut space {
            *after += w;
        }
        used += w;
    }
    // Nothing is left after a row that broke at the line's last space.
    if start < line.len() || start == 0 {
        row(start, line.len());
    }
}

/// Lines `skip..skip + take` of `text` wrapped at word boundaries into
/// lines of at most `width` columns (tabs as 4 spaces), building only those.
pub fn wrap_window(text: &str, width: usize, skip: usize, take: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut row = 0;
    for line in text.split('\n') {
        if out.len() >= take {
            break;
        }
        let rows = line_rows(line, width);
        if row + rows <= skip {
            row += rows;
            continue;
        }
        wrap_line(line, width, |from, to| {
            if row >= skip && out.len() < take {
                out.push(line[from..to].replace('\t', "    "));
            }
            row += 1;
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(text: &str, width: usize) -> Vec<String> {
        wrap_window(text, width, 0, usize::MAX)
    }

    #[test]
    fn wrapping_counts_lines() {
        assert_eq!(wrap("abcde\n\nxy", 2), vec!["ab", "cd", "e", "", "xy"]);
        let text = "abcde\n\tx\r\n\nlong line here";
        for width in 1..8 {
            let all = wrap(text, width);
            assert_eq!(wrapped_len(text, width), all.len());
            for skip in 0..=all.len() {
                for take in 0..4 {
                    let end = (skip + take).min(all.len());
                    assert_eq!(wrap_window(text, width, skip, take), all[skip..end]);
                }
            }
        }
    }

    #[test]
    fn prose_wraps_between_words() {
        assert_eq!(wrap("the quick brown fox", 10), ["the quick", "brown fox"]);
        assert_eq!(wrap("abc def", 3), ["abc", "def"], "the space is dropped");
        // A word wider than a row is broken.
        assert_eq!(
            wrap("a supercalifragilistic word", 8),
            ["a", "supercal", "ifragili", "stic", "word"]
        );
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrapped_len("the quick brown fox\n\nend", 10), 4);
    }
}
