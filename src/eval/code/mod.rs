//! Checks on a generated multi-file project: it parses as `{"files": {...}}`,
//! each file passes the syntax check of its language (the same checks as
//! `data validate`), the expected files are there, its imports name packages
//! it declares, and, on request, its tests pass.

pub mod answer;
pub mod capture;
pub mod exec;
pub mod imports;
pub mod pytest;
pub mod sandbox;
pub mod stdlib;

use crate::data::validate::{check_syntax, normalise_path, unsafe_path};
use exec::{Runner, TestRun};
use serde::{Deserialize, Serialize};

/// One file's syntax error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileError {
    pub path: String,
    pub language: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The result of all checks on one answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeCheck {
    /// The answer parsed as `{"files": {path: content}}`.
    pub parsed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    pub files: usize,
    /// Files in a checked language (Python, JSON, YAML, TOML).
    pub checked_files: usize,
    pub syntax_errors: Vec<FileError>,
    /// Absolute paths or paths with `..` (never written by `--exec`).
    pub unsafe_paths: Vec<String>,
    pub expected_files: usize,
    pub missing_files: Vec<String>,
    /// Expected files present over expected files (1 when none is expected).
    pub coverage: f64,
    /// Third-party top-level modules the Python files import.
    pub external_imports: Vec<String>,
    /// Of those, the ones no declared dependency provides.
    pub invented_packages: Vec<String>,
    /// The test run, with `--exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestRun>,
    /// 0 when the answer does not parse; else the mean of: files without
    /// syntax errors over checked files, coverage, declared imports over
    /// external imports, and (when tests ran) the test pass rate.
    pub score: f64,
}

/// Checks `answer` against the `expected` file paths; runs its tests with
/// `runner`. `base` is the project a refinement starts from (empty for a new
/// project): the answer's files replace or join its files, imports may use
/// what it declares, and the tests run on the whole.
pub fn check_answer(
    answer: &str,
    expected: &[String],
    base: &[(String, String)],
    runner: Option<&Runner>,
) -> CodeCheck {
    let files = match answer::parse_files(answer) {
        Ok(files) => files,
        Err(e) => {
            return CodeCheck {
                parse_error: Some(e),
                expected_files: expected.len(),
                missing_files: expected.to_vec(),
                coverage: if expected.is_empty() { 1.0 } else { 0.0 },
                ..Default::default()
            };
        }
    };
    let mut check = CodeCheck {
        parsed: true,
        files: files.len(),
        expected_files: expected.len(),
        ..Default::default()
    };
    for (path, content) in &files {
        if unsafe_path(path).is_some() {
            check.unsafe_paths.push(path.clone());
        }
        if crate::data::validate::checked_language(path).is_some() {
            check.checked_files += 1;
        }
        if let Err(e) = check_syntax(path, content) {
            check.syntax_errors.push(FileError {
                path: path.clone(),
                language: e.language.to_string(),
                line: e.line,
                column: e.column,
                message: e.message,
            });
        }
    }
    let present: std::collections::HashSet<String> =
        files.iter().map(|(p, _)| normalise_path(p)).collect();
    check.missing_files = expected
        .iter()
        .filter(|p| !present.contains(&normalise_path(p)))
        .cloned()
        .collect();
    check.coverage = fraction(expected.len() - check.missing_files.len(), expected.len());
    let project = overlay(base, &files);
    (check.external_imports, check.invented_packages) = imports::check_imports(&files, &project);
    check.tests = runner.map(|r| r.run(&project));
    check.score = score(&check);
    check
}

/// `base` with `changes` applied: same paths replaced, new ones added.
fn overlay(base: &[(String, String)], changes: &[(String, String)]) -> Vec<(String, String)> {
    let changed: std::collections::HashSet<String> =
        changes.iter().map(|(p, _)| normalise_path(p)).collect();
    base.iter()
        .filter(|(p, _)| !changed.contains(&normalise_path(p)))
        .chain(changes)
        .cloned()
        .collect()
}

fn fraction(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn score(check: &CodeCheck) -> f64 {
    if !check.parsed {
        return 0.0;
    }
    let syntax_ok = check
        .checked_files
        .saturating_sub(check.syntax_errors.len());
    let declared = check.external_imports.len() - check.invented_packages.len();
    let mut parts = vec![
        fraction(syntax_ok, check.checked_files),
        check.coverage,
        fraction(declared, check.external_imports.len()),
    ];
    if let Some(tests) = &check.tests {
        parts.push(tests.pass_rate());
    }
    crate::eval::metrics::mean(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(files: serde_json::Value) -> String {
        json!({ "files": files }).to_string()
    }

    #[test]
    fn a_good_answer_scores_1() {
        let text = answer(json!({
            "app/__init__.py": "",
            "app/main.py": "from fastapi import FastAPI\nfrom app import db\napp = FastAPI()\n",
            "app/db.py": "import sqlite3\n",
            "requirements.txt": "fastapi\n",
            "config.yaml": "a: 1\n",
        }));
        let expected = vec!["app/main.py".to_string(), "./requirements.txt".to_string()];
        let c = check_answer(&format!("```json\n{text}\n```"), &expected, &[], None);
        assert!(c.parsed);
        assert_eq!((c.files, c.checked_files), (5, 4));
        assert!(c.syntax_errors.is_empty() && c.invented_packages.is_empty());
        assert_eq!(c.coverage, 1.0);
        assert_eq!(c.external_imports, ["fastapi"]);
        assert_eq!(c.score, 1.0);
    }

    #[test]
    fn broken_answers_are_pinned_down() {
        let text = answer(json!({
            "app/main.py": "def f(:\n    pass\n",
            "app/util.py": "import requests\nimport os\n",
            "data.json": "{\"a\": }",
            "pyproject.toml": "[project\n",
            "compose.yml": "a: [1, 2\n",
            "../evil.sh": "rm -rf /",
        }));
        let expected = vec!["app/main.py".to_string(), "tests/test_main.py".to_string()];
        let c = check_answer(&text, &expected, &[], None);
        let errors: Vec<(&str, &str)> = c
            .syntax_errors
            .iter()
            .map(|e| (e.path.as_str(), e.language.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                ("app/main.py", "Python"),
                ("data.json", "JSON"),
                ("pyproject.toml", "TOML"),
                ("compose.yml", "YAML")
            ]
        );
        assert_eq!(c.syntax_errors[0].line, 1);
        assert_eq!(c.unsafe_paths, ["../evil.sh"]);
        assert_eq!(c.missing_files, ["tests/test_main.py"]);
        assert_eq!(c.coverage, 0.5);
        assert_eq!(c.invented_packages, ["requests"]);
        // syntax 1/5 ok, coverage 1/2, imports 0/1
        assert!((c.score - (0.2 + 0.5 + 0.0) / 3.0).abs() < 1e-12);

        let c = check_answer("Sure! Here is the project: {", &expected, &[], None);
        assert!(!c.parsed && c.parse_error.as_deref().unwrap().starts_with("not JSON"));
        assert_eq!((c.score, c.coverage), (0.0, 0.0));
    }
}
