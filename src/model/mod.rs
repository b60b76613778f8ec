//! The model side: finding a model's files, its tokenizer and chat template,
//! and turning samples into tokens.

pub mod hub;
pub mod pyjson;
pub mod template;
pub mod tokenize;

pub use template::{BuiltinTemplate, ChatTemplate};
pub use tokenize::{ChatTokenizer, Encoded};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model `{repo}` is not a local directory and is not in the Hugging Face cache (searched {searched}); download it with network access or pass a local directory"
    )]
    NotFound { repo: String, searched: String },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("chat template: {0}")]
    Template(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}
