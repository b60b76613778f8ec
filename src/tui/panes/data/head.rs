//! The head of a record too long to read whole for a list row, made into
//! JSON that parses: the string being read is closed where the head ends,
//! and every array and object still open is closed; a member cut before its
//! value (a key, a number, `tru`) is dropped.

/// A container still open where the head ends.
struct Open {
    closer: u8,
    /// Where the text can be cut with this container intact: after its
    /// opener or after its last complete member.
    safe: usize,
    /// Whether the next string is a key (objects, before the colon).
    expects_key: bool,
}

/// Scanning state at the end of the head.
#[derive(Default)]
struct Scan {
    stack: Vec<Open>,
    in_string: bool,
    string_is_key: bool,
    /// Bytes at the end of the string that are part of an escape.
    escape_len: usize,
    /// A number or literal (`true`, `null`) being read.
    in_scalar: bool,
}

impl Scan {
    /// The container's current member is complete at `end`.
    fn completed(&mut self, end: usize) {
        if let Some(top) = self.stack.last_mut() {
            top.safe = end;
        }
    }
}

/// `head` (the first bytes of a JSON text) closed so it parses; `None` when
/// no container was open (nothing to show) or the head is whole already.
pub fn close(head: &[u8]) -> Option<Vec<u8>> {
    // A character split by the cut is left out.
    let head = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    }
    .as_bytes();
    let scan = scan(head)?;
    let closers: Vec<u8> = scan.stack.iter().rev().map(|o| o.closer).collect();
    let top_safe = scan.stack.last()?.safe;
    let at_safe = [&head[..top_safe], &closers].concat();
    if scan.in_string && !scan.string_is_key {
        // Keep the text read so far: close the string where the head ends.
        let end = head.len() - scan.escape_len;
        let closed = [&head[..end], b"\"", &closers].concat();
        // A lone surrogate escape (`\ud83d` cut from its pair) fails.
        if serde_json::from_slice::<serde_json::Value>(&closed).is_ok() {
            return Some(closed);
        }
    }
    Some(at_safe)
}

/// Reads `head`; `None` if the top-level value ended inside it.
fn scan(head: &[u8]) -> Option<Scan> {
    let mut s = Scan::default();
    let mut i = 0;
    while i < head.len() {
        let b = head[i];
        if s.in_string {
            match b {
                b'\\' => {
                    // An escape: `\x`, or `\uXXXX`; count what the head holds.
                    let len = if head.get(i + 1) == Some(&b'u') { 6 } else { 2 };
                    let have = (head.len() - i).min(len);
                    s.escape_len = if have < len { have } else { 0 };
                    i += have;
                    continue;
                }
                b'"' => {
                    s.in_string = false;
                    if s.string_is_key {
                        if let Some(top) = s.stack.last_mut() {
                            top.expects_key = false;
                        }
                    } else {
                        s.completed(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        if s.in_scalar && matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
            s.in_scalar = false;
            s.completed(i);
        }
        match b {
            b'"' => {
                s.in_string = true;
                s.escape_len = 0;
                s.string_is_key = s.stack.last().is_some_and(|o| o.expects_key);
            }
            b'{' | b'[' => s.stack.push(Open {
                closer: if b == b'{' { b'}' } else { b']' },
                safe: i + 1,
                expects_key: b == b'{',
            }),
            b'}' | b']' => {
                s.stack.pop();
                if s.stack.is_empty() {
                    return None;
                }
                s.completed(i + 1);
            }
            b',' => {
                if let Some(top) = s.stack.last_mut() {
                    top.expects_key = top.closer == b'}';
                }
            }
            b':' | b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => s.in_scalar = true,
        }
        i += 1;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn closed(head: &str) -> Value {
        serde_json::from_slice(&close(head.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn a_cut_string_value_is_kept_and_cut_members_go() {
        assert_eq!(
            closed(r#"{"messages": [{"role": "user", "content": "Hello wor"#),
            json!({"messages": [{"role": "user", "content": "Hello wor"}]})
        );
        assert_eq!(closed(r#"{"a": 1, "b": tr"#), json!({"a": 1}));
        assert_eq!(closed(r#"{"a": 12, "bc"#), json!({"a": 12}));
        assert_eq!(closed(r#"{"a": [1, 2"#), json!({"a": [1]}));
        assert_eq!(closed(r#"{"a": "x\"y\u00"#), json!({"a": "x\"y"}));
        assert_eq!(closed("{\"a\": \"é"), json!({"a": "é"}));
        let split = &"{\"a\": \"é".as_bytes()[..8];
        let fixed = close(split).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&fixed).unwrap(),
            json!({"a": ""})
        );
        assert!(close(b"{\"a\": 1}").is_none(), "a whole record");
        assert!(close(b"  ").is_none());
    }

    /// Every prefix of these records closes into JSON that parses.
    #[test]
    fn every_prefix_closes_into_valid_json() {
        let records = [
            r#"{"messages": [{"role": "system", "content": "be \"brief\"\n\ttabs \u00e9 \ud83d\ude00"}, {"role": "user", "content": "x"}], "n": -1.5e3, "t": true, "z": null}"#,
            r#"{"prompt": "p", "context": {"tech_stack": ["a", "b"], "k": {}}, "output": {"files": {"app/main.py": "print(1)\n", "e": []}}}"#,
            "[1, [2, [3, {\"a\": [true, false, null]}]], \"s\"]",
            "{\"é\": \"ü€𝄞\", \"k\" : [ 1 , 2 ] }",
        ];
        for record in records {
            let bytes = record.as_bytes();
            for end in 1..bytes.len() {
                let Some(fixed) = close(&bytes[..end]) else {
                    continue;
                };
                assert!(
                    serde_json::from_slice::<Value>(&fixed).is_ok(),
                    "prefix {:?} closed as {:?}",
                    String::from_utf8_lossy(&bytes[..end]),
                    String::from_utf8_lossy(&fixed)
                );
            }
        }
    }
}
