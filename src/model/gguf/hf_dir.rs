//! A GGUF model written out as a Hugging Face folder (what `merge` produces
//! for a GGUF base): config.json from the metadata, the rebuilt tokenizer,
//! and every tensor dequantized to f32 under transformers' names.

use super::{GgufFile, GgufWeights};
use crate::model::ModelError;
use crate::model::tokenize::ChatTokenizer;
use crate::model::weights::TensorSource;
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

impl GgufFile {
    /// Writes `out`: the model's tensors, `replaced` instead of those it
    /// names, with the config and tokenizer files transformers reads.
    pub fn write_hf_dir(
        &self,
        tokenizer: &ChatTokenizer,
        replaced: &HashMap<String, Tensor>,
        out: &Path,
    ) -> Result<(), ModelError> {
        let config = self.model_config()?;
        if config.rope_freq_factors.is_some() {
            return Err(self.error(
                "this model's RoPE factors (rope_freqs) have no config.json form here yet; merge is not supported for it",
            ));
        }
        let weights = GgufWeights::new(self, &config, DType::F32, &Device::Cpu)?;
        let mut tensors = Vec::new();
        for name in config.tensor_names() {
            let tensor = match replaced.get(&name) {
                Some(t) => t.clone(),
                None => weights.get(&name).map_err(|e| self.error(e))?,
            };
            tensors.push(crate::model::st_write::named(name, &tensor).map_err(|e| self.error(e))?);
        }
        let out_error = |path: &Path, e: &dyn std::fmt::Display| ModelError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let weights_path = out.join("model.safetensors");
        crate::model::st_write::write_f32(&weights_path, &tensors)
            .map_err(|e| out_error(&weights_path, &e))?;
        let mut hf_config = self.hf_config()?;
        hf_config["torch_dtype"] = json!("float32");
        let tokenizer_config = json!({
            "bos_token": tokenizer.bos_token,
            "eos_token": tokenizer.eos_token,
            "chat_template": self.string("tokenizer.chat_template")?,
        });
        let generation = json!({ "eos_token_id": self.stop_ids()? });
        for (name, value) in [
            ("config.json", hf_config),
            ("tokenizer_config.json", tokenizer_config),
            ("generation_config.json", generation),
        ] {
            let path = out.join(name);
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            crate::data::store::atomic_write(&path, |w| w.write_all(text.as_bytes()))
                .map_err(|e| out_error(&path, &e))?;
        }
        let path = out.join("tokenizer.json");
        tokenizer
            .tokenizer
            .save(&path, false)
            .map_err(|e| out_error(&path, &e))
    }
}
