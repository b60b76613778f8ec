//! Syntax checks for the files of a multi-file answer, by extension.

/// A syntax error inside one file, with its 1-based position there.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub language: &'static str,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The language a file's syntax is checked as, if any.
pub fn checked_language(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "py" => "Python",
        "json" => "JSON",
        "toml" => "TOML",
        "yaml" | "yml" => "YAML",
        _ => return None,
    })
}

/// Checks `source` as the language of `path`'s extension; `Ok` for files of
/// languages that are not checked.
pub fn check(path: &str, source: &str) -> Result<(), SyntaxError> {
    match checked_language(path) {
        Some("Python") => check_python(path, source),
        Some("JSON") => serde_json::from_str::<serde::de::IgnoredAny>(source)
            .map(|_| ())
            .map_err(|e| SyntaxError {
                language: "JSON",
                line: e.line(),
                column: e.column(),
                message: e
                    .to_string()
                    .rsplit_once(" at line ")
                    .map_or(e.to_string(), |p| p.0.to_string()),
            }),
        Some("TOML") => toml::from_str::<toml::Table>(source)
            .map(|_| ())
            .map_err(|e| {
                let (line, column) = e
                    .span()
                    .map_or((1, 1), |span| line_column(source, span.start));
                SyntaxError {
                    language: "TOML",
                    line,
                    column,
                    message: e.message().trim().to_string(),
                }
            }),
        Some("YAML") => yaml_rust2::YamlLoader::load_from_str(source)
            .map(|_| ())
            .map_err(|e| SyntaxError {
                language: "YAML",
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_string(),
            }),
        _ => Ok(()),
    }
}

fn check_python(path: &str, source: &str) -> Result<(), SyntaxError> {
    use rustpython_parser::{Mode, parse};
    parse(source, Mode::Module, path).map(|_| ()).map_err(|e| {
        let (line, column) = line_column(source, u32::from(e.offset) as usize);
        SyntaxError {
            language: "Python",
            line,
            column,
            message: e.error.to_string(),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_files_pass() {
        assert!(
            check(
                "app/main.py",
                "import os\n\ndef f(x: int) -> int:\n    return x + 1\n"
            )
            .is_ok()
        );
        assert!(check("config.json", "{\"a\": [1, 2]}").is_ok());
        assert!(check("pyproject.toml", "[project]\nname = \"x\"\n").is_ok());
        assert!(check("compose.yml", "services:\n  api:\n    image: x\n").is_ok());
        assert!(check("README.md", "# anything {{{").is_ok());
    }

    #[test]
    fn errors_carry_positions() {
        let e = check("app/main.py", "def f(:\n    pass\n").unwrap_err();
        assert_eq!((e.language, e.line), ("Python", 1));
        let e = check("a.py", "x = 1\nif x\n    pass\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = check("a.json", "{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!((e.language, e.line), ("JSON", 3));
        let e = check("a.toml", "[a]\nb = \n").unwrap_err();
        assert_eq!((e.language, e.line), ("TOML", 2));
        let e = check("a.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(e.language, "YAML");
    }
}
