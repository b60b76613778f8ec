//! What the command line prints: human reports on stderr, `--json` on stdout.
//! `main.rs` only parses arguments and calls in here.

pub mod data;
pub mod download;
pub mod dry_run;
pub mod eval;
pub mod export_run;
pub mod model;
pub mod progress;
pub mod runs;
pub mod sampling;
pub mod train;

use std::process::ExitCode;

/// Exit codes of the command-line contract.
pub const EXIT_INPUT_ERRORS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Prints `value` as the one JSON document on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// An error and its causes, as `{:#}` prints them, less the causes whose
/// text is already there: errors such as `"{path}: {source}"` show their
/// source themselves, and printing it again doubled messages ("Is a
/// directory (os error 21): Is a directory (os error 21)").
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

pub fn exit_for_errors(has_errors: bool) -> ExitCode {
    if has_errors {
        ExitCode::from(EXIT_INPUT_ERRORS)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use anyhow::Context;

    #[test]
    fn a_source_shown_in_its_error_is_not_repeated() {
        let missing = std::path::Path::new("/no/such/data.jsonl");
        let error = crate::data::Store::open(missing)
            .map(|_| ())
            .context("opening the dataset")
            .unwrap_err();
        let text = error_text(&error);
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
        assert!(
            text.starts_with("opening the dataset: /no/such/data.jsonl: "),
            "{text}"
        );
        let plain = anyhow::Error::new(std::io::Error::other("disk full")).context("saving");
        assert_eq!(error_text(&plain), "saving: disk full");
    }
}
