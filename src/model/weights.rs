//! Reading a model's tensors from `*.safetensors` (one file, or shards listed
//! in `model.safetensors.index.json`), memory-mapped.

use super::ModelError;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

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

    pub fn contains(&self, name: &str) -> bool {
        self.files.get(name).is_ok()
    }

    /// A tensor in the working dtype.
    pub fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        self.files.load(name, &self.device)?.to_dtype(self.dtype)
    }

    pub fn get_optional(&self, name: &str) -> candle_core::Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(name).map(Some)
        } else {
            Ok(None)
        }
    }
}
