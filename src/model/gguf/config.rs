//! A model's shape from GGUF metadata, written as the `config.json`
//! transformers would have, so one parser (`ModelConfig::from_json`) serves
//! both sources and `merge` can write the same JSON beside merged weights.

use super::GgufFile;
use crate::model::ModelError;
use crate::model::config::ModelConfig;
use candle_core::quantized::GgmlDType;
use serde_json::{Value, json};

/// The GGUF architectures tunebench runs and the transformers class of each
/// (Mistral models are written with the `llama` architecture).
const ARCHITECTURES: [(&str, &str); 4] = [
    ("llama", "LlamaForCausalLM"),
    ("mistral", "MistralForCausalLM"),
    ("qwen2", "Qwen2ForCausalLM"),
    ("qwen3", "Qwen3ForCausalLM"),
];

/// Whether llama.cpp's converter permuted this architecture's q and k rows
/// for its rotary layout (it does so for Llama-family models only).
pub fn permutes_qk(arch: &str) -> bool {
    matches!(arch, "llama" | "mistral")
}

impl GgufFile {
    /// The model's `config.json`, from `{arch}.*` and `tokenizer.ggml.*` keys.
    pub fn hf_config(&self) -> Result<Value, ModelError> {
        let arch = self.architecture()?;
        let class = ARCHITECTURES
            .iter()
            .find(|(name, _)| *name == arch)
            .map(|(_, class)| *class)
            .ok_or_else(|| {
                self.error(format!(
                    "unsupported architecture `{arch}` (general.architecture); tunebench runs llama, mistral, qwen2 and qwen3"
                ))
            })?;
        let key = |name: &str| format!("{arch}.{name}");
        let required = |name: &str| -> Result<u64, ModelError> {
            self.uint(&key(name))?
                .ok_or_else(|| self.error(format!("metadata key `{}` is missing", key(name))))
        };
        let hidden = required("embedding_length")?;
        let heads = required("attention.head_count")?;
        let kv_heads = self.uint(&key("attention.head_count_kv"))?.unwrap_or(heads);
        if heads == 0 {
            return Err(self.error(format!("`{}` is 0", key("attention.head_count"))));
        }
        let head_dim = self
            .uint(&key("attention.key_length"))?
            .unwrap_or(hidden / heads);
        if let Some(rotary) = self.uint(&key("rope.dimension_count"))?
            && rotary != head_dim
        {
            return Err(self.error(format!(
                    "`{}` is {rotary} but heads are {head_dim} wide: partial rotary embeddings are not supported",
                    key("rope.dimension_count")
                )));
        }
        self.check_rope_scaling(arch)?;
        let vocab = match self.uint(&key("vocab_size"))? {
            Some(n) => n,
            None => self.token_count()?,
        };
        let has = |name: &str| self.content.tensor_infos.contains_key(name);
        let mut config = json!({
            "architectures": [class],
            "model_type": arch,
            "hidden_size": hidden,
            "intermediate_size": required("feed_forward_length")?,
            "num_hidden_layers": required("block_count")?,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": head_dim,
            "vocab_size": vocab,
            "rms_norm_eps": self.float(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6),
            "rope_theta": self.float(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            "max_position_embeddings": self.uint(&key("context_length"))?.unwrap_or(4096),
            "tie_word_embeddings": !has("output.weight"),
            "hidden_act": "silu",
        });
        if arch != "qwen2" {
            config["attention_bias"] = json!(has("blk.0.attn_q.bias"));
        }
        config["mlp_bias"] = json!(has("blk.0.ffn_gate.bias"));
        for (gguf, hf) in [
            ("tokenizer.ggml.bos_token_id", "bos_token_id"),
            ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ] {
            if let Some(id) = self.uint(gguf)? {
                config[hf] = json!(id);
            }
        }
        Ok(config)
    }

    /// The parsed config, with Llama 3's RoPE frequency factors when the file
    /// carries them (llama.cpp stores them as the `rope_freqs` tensor, not as
    /// metadata).
    pub fn model_config(&self) -> Result<ModelConfig, ModelError> {
        let json = self.hf_config()?;
        let mut config = ModelConfig::from_json(&json).map_err(|e| self.error(e))?;
        if let Some(factors) = self.rope_freq_factors()? {
            if factors.len() != config.head_dim / 2 {
                return Err(self.error(format!(
                    "rope_freqs.weight has {} factors, heads need {}",
                    factors.len(),
                    config.head_dim / 2
                )));
            }
            config.rope_freq_factors = Some(std::sync::Arc::new(factors));
        }
        config.stored_projection_bytes = Some(self.projection_bytes(&config));
        Ok(config)
    }

    /// Bytes the layers' projection matrices take when kept as stored
    /// (float ones are widened to f32 on load).
    fn projection_bytes(&self, config: &ModelConfig) -> u64 {
        let names = config
            .tensor_names()
            .into_iter()
            .filter(|n| n.contains("_proj.weight"))
            .filter_map(|n| super::tensors::gguf_name(&n));
        names
            .filter_map(|n| self.content.tensor_infos.get(&n))
            .map(|info| {
                let (t, n) = (info.ggml_dtype, info.shape.elem_count());
                let bytes = match t {
                    GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => n * 4,
                    _ => n / t.block_size() * t.type_size(),
                };
                bytes as u64
            })
            .sum()
    }

    /// Only unscaled RoPE (and Llama 3's, through `rope_freqs`) is supported.
    fn check_rope_scaling(&self, arch: &str) -> Result<(), ModelError> {
        let kind_key = format!("{arch}.rope.scaling.type");
        let factor_key = format!("{arch}.rope.scaling.factor");
        let kind = self.string(&kind_key)?.unwrap_or("none");
        let factor = self.float(&factor_key)?.unwrap_or(1.0);
        if kind == "none" || factor == 1.0 {
            return Ok(());
        }
        Err(self.error(format!(
            "`{kind_key}` is `{kind}` with factor {factor}: only unscaled and Llama 3 RoPE are supported"
        )))
    }

    /// How many tokens `tokenizer.ggml.tokens` lists.
    fn token_count(&self) -> Result<u64, ModelError> {
        match self.value("tokenizer.ggml.tokens") {
            Some(candle_core::quantized::gguf_file::Value::Array(items)) => Ok(items.len() as u64),
            _ => self
                .content
                .tensor_infos
                .get("token_embd.weight")
                .map(|info| info.shape.dims()[0] as u64)
                .ok_or_else(|| self.error("no vocabulary size: neither `vocab_size` metadata, tokenizer.ggml.tokens nor token_embd.weight")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::{self, Content, Value as Meta};

    /// A GGUF header with `metadata` and no tensors.
    fn file(metadata: Vec<(&str, Meta)>) -> GgufFile {
        let refs: Vec<(&str, &Meta)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let mut bytes = std::io::Cursor::new(Vec::new());
        gguf_file::write(&mut bytes, &refs, &[]).unwrap();
        bytes.set_position(0);
        GgufFile {
            path: "test.gguf".into(),
            content: Content::read(&mut bytes).unwrap(),
        }
    }

    fn llama(extra: Vec<(&'static str, Meta)>) -> GgufFile {
        let mut metadata = vec![
            ("general.architecture", Meta::String("llama".into())),
            ("llama.embedding_length", Meta::U32(576)),
            ("llama.feed_forward_length", Meta::U32(1536)),
            ("llama.block_count", Meta::U32(30)),
            ("llama.attention.head_count", Meta::U32(9)),
            ("llama.attention.head_count_kv", Meta::U32(3)),
            ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
            ("llama.rope.freq_base", Meta::F32(100_000.0)),
            ("llama.context_length", Meta::U64(8192)),
            ("llama.vocab_size", Meta::U32(49152)),
        ];
        metadata.extend(extra);
        file(metadata)
    }

    #[test]
    fn llama_metadata_becomes_its_config() {
        let config = llama(vec![]).model_config().unwrap();
        assert_eq!(config.arch, crate::model::config::Arch::Llama);
        assert_eq!(
            (config.num_heads, config.num_kv_heads, config.head_dim),
            (9, 3, 64)
        );
        assert_eq!(
            (config.rope_theta, config.max_position_embeddings),
            (100_000.0, 8192)
        );
        assert!((config.rms_norm_eps - 1e-5).abs() < 1e-12);
        // No `output.weight`: the output shares the embedding.
        assert!(config.tie_word_embeddings && !config.qkv_bias);
        let wide = llama(vec![("llama.attention.key_length", Meta::U32(128))]);
        assert_eq!(wide.model_config().unwrap().head_dim, 128);
    }

    #[test]
    fn unsupported_metadata_is_refused_by_name() {
        let cases = [
            (
                file(vec![(
                    "general.architecture",
                    Meta::String("gemma2".into()),
                )]),
                "unsupported architecture `gemma2`",
            ),
            (
                llama(vec![("llama.rope.dimension_count", Meta::U32(32))]),
                "partial rotary",
            ),
            (
                llama(vec![
                    ("llama.rope.scaling.type", Meta::String("linear".into())),
                    ("llama.rope.scaling.factor", Meta::F32(4.0)),
                ]),
                "`llama.rope.scaling.type` is `linear`",
            ),
            (
                llama(vec![("llama.block_count", Meta::String("30".into()))]),
                "`llama.block_count` should be a whole number",
            ),
            (
                file(vec![("general.architecture", Meta::String("qwen2".into()))]),
                "`qwen2.embedding_length` is missing",
            ),
        ];
        for (file, wanted) in cases {
            let err = file.model_config().unwrap_err().to_string();
            assert!(
                err.starts_with("test.gguf: ") && err.contains(wanted),
                "{err}"
            );
        }
        let unscaled = llama(vec![
            ("llama.rope.scaling.type", Meta::String("linear".into())),
            ("llama.rope.scaling.factor", Meta::F32(1.0)),
        ]);
        assert!(unscaled.model_config().is_ok());
    }
}
