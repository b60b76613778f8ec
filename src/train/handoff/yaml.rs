//! A flat YAML document written key by key: values are JSON scalars or flow
//! sequences (JSON is YAML's flow syntax), floats always with a dot so
//! PyYAML (YAML 1.1) reads `5.0e-4` as a number, not the string `5e-4`.

use serde_json::Value;

#[derive(Default)]
pub struct Yaml {
    text: String,
}

impl Yaml {
    pub fn section(&mut self, title: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(&format!("### {title}\n"));
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.text
            .push_str(&format!("{key}: {}\n", scalar(&value.into())));
    }

    /// A block of already-indented YAML under `key` (a list of mappings).
    pub fn block(&mut self, key: &str, lines: &[String]) {
        self.text.push_str(&format!("{key}:\n"));
        for line in lines {
            self.text.push_str(&format!("  {line}\n"));
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// One value in YAML's flow style.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => {
            let text = n.to_string();
            match text.find('e') {
                Some(at) if !text[..at].contains('.') => {
                    format!("{}.0{}", &text[..at], &text[at..])
                }
                _ if !text.contains('.') && !text.contains('e') => format!("{text}.0"),
                _ => text,
            }
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(scalar).collect();
            format!("[{}]", inner.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_keep_a_dot_and_strings_are_quoted() {
        assert_eq!(scalar(&json!(5e-4)), "0.0005");
        assert_eq!(scalar(&json!(1e-8)), "1.0e-8");
        assert_eq!(scalar(&json!(2.0)), "2.0");
        assert_eq!(scalar(&json!(16)), "16");
        assert_eq!(scalar(&json!("a: b")), "\"a: b\"");
        assert_eq!(
            scalar(&json!(["q_proj", "v_proj"])),
            "[\"q_proj\", \"v_proj\"]"
        );
        let mut doc = Yaml::default();
        doc.section("model");
        doc.set("lora_rank", 16);
        doc.set("bf16", true);
        assert_eq!(doc.finish(), "### model\nlora_rank: 16\nbf16: true\n");
    }
}
