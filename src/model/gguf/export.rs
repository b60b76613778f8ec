//! `tunebench export`: a GGUF base with its adapter merged, written back as
//! a GGUF file llama.cpp and Ollama load, and an Ollama `Modelfile` beside
//! it. The source file's metadata (architecture, tokenizer, chat template)
//! is carried over as it is; every matrix is written in the chosen type,
//! the merged projections from their f32 sums, the rest requantized from
//! the source (or copied when already in that type).

use super::GgufFile;
use super::config::permutes_qk;
use super::q4_k_m;
use super::tensors::gguf_name;
use crate::model::ModelError;
use crate::model::base_weight::type_for_rows;
use crate::model::hub::ModelSource;
use crate::model::loaded::Model;
use crate::model::merge::{MergeError, merged_projections};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Source metadata not copied: the file type is the export's, and candle's
/// writer aligns tensor data to its default of 32 bytes.
const REWRITTEN_KEYS: [&str; 2] = ["general.file_type", "general.alignment"];

/// The tensor types `export --quant` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportType {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4K,
    /// llama.cpp's mixed recipe (see `q4_k_m.rs`).
    Q4KM,
    Q6K,
}

impl std::str::FromStr for ExportType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" => ExportType::F32,
            "f16" => ExportType::F16,
            "q8_0" => ExportType::Q8_0,
            "q4_0" => ExportType::Q4_0,
            "q4_k" => ExportType::Q4K,
            "q4_k_m" => ExportType::Q4KM,
            "q6_k" => ExportType::Q6K,
            other => {
                return Err(format!(
                    "unknown quantization {other:?}: use f32, f16, q8_0, q4_0, q4_k, q4_k_m or q6_k"
                ));
            }
        })
    }
}

impl ExportType {
    fn ggml(self) -> GgmlDType {
        match self {
            ExportType::F32 => GgmlDType::F32,
            ExportType::F16 => GgmlDType::F16,
            ExportType::Q8_0 => GgmlDType::Q8_0,
            ExportType::Q4_0 => GgmlDType::Q4_0,
            ExportType::Q4K | ExportType::Q4KM => GgmlDType::Q4K,
            ExportType::Q6K => GgmlDType::Q6K,
        }
    }

    /// llama.cpp's `general.file_type` (its `llama_ftype`) for a file mostly
    /// of this type.
    fn file_type(self) -> u32 {
        match self {
            ExportType::F32 => 0,
            ExportType::F16 => 1,
            ExportType::Q4_0 => 2,
            ExportType::Q8_0 => 7,
            ExportType::Q4K => 14,
            ExportType::Q4KM => 15,
            ExportType::Q6K => 18,
        }
    }

    /// The type a tensor of `dims` is written in: matrices in this type when
    /// their rows split into whole blocks, else Q8_0 when they split into its
    /// 32-value blocks (as llama.cpp falls back for k-quants), else f32;
    /// vectors (norms, biases) in f32.
    fn for_tensor(self, dims: &[usize]) -> GgmlDType {
        let row = dims.last().copied().unwrap_or(0);
        if dims.len() < 2 {
            return GgmlDType::F32;
        }
        match self {
            ExportType::F32 | ExportType::F16 => self.ggml(),
            _ => type_for_rows(self.ggml(), row).unwrap_or(GgmlDType::F32),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "{0}: export writes GGUF from a GGUF base (a file or ollama: name); for a \
         safetensors model run `tunebench merge` and llama.cpp's convert_hf_to_gguf.py"
    )]
    NotGguf(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub tensors: usize,
    /// Projections with the adapter merged in.
    pub merged: usize,
    /// Matrices that could not take the requested type (see `for_tensor`).
    pub fallbacks: usize,
    pub bytes: u64,
    pub modelfile: PathBuf,
}

/// Writes `model` (a GGUF base, its adapter merged when one is loaded) to
/// `out` in `quant`, and `Modelfile` beside it.
pub fn export(model: &Model, quant: ExportType, out: &Path) -> Result<Exported, ExportError> {
    let ModelSource::Gguf(source) = &model.source else {
        return Err(ExportError::NotGguf(model.name.clone()));
    };
    let file = GgufFile::open(source)?;
    let config = file.model_config()?;
    let permuted = permutes_qk(file.architecture()?);
    let merged = merged_by_gguf_name(model, permuted, config.num_heads, config.num_kv_heads)?;
    let fail = |e: candle_core::Error| file.error(e);

    let mut infos: Vec<_> = file.content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, info)| info.offset);
    let mut reader = std::fs::File::open(source).map_err(|e| file.error(e))?;
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(infos.len());
    let mut fallbacks = 0;
    let has_output = file.content.tensor_infos.contains_key("output.weight");
    for (name, info) in infos {
        let dims = info.shape.dims().to_vec();
        let (wanted, fell_back) = match quant {
            ExportType::Q4KM => q4_k_m::type_for(name, &dims, config.num_layers, has_output),
            _ => {
                let t = quant.for_tensor(&dims);
                (t, dims.len() >= 2 && t != quant.ggml())
            }
        };
        fallbacks += usize::from(fell_back);
        let tensor = match merged.get(name) {
            Some(weight) => QTensor::quantize(weight, wanted).map_err(fail)?,
            None => {
                let stored = info
                    .read(&mut reader, file.content.tensor_data_offset, &Device::Cpu)
                    .map_err(fail)?;
                if stored.dtype() == wanted {
                    stored
                } else {
                    QTensor::quantize(&stored.dequantize(&Device::Cpu).map_err(fail)?, wanted)
                        .map_err(fail)?
                }
            }
        };
        tensors.push((name.clone(), tensor));
    }

    let mut metadata: Vec<(&str, Value)> = file
        .content
        .metadata
        .iter()
        .filter(|(key, _)| !REWRITTEN_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    metadata.sort_by(|a, b| a.0.cmp(b.0));
    metadata.push(("general.file_type", Value::U32(quant.file_type())));
    let metadata_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();

    let out_error = |path: &Path, e: &dyn std::fmt::Display| ExportError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    // candle's writer seeks, so the file is written beside `out` and
    // renamed over it once complete.
    let partial = out.with_extension("gguf.partial");
    let written = std::fs::File::create(&partial)
        .map_err(candle_core::Error::from)
        .and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            gguf_file::write(&mut w, &metadata_refs, &tensor_refs)?;
            let f = w
                .into_inner()
                .map_err(|e| candle_core::Error::from(e.into_error()))?;
            f.sync_all()?;
            Ok(())
        });
    if let Err(e) = written
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&partial, out).map_err(|e| e.to_string()))
    {
        let _ = std::fs::remove_file(&partial);
        return Err(out_error(out, &e));
    }
    let modelfile = out.with_file_name("Modelfile");
    let text = super::modelfile::text(model, &file, out)?;
    crate::data::store::atomic_write(&modelfile, |w| w.write_all(text.as_bytes()))
        .map_err(|e| out_error(&modelfile, &e))?;
    Ok(Exported {
        tensors: tensors.len(),
        merged: merged.len(),
        fallbacks,
        bytes: std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
        modelfile,
    })
}

/// The adapter merged into its projections, f32, under llama.cpp's tensor
/// names and with its query and key rows in llama.cpp's order.
fn merged_by_gguf_name(
    model: &Model,
    permuted: bool,
    heads: usize,
    kv_heads: usize,
) -> Result<HashMap<String, Tensor>, ExportError> {
    if model.adapter.is_none() {
        return Ok(HashMap::new());
    }
    let mut out = HashMap::new();
    for (name, weight) in merged_projections(model)? {
        let Some(gguf) = gguf_name(&name) else {
            continue;
        };
        let weight = match (permuted, name.contains(".self_attn.q_proj.")) {
            (true, true) => permute(&weight, heads),
            _ if permuted && name.contains(".self_attn.k_proj.") => permute(&weight, kv_heads),
            _ => Ok(weight),
        }
        .map_err(MergeError::from)?;
        out.insert(gguf, weight);
    }
    Ok(out)
}

/// llama.cpp's order of a Llama query or key matrix's rows: each head's two
/// halves interleaved (the inverse of `tensors::unpermute`).
pub fn permute(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let mut split = vec![heads, 2, dims[0] / heads / 2];
    split.extend_from_slice(&dims[1..]);
    t.reshape(split)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_undoes_the_readers_unpermute() {
        let t = Tensor::arange(0f32, 48.0, &Device::Cpu)
            .unwrap()
            .reshape((12, 4))
            .unwrap();
        let back = super::super::tensors::unpermute(&permute(&t, 3).unwrap(), 3).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        assert_ne!(
            permute(&t, 3).unwrap().to_vec2::<f32>().unwrap(),
            t.to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn k_quants_fall_back_where_rows_do_not_split_into_their_blocks() {
        // Rows of 576 values (SmolLM2's width) are not whole 256-value blocks.
        assert_eq!(ExportType::Q4K.for_tensor(&[1536, 576]), GgmlDType::Q8_0);
        assert_eq!(ExportType::Q4K.for_tensor(&[576, 1536]), GgmlDType::Q4K);
        assert_eq!(ExportType::F16.for_tensor(&[30, 576]), GgmlDType::F16);
        assert_eq!(ExportType::Q8_0.for_tensor(&[576]), GgmlDType::F32);
        assert_eq!(ExportType::Q4_0.for_tensor(&[8, 33]), GgmlDType::F32);
        assert!("q5_k".parse::<ExportType>().is_err());
    }
}
