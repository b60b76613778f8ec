//! Samples: formats, the JSONL store, validation, statistics, split and
//! conversion. This layer knows nothing of models; where it needs token
//! counts they come in as a function.

pub mod builtin;
pub mod finding;
pub mod format;
pub mod read;
pub mod sample;
pub mod store;

pub use finding::{Finding, FindingKind, Severity};
pub use format::Format;
pub use sample::{Conversation, Dropped, Message, Role, Sample, ToolCall};
pub use store::{Layout, Store, StoreError};
pub mod convert;
mod dup_keys;
pub mod language;
pub mod parse;
pub mod rng;
pub mod split;
pub mod stats;
pub mod validate;
