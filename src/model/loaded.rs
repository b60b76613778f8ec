//! A model ready to run: weights, tokenizer with chat template, generation
//! defaults, and optionally an adapter that can be switched on and off.

use super::ModelError;
use super::adapter::{self, AdapterError};
use super::base_weight::Quantize;
use super::config::ModelConfig;
use super::decoder::Decoder;
use super::gguf::{GgufFile, GgufWeights};
use super::hub::{self, ModelSource};
use super::lora::LoraSpec;
use super::template::BuiltinTemplate;
use super::tokenize::ChatTokenizer;
use super::weights::{Quantizing, TensorSource, Weights};
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
    /// Keep the projections quantized (GGUF types kept, or quantized on
    /// load); `None` widens everything to `dtype`.
    pub quantize: Option<Quantize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dtype: DType::F32,
            device: Device::Cpu,
            template: None,
            quantize: None,
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

    /// How the base's weights are held, for status lines: the working
    /// dtype (`f32`, `bf16`), or the GGUF type most projections are kept
    /// in (`q4_1`).
    pub fn precision(&self) -> String {
        let mut kept: Vec<(String, usize)> = Vec::new();
        for (_, _, linear) in self.decoder.projections() {
            let Some(t) = linear.weight.ggml_type() else {
                continue;
            };
            let name = super::base_weight::type_name(t);
            match kept.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => kept.push((name, 1)),
            }
        }
        match kept.into_iter().max_by_key(|(_, count)| *count) {
            Some((name, _)) => name,
            None => format!("{:?}", self.decoder.dtype).to_ascii_lowercase(),
        }
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
    if options.quantize == Some(Quantize::Keep) {
        return Err(ModelError::File {
            path: dir.display().to_string(),
            message: "quantize = keep keeps a GGUF file's own types; a safetensors model \
                      is quantized on load with a type (q4_k, q8_0, ...)"
                .into(),
        }
        .into());
    }
    let decoder = load_decoder(config, &weights, options)?;
    let tokenizer = ChatTokenizer::load_dir(dir)?;
    Ok((decoder, tokenizer, generation_eos_ids(dir)))
}

/// A GGUF file, its weights dequantized into the working dtype (or its
/// projections kept in their types).
fn load_gguf(path: &Path, options: &LoadOptions) -> Result<Loaded, LoadError> {
    let file = GgufFile::open(path)?;
    let config = file.model_config()?;
    let weights = GgufWeights::new(&file, &config, options.dtype, &options.device)?;
    super::config_check::check(&config, &weights).map_err(|message| file.error(message))?;
    let decoder = load_decoder(config, &weights, options)?;
    Ok((decoder, file.chat_tokenizer()?, file.stop_ids()?))
}

fn load_decoder(
    config: ModelConfig,
    weights: &dyn TensorSource,
    options: &LoadOptions,
) -> candle_core::Result<Decoder> {
    match options.quantize {
        Some(quantize) => Decoder::load(
            config,
            &Quantizing {
                inner: weights,
                quantize,
            },
        ),
        None => Decoder::load(config, weights),
    }
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
