//! The model side: finding a model's files, its tokenizer and chat template,
//! and turning samples into tokens.

pub mod adapter;
pub mod attend;
pub mod attend_one;
pub mod base_weight;
pub mod checkpoint;
pub mod config;
mod config_check;
pub mod decoder;
pub mod device;
pub mod exp;
pub mod flash;
pub mod frozen;
pub mod fused_ce;
pub mod gemv;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod huge_pages;
pub mod kv_cache;
pub mod loaded;
pub mod lora;
pub mod lora_op;
pub mod loss;
pub mod merge;
pub mod norm_op;
pub mod ollama;
pub mod precomputed;
pub mod product;
pub mod pyjson;
pub mod residual;
pub mod rope;
pub mod rope_op;
pub mod sampler;
mod softmax_rows;
pub mod st_write;
pub mod swiglu_op;
pub mod template;
pub mod tiny;
pub mod tokenize;
pub mod weights;
mod wide;

pub use loaded::{LoadOptions, Model};
pub use template::{BuiltinTemplate, ChatTemplate};
pub use tokenize::{ChatTokenizer, Encoded};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model `{repo}` is not a local directory or GGUF file and is not in the Hugging Face cache (searched {searched}); download it with network access or pass a local directory"
    )]
    NotFound { repo: String, searched: String },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(
        "`{repo}` is not a local directory or file, nor a whole model in the Hugging Face cache ({cache}); downloading it: {source}"
    )]
    Download {
        repo: String,
        cache: String,
        #[source]
        source: Box<hub::HubError>,
    },
    #[error("chat template: {0}")]
    Template(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// Largest elementwise difference of two tensors, for parity checks and
/// tests.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> candle_core::Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// The largest absolute value of an f32 tensor.
pub fn max_abs(t: &candle_core::Tensor) -> candle_core::Result<f32> {
    t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}
