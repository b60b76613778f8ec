//! A model ready to run: weights, tokenizer with chat template, generation
//! defaults, and optionally an adapter that can be switched on and off.

use super::ModelError;
use super::adapter::{self, AdapterError};
use super::config::ModelConfig;
use super::decoder::Decoder;
use super::gguf::{GgufFile, GgufWeights};
use super::hub::{self, ModelSource};
use super::lora::LoraSpec;
use super::template::BuiltinTemplate;
use super::tokenize::ChatTokenizer;
use super::weights::Weights;
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
    /// What the user named: a directory, GGUF file, `ollama:` name or repo id.
    pub name: String,
    pub source: ModelSource,
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
        let source = hub::resolve(name)?;
        let (decoder, mut tokenizer, named_stops) = match &source {
            ModelSource::Dir(dir) => load_dir(dir, options)?,
            ModelSource::Gguf(path) => load_gguf(path, options)?,
        };
        if let Some(builtin) = options.template {
            tokenizer.use_builtin_template(builtin)?;
        }
        let stop_ids = stop_ids(named_stops, &decoder.config, &tokenizer);
        Ok(Model {
            name: name.to_string(),
            source,
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

/// The shape and tokenizer of a model, read without its weights (what
/// estimates and dry runs need).
pub fn shape_and_tokenizer(
    source: &ModelSource,
) -> Result<(ModelConfig, ChatTokenizer), ModelError> {
    match source {
        ModelSource::Dir(dir) => Ok((ModelConfig::load(dir)?, ChatTokenizer::load_dir(dir)?)),
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path)?;
            Ok((file.model_config()?, file.chat_tokenizer()?))
        }
    }
}

/// What a model source yields: the decoder, its tokenizer, and the stop
/// token ids the source names besides config's EOS.
type Loaded = (Decoder, ChatTokenizer, Vec<u32>);

fn load_dir(dir: &Path, options: &LoadOptions) -> Result<Loaded, LoadError> {
    let config = ModelConfig::load(dir)?;
    let weights = Weights::open(dir, options.dtype, &options.device)?;
    super::config_check::check(&config, &weights).map_err(|message| ModelError::File {
        path: dir.join("config.json").display().to_string(),
        message,
    })?;
    let decoder = Decoder::load(config, &weights)?;
    let tokenizer = ChatTokenizer::load_dir(dir)?;
    Ok((decoder, tokenizer, generation_eos_ids(dir)))
}

/// A GGUF file, its weights dequantized into the working dtype.
fn load_gguf(path: &Path, options: &LoadOptions) -> Result<Loaded, LoadError> {
    let file = GgufFile::open(path)?;
    let config = file.model_config()?;
    let weights = GgufWeights::new(&file, &config, options.dtype, &options.device)?;
    super::config_check::check(&config, &weights).map_err(|message| file.error(message))?;
    let decoder = Decoder::load(config, &weights)?;
    Ok((decoder, file.chat_tokenizer()?, file.stop_ids()?))
}

/// EOS ids from generation_config.json.
fn generation_eos_ids(dir: &Path) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(dir.join("generation_config.json")) else {
        return Vec::new();
    };
    serde_json::from_str::<Value>(&text)
        .map(|value| super::config::token_ids(value.get("eos_token_id")))
        .unwrap_or_default()
}

/// EOS ids from the config and the source, the tokenizer's EOS, and any
/// end-of-turn marker the vocabulary holds.
fn stop_ids(mut ids: Vec<u32>, config: &ModelConfig, tokenizer: &ChatTokenizer) -> Vec<u32> {
    ids.extend(&config.eos_token_ids);
    let names = std::iter::once(tokenizer.eos_token.as_str()).chain(END_OF_TURN);
    ids.extend(names.filter_map(|t| tokenizer.tokenizer.token_to_id(t)));
    ids.sort_unstable();
    ids.dedup();
    ids
}
