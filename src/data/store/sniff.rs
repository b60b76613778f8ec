//! What kind of file a dataset is, from its first bytes: the layout of its
//! records, or why it cannot be read as JSON at all (UTF-16, binary).

use super::blocks::read_at_most;
use super::index::first_value_spans_lines;
use std::fs::File;
use std::io;

/// Bytes looked at; the encoding of a text file shows in far fewer.
const HEAD: usize = 4096;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    JsonLines,
    /// A top-level array.
    JsonArray,
    /// One JSON value written over several lines: either a pretty-printed
    /// object (or several in a row), or a broken first line of JSON Lines.
    /// Only indexing the whole file tells which.
    MultiLineValue,
    Utf16 {
        big_endian: bool,
        bom: bool,
    },
    /// A NUL byte where no text file has one.
    Binary {
        offset: usize,
    },
}

pub fn sniff(file: &File) -> io::Result<Sniffed> {
    let mut head = vec![0u8; HEAD];
    let got = read_at_most(file, &mut head, 0)?;
    Ok(sniff_bytes(&head[..got]))
}

fn sniff_bytes(head: &[u8]) -> Sniffed {
    if let Some(utf16) = utf16(head) {
        return utf16;
    }
    if let Some(offset) = memchr::memchr(0, head) {
        return Sniffed::Binary { offset };
    }
    let text = head.strip_prefix(UTF8_BOM).unwrap_or(head);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Sniffed::JsonArray,
        Some(b'{') if first_value_spans_lines(text) => Sniffed::MultiLineValue,
        _ => Sniffed::JsonLines,
    }
}

/// UTF-16 by its byte-order mark, or (without one) by text whose every other
/// byte is NUL, as ASCII-range characters are in UTF-16.
fn utf16(head: &[u8]) -> Option<Sniffed> {
    // FF FE 00 00 is UTF-32's mark, which the NUL test below calls binary.
    if head.starts_with(b"\xFF\xFE") && !head.starts_with(b"\xFF\xFE\0\0") {
        return Some(Sniffed::Utf16 {
            big_endian: false,
            bom: true,
        });
    }
    if head.starts_with(b"\xFE\xFF") {
        return Some(Sniffed::Utf16 {
            big_endian: true,
            bom: true,
        });
    }
    let pairs = head.len() / 2;
    if pairs < 2 {
        return None;
    }
    let nul_at = |parity: usize| {
        head.iter()
            .skip(parity)
            .step_by(2)
            .take(pairs)
            .filter(|&&b| b == 0)
            .count()
    };
    let (even, odd) = (nul_at(0), nul_at(1));
    // Mostly-ASCII UTF-16: nearly all high bytes are NUL, no low byte is.
    let mostly = |n: usize| n * 10 >= pairs * 7;
    match (even, odd) {
        (0, odd) if mostly(odd) => Some(Sniffed::Utf16 {
            big_endian: false,
            bom: false,
        }),
        (even, 0) if mostly(even) => Some(Sniffed::Utf16 {
            big_endian: true,
            bom: false,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn utf16be(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }

    #[test]
    fn utf16_with_and_without_a_mark() {
        let line = "{\"text\": \"héllo\"}\n{\"text\": \"two\"}\n";
        let mut le = b"\xFF\xFE".to_vec();
        le.extend(utf16le(line));
        let mut be = b"\xFE\xFF".to_vec();
        be.extend(utf16be(line));
        let le_mark = Sniffed::Utf16 {
            big_endian: false,
            bom: true,
        };
        let be_mark = Sniffed::Utf16 {
            big_endian: true,
            bom: true,
        };
        assert_eq!(sniff_bytes(&le), le_mark);
        assert_eq!(sniff_bytes(&be), be_mark);
        assert_eq!(
            sniff_bytes(&utf16le(line)),
            Sniffed::Utf16 {
                big_endian: false,
                bom: false
            }
        );
        assert_eq!(
            sniff_bytes(&utf16be(line)),
            Sniffed::Utf16 {
                big_endian: true,
                bom: false
            }
        );
    }

    #[test]
    fn nul_bytes_are_binary_and_text_is_not() {
        let mut blob = b"\x7FELF\x02\x01\x01".to_vec();
        blob.extend([0u8; 9]);
        blob.extend(b"{\"text\": \"x\"}\n");
        assert_eq!(sniff_bytes(&blob), Sniffed::Binary { offset: 7 });
        assert_eq!(
            sniff_bytes(b"\xEF\xBB\xBF{\"text\": \"\xC3\xA9\"}\n"),
            Sniffed::JsonLines
        );
        assert_eq!(sniff_bytes(b""), Sniffed::JsonLines);
        assert_eq!(sniff_bytes(b"  [{\"text\": \"x\"}]"), Sniffed::JsonArray);
    }

    #[test]
    fn an_object_over_several_lines_is_told_apart_from_json_lines() {
        assert_eq!(
            sniff_bytes(b"{\n  \"text\": \"x\"\n}\n"),
            Sniffed::MultiLineValue
        );
        assert_eq!(
            sniff_bytes(b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n"),
            Sniffed::JsonLines
        );
    }
}
