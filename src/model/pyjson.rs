//! JSON text exactly as Python's `json.dumps(x, ensure_ascii=False)` writes
//! it (", " and ": " separators, optional indent), which is what chat
//! templates' `tojson` produces under transformers.

use serde_json::Value;

pub fn dumps(value: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write(value, indent, 0, &mut out);
    out
}

fn write(value: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            // Python writes 1.0 where serde writes 1.0 too, but 1e20 as 1e+20.
            out.push_str(&if x.fract() == 0.0 && x.abs() < 1e16 {
                format!("{x:.1}")
            } else {
                n.to_string()
            });
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_separators() {
        let v = json!({"name": "get", "arguments": {"city": "Oslo", "n": [1, 2.0]}, "e": {}});
        assert_eq!(
            dumps(&v, None),
            r#"{"name": "get", "arguments": {"city": "Oslo", "n": [1, 2.0]}, "e": {}}"#
        );
        assert_eq!(
            dumps(&json!({"a": [1]}), Some(2)),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(dumps(&json!("é\n\"<>"), None), "\"é\\n\\\"<>\"");
    }
}
