//! Writing f32 tensors to a safetensors file with PEFT/transformers'
//! `{"format": "pt"}` metadata.

use std::collections::HashMap;
use std::path::Path;

/// A named f32 tensor: name, shape, row-major values.
pub type NamedF32 = (String, Vec<usize>, Vec<f32>);

pub fn write_f32(path: &Path, tensors: &[NamedF32]) -> Result<(), String> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let serialized = safetensors::serialize(views, metadata).map_err(|e| e.to_string())?;
    crate::data::store::atomic_write(path, |w| w.write_all(&serialized)).map_err(|e| e.to_string())
}

/// A candle tensor as a [`NamedF32`].
pub fn named(name: String, t: &candle_core::Tensor) -> candle_core::Result<NamedF32> {
    let values = t
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok((name, t.dims().to_vec(), values))
}
