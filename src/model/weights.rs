//! Reading a model's tensors from `*.safetensors` (one file, or shards listed
//! in `model.safetensors.index.json`), memory-mapped.

use super::ModelError;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// Where a decoder's tensors come from: files, or (for benchmarks and
/// tests) a generator.
pub trait TensorSource {
    /// The tensor in the working dtype on the working device.
    fn get(&self, name: &str) -> candle_core::Result<Tensor>;
    fn contains(&self, name: &str) -> bool;
    fn device(&self) -> &Device;
    fn dtype(&self) -> DType;

    fn get_optional(&self, name: &str) -> candle_core::Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(name).map(Some)
        } else {
            Ok(None)
        }
    }
}

pub struct Weights {
    files: MmapedSafetensors,
    pub device: Device,
    pub dtype: DType,
}

/// The safetensors files of a model directory.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| file_error(&index, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| file_error(&index, e))?;
        let mut shards: Vec<String> = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        return Ok(shards.into_iter().map(|s| dir.join(s)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(ModelError::File {
        path: dir.display().to_string(),
        message: "no model.safetensors or model.safetensors.index.json (only safetensors weights are supported)".into(),
    })
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl Weights {
    pub fn open(dir: &Path, dtype: DType, device: &Device) -> Result<Self, ModelError> {
        let files = weight_files(dir)?;
        // SAFETY: the files are mapped read-only; a model directory changing
        // under a running process is outside what tunebench supports.
        let files = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| file_error(dir, e))?;
        Ok(Weights {
            files,
            device: device.clone(),
            dtype,
        })
    }
}

impl TensorSource for Weights {
    fn contains(&self, name: &str) -> bool {
        self.files.get(name).is_ok()
    }

    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        self.files.load(name, &self.device)?.to_dtype(self.dtype)
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Seeded random weights of a config's shapes (N(0, 0.02), unit norms, zero
/// biases), built in memory: for benchmarks on real model shapes without a
/// download.
pub struct RandomWeights {
    pub config: super::config::ModelConfig,
    pub device: Device,
    pub dtype: DType,
    pub seed: u64,
}

impl RandomWeights {
    /// The shape a tensor of this name has under the config.
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let c = &self.config;
        let (h, q, kv) = (
            c.hidden_size,
            c.num_heads * c.head_dim,
            c.num_kv_heads * c.head_dim,
        );
        // `model.layers.3.self_attn.q_proj.weight` -> `self_attn.q_proj.weight`.
        let leaf = match name.strip_prefix("model.layers.") {
            Some(rest) => rest.split_once('.').map_or(rest, |(_, leaf)| leaf),
            None => name,
        };
        Some(match leaf {
            "model.embed_tokens.weight" | "lm_head.weight" => vec![c.vocab_size, h],
            "model.norm.weight" | "input_layernorm.weight" | "post_attention_layernorm.weight" => {
                vec![h]
            }
            "self_attn.q_proj.weight" => vec![q, h],
            "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => vec![kv, h],
            "self_attn.o_proj.weight" => vec![h, q],
            "self_attn.q_proj.bias" => vec![q],
            "self_attn.k_proj.bias" | "self_attn.v_proj.bias" => vec![kv],
            "self_attn.q_norm.weight" | "self_attn.k_norm.weight" => vec![c.head_dim],
            "mlp.gate_proj.weight" | "mlp.up_proj.weight" => vec![c.intermediate_size, h],
            "mlp.down_proj.weight" => vec![h, c.intermediate_size],
            _ => return None,
        })
    }
}

impl TensorSource for RandomWeights {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        let shape = self
            .shape(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor named {name}")))?;
        let n: usize = shape.iter().product();
        let values = if name.ends_with("norm.weight") {
            vec![1.0f32; n]
        } else if name.ends_with(".bias") {
            vec![0.0f32; n]
        } else {
            let seed = self.seed ^ crate::data::rng::stable_hash(name);
            crate::data::rng::SplitMix64::new(seed).normal_vec(n, 0.02)
        };
        Tensor::from_vec(values, shape, &self.device)?.to_dtype(self.dtype)
    }

    fn contains(&self, name: &str) -> bool {
        let tied_head = name == "lm_head.weight" && self.config.tie_word_embeddings;
        self.shape(name).is_some() && !tied_head
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}
