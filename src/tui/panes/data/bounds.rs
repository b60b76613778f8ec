//! How much of one record the views hold and draw. A record may be hundreds
//! of MB (one giant file or message); the views keep and show a bounded part
//! of it and say so, so memory and the work of a frame stay bounded whatever
//! the record's size. The record itself is never cut: edits go through the
//! parsed value, and saving copies untouched records verbatim. Sizes are
//! decimal, as the notices print them.

/// A list row reads at most this much of its record; a longer record is
/// summarised from its head.
pub const ROW_BYTES: usize = 64_000;
/// Each field shows at most this much of its text.
pub const FIELD_BYTES: usize = 250_000;
/// All fields of a record together show at most this much.
pub const RECORD_BYTES: usize = 1_000_000;
/// Fields listed at most (a record of a million messages lists the first).
pub const FIELDS: usize = 1000;
/// The file on show (or a broken record's raw text) shows at most this much.
pub const FILE_BYTES: usize = 1_000_000;
/// The code view colours at most this much of a file, and at most this
/// many lines; the rest is plain (colouring is for reading, and a huge
/// generated file would stall the UI).
pub const HIGHLIGHT_BYTES: usize = 250_000;
pub const HIGHLIGHT_LINES: usize = 4000;
/// Token counting and the token view take at most this much text per view.
pub const TOKEN_BYTES: usize = 500_000;
/// The editor takes texts up to this size.
pub const EDIT_BYTES: usize = 8_000_000;

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A size for people: bytes, KB or MB (decimal, one decimal place).
pub fn size(bytes: usize) -> String {
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// The notice over a record the view shows only in part.
pub fn too_large(bytes: usize) -> String {
    format!("record too large to display whole ({})", size(bytes))
}

/// The line under a text cut short: how much of it is not shown.
pub fn more_not_shown(shown: usize, len: usize) -> String {
    format!("… {} more not shown", size(len.saturating_sub(shown)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries_and_names_sizes() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aé", 3), "aé");
        assert_eq!(size(999), "999 bytes");
        assert_eq!(size(34_466_264), "34.5 MB");
        assert_eq!(
            too_large(300_000_655),
            "record too large to display whole (300.0 MB)"
        );
        assert_eq!(more_not_shown(1_000, 3_000), "… 2.0 KB more not shown");
    }
}
