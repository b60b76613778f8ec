//! A model's shape, read from its `config.json`.

use super::ModelError;
use serde_json::Value;
use std::path::Path;

/// The decoder families tunebench runs; they differ only in details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
}

impl Arch {
    fn from_config(config: &Value) -> Result<Arch, String> {
        let named = config
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .map(str::to_string);
        let model_type = config
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let arch = match (named.as_deref(), model_type) {
            (Some("LlamaForCausalLM"), _) | (None, "llama") => Arch::Llama,
            (Some("MistralForCausalLM"), _) | (None, "mistral") => Arch::Mistral,
            (Some("Qwen2ForCausalLM"), _) | (None, "qwen2") => Arch::Qwen2,
            (Some("Qwen3ForCausalLM"), _) | (None, "qwen3") => Arch::Qwen3,
            (Some(other), _) => return Err(other.to_string()),
            (None, other) => return Err(format!("model_type `{other}`")),
        };
        Ok(arch)
    }
}

/// Llama 3's frequency-dependent RoPE scaling (`rope_scaling.rope_type == "llama3"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    /// Per-frequency divisors of the inverse frequencies, as GGUF files of
    /// Llama 3 models carry them (`rope_freqs`) instead of the scaling keys.
    /// (Shared: the config travels in UI messages, which stay small.)
    pub rope_freq_factors: Option<std::sync::Arc<Vec<f32>>>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q, k and v projections (Qwen2; Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama with `attention_bias`).
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// RMSNorm on q and k per head (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// `torch_dtype` / `dtype` as written, e.g. "bfloat16".
    pub dtype: Option<String>,
    /// Bytes a GGUF file stores the seven projections of every layer in
    /// (what a base kept quantized holds); `None` for other sources.
    pub stored_projection_bytes: Option<u64>,
}

impl ModelConfig {
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::File {
            path: path.display().to_string(),
            message: format!("invalid JSON: {e}"),
        })?;
        Self::from_json(&value).map_err(|message| ModelError::File {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn from_json(c: &Value) -> Result<Self, String> {
        let arch = Arch::from_config(c).map_err(|name| {
            format!("unsupported architecture {name}; tunebench runs Llama, Mistral, Qwen2 and Qwen3 models")
        })?;
        let int = |key: &str| -> Result<usize, String> {
            c.get(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| format!("`{key}` is missing or not a whole number"))
        };
        let float = |key: &str, default: f64| c.get(key).and_then(Value::as_f64).unwrap_or(default);
        let flag =
            |key: &str, default: bool| c.get(key).and_then(Value::as_bool).unwrap_or(default);
        let hidden_size = int("hidden_size")?;
        let num_heads = int("num_attention_heads")?;
        let num_kv_heads = c
            .get("num_key_value_heads")
            .and_then(Value::as_u64)
            .map_or(num_heads, |v| v as usize);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(format!(
                "num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"
            ));
        }
        let head_dim = c
            .get("head_dim")
            .and_then(Value::as_u64)
            .map_or(hidden_size / num_heads, |v| v as usize);
        let attention_bias = flag("attention_bias", false);
        let token_ids = |key: &str| token_ids(c.get(key));
        Ok(ModelConfig {
            arch,
            hidden_size,
            intermediate_size: int("intermediate_size")?,
            num_layers: int("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: int("vocab_size")?,
            rms_norm_eps: float("rms_norm_eps", 1e-6),
            // transformers 5 writes `rope_parameters`; older configs the
            // top-level `rope_theta` and `rope_scaling`.
            rope_theta: c
                .get("rope_parameters")
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64)
                .unwrap_or_else(|| float("rope_theta", 10_000.0)),
            rope_scaling: rope_scaling(c.get("rope_parameters").or_else(|| c.get("rope_scaling")))?,
            rope_freq_factors: None,
            max_position_embeddings: int("max_position_embeddings").unwrap_or(4096),
            tie_word_embeddings: flag("tie_word_embeddings", false),
            qkv_bias: arch == Arch::Qwen2 || attention_bias,
            o_bias: attention_bias && arch != Arch::Qwen2,
            mlp_bias: flag("mlp_bias", false),
            qk_norm: arch == Arch::Qwen3,
            bos_token_id: token_ids("bos_token_id").first().copied(),
            eos_token_ids: token_ids("eos_token_id"),
            dtype: c
                .get("torch_dtype")
                .or_else(|| c.get("dtype"))
                .and_then(Value::as_str)
                .map(str::to_string),
            stored_projection_bytes: None,
        })
    }

    /// The shape a tensor of this name has under the config, with the
    /// config keys that decide it; `None` for a name the decoder never reads.
    pub fn tensor_shape(&self, name: &str) -> Option<(Vec<usize>, &'static str)> {
        let (h, q, kv) = (
            self.hidden_size,
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        );
        const Q: &str = "num_attention_heads x head_dim";
        const KV: &str = "num_key_value_heads x head_dim";
        // `model.layers.3.self_attn.q_proj.weight` -> `self_attn.q_proj.weight`.
        let leaf = match name.strip_prefix("model.layers.") {
            Some(rest) => rest.split_once('.').map_or(rest, |(_, leaf)| leaf),
            None => name,
        };
        Some(match leaf {
            "model.embed_tokens.weight" | "lm_head.weight" => {
                (vec![self.vocab_size, h], "vocab_size, hidden_size")
            }
            "model.norm.weight" | "input_layernorm.weight" | "post_attention_layernorm.weight" => {
                (vec![h], "hidden_size")
            }
            "self_attn.q_proj.weight" => {
                (vec![q, h], "num_attention_heads x head_dim, hidden_size")
            }
            "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => {
                (vec![kv, h], "num_key_value_heads x head_dim, hidden_size")
            }
            "self_attn.o_proj.weight" => {
                (vec![h, q], "hidden_size, num_attention_heads x head_dim")
            }
            "self_attn.q_proj.bias" => (vec![q], Q),
            "self_attn.k_proj.bias" | "self_attn.v_proj.bias" => (vec![kv], KV),
            "self_attn.o_proj.bias" => (vec![h], "hidden_size"),
            "self_attn.q_norm.weight" | "self_attn.k_norm.weight" => {
                (vec![self.head_dim], "head_dim")
            }
            "mlp.gate_proj.weight" | "mlp.up_proj.weight" => (
                vec![self.intermediate_size, h],
                "intermediate_size, hidden_size",
            ),
            "mlp.down_proj.weight" => (
                vec![h, self.intermediate_size],
                "hidden_size, intermediate_size",
            ),
            "mlp.gate_proj.bias" | "mlp.up_proj.bias" => {
                (vec![self.intermediate_size], "intermediate_size")
            }
            "mlp.down_proj.bias" => (vec![h], "hidden_size"),
            _ => return None,
        })
    }

    /// Every tensor the decoder reads under this config, in load order.
    pub fn tensor_names(&self) -> Vec<String> {
        let mut names = vec!["model.embed_tokens.weight".to_string()];
        if !self.tie_word_embeddings {
            names.push("lm_head.weight".into());
        }
        names.push("model.norm.weight".into());
        for i in 0..self.num_layers {
            let p = format!("model.layers.{i}");
            names.push(format!("{p}.input_layernorm.weight"));
            names.push(format!("{p}.post_attention_layernorm.weight"));
            for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                names.push(format!("{p}.self_attn.{proj}.weight"));
                let bias = if proj == "o_proj" {
                    self.o_bias
                } else {
                    self.qkv_bias
                };
                if bias {
                    names.push(format!("{p}.self_attn.{proj}.bias"));
                }
            }
            if self.qk_norm {
                names.push(format!("{p}.self_attn.q_norm.weight"));
                names.push(format!("{p}.self_attn.k_norm.weight"));
            }
            for proj in ["gate_proj", "up_proj", "down_proj"] {
                names.push(format!("{p}.mlp.{proj}.weight"));
                if self.mlp_bias {
                    names.push(format!("{p}.mlp.{proj}.bias"));
                }
            }
        }
        names
    }

    /// Parameters of the base model (for memory estimates and reports).
    pub fn parameter_count(&self) -> usize {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let q = self.num_heads * d;
        let kv = self.num_kv_heads * d;
        let attention = h * q + 2 * h * kv + q * h;
        let mlp = 3 * h * i;
        let per_layer = attention + mlp + 2 * h;
        let embeddings = self.vocab_size * h * if self.tie_word_embeddings { 1 } else { 2 };
        self.num_layers * per_layer + embeddings + h
    }
}

/// Token ids written as one number or a list (`eos_token_id`).
pub(crate) fn token_ids(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_u64)
            .map(|v| v as u32)
            .collect(),
        _ => Vec::new(),
    }
}

fn rope_scaling(value: Option<&Value>) -> Result<Option<Llama3Scaling>, String> {
    let Some(obj) = value.and_then(Value::as_object) else {
        return Ok(None);
    };
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let get = |key: &str| {
        obj.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("rope_scaling.{key} is missing"))
    };
    match kind {
        "default" => Ok(None),
        "llama3" => Ok(Some(Llama3Scaling {
            factor: get("factor")?,
            low_freq_factor: get("low_freq_factor")?,
            high_freq_factor: get("high_freq_factor")?,
            original_max_position_embeddings: get("original_max_position_embeddings")?,
        })),
        other => Err(format!(
            "rope_scaling type `{other}` is not supported (supported: llama3)"
        )),
    }
}
