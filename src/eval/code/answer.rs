//! Reading a generated answer as a multi-file project `{"files": {path: content}}`.

use serde_json::Value;

/// Removes surrounding whitespace and one Markdown code fence (```` ```json ````).
pub fn strip_fence(text: &str) -> &str {
    let text = text.trim();
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    // The opening fence runs to the end of its line (it may name a language).
    let body = rest.split_once('\n').map_or("", |(_, body)| body);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// The files of an answer, in order; the error says what is wrong and where.
pub fn parse_files(answer: &str) -> Result<Vec<(String, String)>, String> {
    let body = strip_fence(answer);
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let Some(files) = value.get("files") else {
        return Err("no `files` field: expected {\"files\": {path: content}}".into());
    };
    let Some(files) = files.as_object() else {
        return Err("`files` is not an object of path -> content".into());
    };
    files
        .iter()
        .map(|(path, content)| match content.as_str() {
            Some(text) => Ok((path.clone(), text.to_string())),
            None => Err(format!("files[{path:?}]: the content is not a string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_and_whitespace_are_tolerated() {
        let plain = r#"{"files": {"a.py": "x = 1\n"}}"#;
        let expected = vec![("a.py".to_string(), "x = 1\n".to_string())];
        assert_eq!(parse_files(plain).unwrap(), expected);
        assert_eq!(
            parse_files(&format!("\n  ```json\n{plain}\n```\n")).unwrap(),
            expected
        );
        assert_eq!(parse_files(&format!("```\n{plain}```")).unwrap(), expected);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(
            parse_files("{\"files\": {\"a.py\": ")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            parse_files("{\"file\": {}}")
                .unwrap_err()
                .contains("no `files`")
        );
        assert!(
            parse_files("{\"files\": []}")
                .unwrap_err()
                .contains("not an object")
        );
        assert!(
            parse_files("{\"files\": {\"a\": 1}}")
                .unwrap_err()
                .contains("files[\"a\"]")
        );
    }
}
