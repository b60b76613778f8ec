//! Checks on the files of a multi-file answer: paths and syntax.

use super::syntax;
use super::test_config::runs_at_test_time;
use crate::data::finding::{FindingKind, Problem};
use crate::data::parse::DuplicateKey;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

pub const FILES_PATH: &str = "output.files";

/// The field findings about the file at `path` name, e.g.
/// `output.files["app/main.py"]`.
pub fn file_field(path: &str) -> String {
    format!("{FILES_PATH}[{}]", Value::String(path.to_string()))
}

/// Checks paths (absolute, `..`, duplicates) and per-file syntax.
/// `repeated` holds the keys of `files` that parsing saw twice (and merged).
pub fn check_files(record: &Value, repeated: &[DuplicateKey], problems: &mut Vec<Problem>) {
    let Some(files) = crate::data::read::code_files(record) else {
        return;
    };
    let mut reported = HashSet::new();
    for path in repeated.iter().map(|d| &d.key) {
        if reported.insert(path) {
            problems.push(Problem::error(
                FindingKind::DuplicatePath,
                file_field(path),
                format!("`{path}` appears more than once in `files`; only the last copy is kept by JSON readers"),
            ));
        }
    }
    let mut normalised: HashMap<String, &str> = HashMap::new();
    for (path, content) in files {
        if let Some(why) = unsafe_path(path) {
            problems.push(Problem::error(
                FindingKind::UnsafePath,
                file_field(path),
                format!("path `{path}` {why}; paths must be relative and stay inside the project"),
            ));
        }
        if let Some(first) = normalised.insert(normalise(path), path)
            && first != path
        {
            problems.push(Problem::error(
                FindingKind::DuplicatePath,
                file_field(path),
                format!("`{path}` names the same file as `{first}`"),
            ));
        }
        let Some(source) = content.as_str() else {
            continue;
        };
        if let Err(e) = syntax::check(path, source) {
            problems.push(Problem::error(
                FindingKind::SyntaxError,
                file_field(path),
                format!(
                    "{} syntax error at {}:{}: {}",
                    e.language, e.line, e.column, e.message
                ),
            ));
        }
    }
}

/// The paths of a multi-file record's files that run code when its tests run.
pub fn test_time_files(record: &Value) -> Vec<String> {
    let Some(files) = crate::data::read::code_files(record) else {
        return Vec::new();
    };
    files
        .iter()
        .filter(|(path, content)| runs_at_test_time(path, content.as_str().unwrap_or("")).is_some())
        .map(|(path, _)| path.clone())
        .collect()
}

/// Why a file path is unsafe to write (absolute, or climbing out with `..`), if it is.
pub fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.trim().is_empty() {
        return Some("is empty");
    }
    let bytes = path.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if path.starts_with('/') || path.starts_with('\\') || drive {
        return Some("is absolute");
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Some("climbs out with `..`");
    }
    None
}

/// `./app//main.py` and `app/main.py` are one file.
pub fn normalise(path: &str) -> String {
    path.split(['/', '\\'])
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}
