//! A model ready to run: weights, tokenizer with chat template, generation
//! defaults, and optionally an adapter that can be switched on and off.

use super::adapter::{self, AdapterError};
use super::config::ModelConfig;
use super::decoder::Decoder;
use super::lora::LoraSpec;
use super::template::BuiltinTemplate;
use super::tokenize::ChatTokenizer;
use super::weights::Weights;
use super::{ModelError, hub};
use candle_core::{DType, Device};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Tokens that end a turn in common chat formats.
const END_OF_TURN: [&str; 6] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|endoftext|>",
    "</s>",
];

pub struct Model {
    /// What the user named: a directory or a repo id.
    pub name: String,
    pub dir: PathBuf,
    pub decoder: Decoder,
    pub tokenizer: ChatTokenizer,
    /// Token ids that end generation (EOS and end-of-turn markers).
    pub stop_ids: Vec<u32>,
    pub adapter: Option<(PathBuf, LoraSpec)>,
}

/// Precision and device to load with.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dtype: DType,
    pub device: Device,
    /// Use this built-in prompt layout instead of the model's chat template.
    pub template: Option<BuiltinTemplate>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dtype: DType::F32,
            device: Device::Cpu,
            template: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error("loading weights: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Model {
    pub fn load(name: &str, options: &LoadOptions) -> Result<Model, LoadError> {
        let dir = hub::resolve(name)?;
        let config = ModelConfig::load(&dir)?;
        let weights = Weights::open(&dir, options.dtype, &options.device)?;
        super::config_check::check(&config, &weights).map_err(|message| ModelError::File {
            path: dir.join("config.json").display().to_string(),
            message,
        })?;
        let decoder = Decoder::load(config, &weights)?;
        let mut tokenizer = ChatTokenizer::load_dir(&dir)?;
        if let Some(builtin) = options.template {
            tokenizer.use_builtin_template(builtin)?;
        }
        let stop_ids = stop_ids(&dir, &decoder.config, &tokenizer);
        Ok(Model {
            name: name.to_string(),
            dir,
            decoder,
            tokenizer,
            stop_ids,
            adapter: None,
        })
    }

    /// Loads a PEFT adapter; `Mode::ADAPTED` then uses it, `Mode::BASE` not.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<(), AdapterError> {
        let spec = adapter::load(&mut self.decoder, dir)?;
        self.adapter = Some((dir.to_path_buf(), spec));
        Ok(())
    }
}

/// EOS ids from config.json and generation_config.json, the tokenizer's EOS,
/// and any end-of-turn marker the vocabulary holds.
fn stop_ids(dir: &Path, config: &ModelConfig, tokenizer: &ChatTokenizer) -> Vec<u32> {
    let mut ids = config.eos_token_ids.clone();
    if let Ok(text) = std::fs::read_to_string(dir.join("generation_config.json")) {
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            match value.get("eos_token_id") {
                Some(Value::Number(n)) => ids.extend(n.as_u64().map(|v| v as u32)),
                Some(Value::Array(items)) => {
                    ids.extend(items.iter().filter_map(Value::as_u64).map(|v| v as u32))
                }
                _ => {}
            }
        }
    }
    let names = std::iter::once(tokenizer.eos_token.as_str()).chain(END_OF_TURN);
    ids.extend(names.filter_map(|t| tokenizer.tokenizer.token_to_id(t)));
    ids.sort_unstable();
    ids.dedup();
    ids
}
