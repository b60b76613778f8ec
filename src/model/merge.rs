//! `merge`: fold the adapter into the base weights (`W + scale * B A`) and
//! write a complete model directory that transformers loads as a plain model.

use super::gguf::GgufFile;
use super::hub::ModelSource;
use super::loaded::Model;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Files copied from the base model directory when present.
const COPIED: [&str; 8] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
];

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the model has no adapter loaded")]
    NoAdapter,
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> MergeError {
    MergeError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `out` with every base tensor in its original dtype, adapted
/// projections merged.
pub fn merge(model: &Model, out: &Path) -> Result<usize, MergeError> {
    if model.adapter.is_none() {
        return Err(MergeError::NoAdapter);
    }
    std::fs::create_dir_all(out).map_err(|e| file_err(out, e))?;
    let merged = merged_projections(model)?;
    let count = merged.len();
    match &model.source {
        ModelSource::Dir(dir) => write_from_dir(dir, &merged, out)?,
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path).map_err(|e| file_err(path, e))?;
            file.write_hf_dir(&model.tokenizer, &merged, out)
                .map_err(|e| file_err(out, e))?;
        }
    }
    Ok(count)
}

/// `W + scale * B A` of every adapted projection, f32, by tensor name
/// (`model.layers.0.self_attn.q_proj.weight`).
pub fn merged_projections(model: &Model) -> Result<HashMap<String, Tensor>, MergeError> {
    let mut merged = HashMap::new();
    for (path, _, linear) in model.decoder.projections() {
        if let Some(lora) = &linear.lora {
            let delta = (lora.b.as_tensor().matmul(lora.a.as_tensor())? * lora.scale)?;
            let weight = (linear.weight.dense()?.to_dtype(DType::F32)? + delta)?;
            merged.insert(format!("{path}.weight"), weight);
        }
    }
    Ok(merged)
}

/// The base directory's tensors in their own dtypes, `merged` in place of
/// the adapted ones, and its config and tokenizer files.
fn write_from_dir(
    dir: &Path,
    merged: &HashMap<String, Tensor>,
    out: &Path,
) -> Result<(), MergeError> {
    let files = super::weights::weight_files(dir).map_err(|e| file_err(dir, e))?;
    // SAFETY: read-only mapping of the base model's files, as when loading.
    let source = unsafe { MmapedSafetensors::multi(&files) }?;
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in source.tensors() {
        if let Some(weight) = merged.get(&name) {
            let bytes = to_bytes(weight, view.dtype())?;
            owned.push((name, view.dtype(), view.shape().to_vec(), bytes));
        } else {
            owned.push((
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            ));
        }
    }
    let views = owned
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| file_err(out, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let weights = out.join("model.safetensors");
    safetensors::serialize_to_file(views, metadata, &weights).map_err(|e| file_err(&weights, e))?;
    for name in COPIED {
        let from = dir.join(name);
        if from.exists() {
            std::fs::copy(&from, out.join(name)).map_err(|e| file_err(&from, e))?;
        }
    }
    Ok(())
}

/// A merged f32 tensor in the dtype of the tensor it replaces.
fn to_bytes(t: &Tensor, dtype: safetensors::Dtype) -> Result<Vec<u8>, MergeError> {
    let t = t.to_device(&Device::Cpu)?.flatten_all()?;
    Ok(match dtype {
        safetensors::Dtype::F32 => t
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        safetensors::Dtype::BF16 => t
            .to_dtype(DType::BF16)?
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        safetensors::Dtype::F16 => t
            .to_dtype(DType::F16)?
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => {
            return Err(MergeError::File {
                path: "model.safetensors".into(),
                message: format!("cannot merge into {other:?} weights"),
            });
        }
    })
}
