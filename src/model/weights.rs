//! Reading a model's tensors from `*.safetensors` (one file, or shards listed
//! in `model.safetensors.index.json`), memory-mapped.

use super::ModelError;
use super::base_weight::{self, FrozenWeight, Quantize};
use candle_core::quantized::QTensor;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// Where a decoder's tensors come from: files, or (for benchmarks and
/// tests) a generator.
pub trait TensorSource {
    /// The tensor in the working dtype on the working device.
    fn get(&self, name: &str) -> candle_core::Result<Tensor>;
    fn contains(&self, name: &str) -> bool;
    /// The tensor's shape, read without loading it; `None` if it is absent.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    fn device(&self) -> &Device;
    fn dtype(&self) -> DType;

    fn get_optional(&self, name: &str) -> candle_core::Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The tensor as the file holds it, when that is a quantized type
    /// (GGUF); `None` for plain floats and for sources without blocks.
    fn get_blocks(&self, _name: &str) -> candle_core::Result<Option<QTensor>> {
        Ok(None)
    }

    /// A projection's weight `[out, in]`: dense unless the source keeps or
    /// quantizes projections ([`Quantizing`]).
    fn get_frozen(&self, name: &str) -> candle_core::Result<FrozenWeight> {
        self.get(name).map(FrozenWeight::Dense)
    }
}

/// A source whose projection weights are kept quantized: in the GGUF
/// file's own types (`Keep`), or quantized on load.
pub struct Quantizing<'a> {
    pub inner: &'a dyn TensorSource,
    pub quantize: Quantize,
}

impl TensorSource for Quantizing<'_> {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        self.inner.get(name)
    }

    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.shape(name)
    }

    fn device(&self) -> &Device {
        self.inner.device()
    }

    fn dtype(&self) -> DType {
        self.inner.dtype()
    }

    fn get_blocks(&self, name: &str) -> candle_core::Result<Option<QTensor>> {
        self.inner.get_blocks(name)
    }

    fn get_frozen(&self, name: &str) -> candle_core::Result<FrozenWeight> {
        match self.quantize {
            Quantize::Keep => match self.inner.get_blocks(name)? {
                Some(blocks) => Ok(FrozenWeight::quantized(blocks, self.dtype(), self.device())),
                None => self.inner.get_frozen(name),
            },
            Quantize::To(ty) => base_weight::quantize(&self.inner.get(name)?, ty),
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
        let shards = shard_names(&index).map_err(|message| ModelError::File {
            path: index.display().to_string(),
            message,
        })?;
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

/// The shard files a `model.safetensors.index.json` names, sorted, once each.
pub fn shard_names(index: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(index).map_err(|e| format!("{}: {e}", index.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| format!("{}: no `weight_map`", index.display()))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    shards.sort();
    shards.dedup();
    if let Some(bad) = shards
        .iter()
        .find(|s| s.contains("..") || s.starts_with('/'))
    {
        return Err(format!(
            "{}: shard name `{bad}` leaves the folder",
            index.display()
        ));
    }
    Ok(shards)
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

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.files.get(name).ok().map(|view| view.shape().to_vec())
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

impl TensorSource for RandomWeights {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        let (shape, _) = self
            .config
            .tensor_shape(name)
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
        let layer_in_range = match name.strip_prefix("model.layers.") {
            Some(rest) => rest
                .split_once('.')
                .and_then(|(i, _)| i.parse::<usize>().ok())
                .is_some_and(|i| i < self.config.num_layers),
            None => true,
        };
        self.config.tensor_shape(name).is_some() && !tied_head && layer_in_range
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.contains(name)
            .then(|| self.config.tensor_shape(name).map(|(shape, _)| shape))?
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

#[cfg(test)]
mod tests {
    use super::shard_names;

    #[test]
    fn shard_names_refuse_paths_out_of_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index.json");
        std::fs::write(&index, r#"{"weight_map":{"a":"../../etc/passwd"}}"#).unwrap();
        assert!(
            shard_names(&index)
                .unwrap_err()
                .contains("leaves the folder")
        );
    }
}
