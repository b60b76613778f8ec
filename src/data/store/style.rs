//! How a file spaces its one-line records: `{"a":1,"b":2}` (serde, most
//! tools) or `{"a": 1, "b": 2}` (Python's json.dumps). Records the store
//! writes follow the file, so an edited line looks like its neighbours.

use serde_json::Value;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spacing {
    #[default]
    Compact,
    /// A space after every `,` and `:` between values.
    Python,
}

impl Spacing {
    /// The spacing of `record`'s text: Python's when a `:` or `,` outside
    /// strings is followed by a space.
    pub fn of(record: &[u8]) -> Spacing {
        let mut in_string = false;
        let mut escaped = false;
        for (i, &b) in record.iter().enumerate() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b':' | b',' => {
                    return if record.get(i + 1) == Some(&b' ') {
                        Spacing::Python
                    } else {
                        Spacing::Compact
                    };
                }
                _ => {}
            }
        }
        Spacing::Compact
    }

    /// `value` on one line in this spacing.
    pub fn format(self, value: &Value) -> String {
        match self {
            Spacing::Compact => value.to_string(),
            Spacing::Python => {
                let mut out = Vec::new();
                let mut serializer =
                    serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
                serde::Serialize::serialize(value, &mut serializer)
                    .expect("a Value always serialises");
                String::from_utf8(out).expect("serde_json writes UTF-8")
            }
        }
    }
}

/// serde_json's compact output with `, ` and `: ` separators.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_and_writes_both_spacings() {
        let python = br#"{"text": "a, b: c", "n": [1, 2]}"#;
        let compact = br#"{"text":"a, b: c","n":[1,2]}"#;
        assert_eq!(Spacing::of(python), Spacing::Python);
        assert_eq!(Spacing::of(compact), Spacing::Compact);
        assert_eq!(
            Spacing::of(br#"{"q\": x":1}"#),
            Spacing::Compact,
            "escaped quote"
        );
        let value: Value = serde_json::from_slice(python).unwrap();
        assert_eq!(Spacing::Python.format(&value).as_bytes(), python);
        assert_eq!(Spacing::Compact.format(&value).as_bytes(), compact);
    }
}
