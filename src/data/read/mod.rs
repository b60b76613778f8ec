//! Reading one JSON record of a known format into the canonical [`Sample`].
//!
//! Readers never stop at the first problem: each pushes what it finds
//! (missing field, wrong type, ...) with the field's JSON path, and returns the
//! sample whenever one can still be built.

mod alpaca;
mod fields;
mod multifile;
mod turns;

pub use fields::{join_index, join_key};
pub use multifile::{CODE_SYSTEM_PROMPT, render_request};

use super::finding::{FindingKind, Problem};
use super::format::Format;
use super::sample::{Message, Role, Sample};
use fields::Fields;
use serde_json::Value;

/// Converts `record` (already known to be `format`) into a sample, reporting
/// problems into `problems`. Returns `None` when no sample can be built.
pub fn to_sample(format: Format, record: &Value, problems: &mut Vec<Problem>) -> Option<Sample> {
    let Some(obj) = record.as_object() else {
        problems.push(Problem::error(
            FindingKind::UnknownShape,
            "",
            format!(
                "expected a JSON object, found {}",
                fields::type_name(record)
            ),
        ));
        return None;
    };
    let mut f = Fields::new(obj, problems);
    match format {
        Format::Text => f.string("text").map(|t| Sample::Text(t.to_string())),
        Format::Completion => {
            let prompt = f.string("prompt");
            let completion = f.string("completion");
            let conv = super::sample::Conversation {
                system: None,
                messages: vec![
                    Message::new(Role::User, prompt?),
                    Message::new(Role::Assistant, completion?),
                ],
                tools: None,
            };
            Some(Sample::Chat(conv))
        }
        Format::Chat => turns::read_chat(&mut f).map(Sample::Chat),
        Format::ShareGpt => turns::read_sharegpt(&mut f).map(Sample::Chat),
        Format::Alpaca => alpaca::read(&mut f).map(Sample::Chat),
        Format::MultiFile => multifile::read(&mut f).map(Sample::Chat),
        Format::Preference => {
            f.problems.push(Problem::error(
                FindingKind::PreferenceRecord,
                "",
                "preference record (chosen/rejected): this is data for DPO-style training, not SFT",
            ));
            None
        }
    }
}

/// The `files` of a multi-file record, in their order in the file.
pub fn code_files(record: &Value) -> Option<&serde_json::Map<String, Value>> {
    record.get("output")?.get("files")?.as_object()
}
