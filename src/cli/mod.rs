//! What the command line prints: human reports on stderr, `--json` on stdout.
//! `main.rs` only parses arguments and calls in here.

pub mod data;
pub mod eval;
pub mod model;
pub mod progress;
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

pub fn exit_for_errors(has_errors: bool) -> ExitCode {
    if has_errors {
        ExitCode::from(EXIT_INPUT_ERRORS)
    } else {
        ExitCode::SUCCESS
    }
}
