//! GGUF files (llama.cpp, Ollama, LM Studio) as a model source: the header
//! and metadata read once, then the config, tensors and tokenizer taken from
//! them (config.rs, tensors.rs, tokenizer/).

pub mod config;
pub mod export;
mod hf_dir;
mod modelfile;
mod q4_k_m;
pub mod tensors;
pub mod tokenizer;

use super::ModelError;
use candle_core::quantized::gguf_file::{Content, Value};
use std::path::{Path, PathBuf};

pub use tensors::GgufWeights;

/// A GGUF file's header: metadata and where each tensor lies.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
}

/// Whether `path` is a file that starts with the GGUF magic.
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"GGUF")
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<GgufFile, ModelError> {
        let mut file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
        let content = Content::read(&mut file)
            .map_err(|e| file_error(path, format!("not a readable GGUF file: {e}")))?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
        })
    }

    /// An error about this file.
    pub fn error(&self, message: impl std::fmt::Display) -> ModelError {
        file_error(&self.path, message)
    }

    pub fn value(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// `general.architecture`, which prefixes the model's own keys.
    pub fn architecture(&self) -> Result<&str, ModelError> {
        self.string("general.architecture")?
            .ok_or_else(|| self.error("metadata key `general.architecture` is missing"))
    }

    pub fn string(&self, key: &str) -> Result<Option<&str>, ModelError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A whole number of any integer width.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, ModelError> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => as_uint(v)
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a whole number", v)),
        }
    }

    pub fn float(&self, key: &str) -> Result<Option<f64>, ModelError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v as f64)),
            Some(Value::F64(v)) => Ok(Some(*v)),
            Some(v) => as_uint(v)
                .map(|n| Some(n as f64))
                .ok_or_else(|| self.wrong_type(key, "a number", v)),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ModelError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// An array, each element converted by `item` (`None`: wrong type).
    pub fn array<T>(
        &self,
        key: &str,
        item: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<Vec<T>>, ModelError> {
        let Some(value) = self.value(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(self.wrong_type(key, "an array", value));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                item(v).ok_or_else(|| {
                    self.error(format!("metadata `{key}`[{i}] has the wrong type ({v:?})"))
                })
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }

    fn wrong_type(&self, key: &str, wanted: &str, got: &Value) -> ModelError {
        let mut shown = format!("{got:?}");
        shown.truncate(80);
        self.error(format!("metadata `{key}` should be {wanted}, not {shown}"))
    }
}

/// Any GGUF integer as u64 (negative values are not whole counts).
pub fn as_uint(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(n) => Some(n as u64),
        Value::U16(n) => Some(n as u64),
        Value::U32(n) => Some(n as u64),
        Value::U64(n) => Some(n),
        Value::I8(n) => u64::try_from(n).ok(),
        Value::I16(n) => u64::try_from(n).ok(),
        Value::I32(n) => u64::try_from(n).ok(),
        Value::I64(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> ModelError {
    ModelError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}
