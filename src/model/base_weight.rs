//! A frozen projection's weight `[out, in]`: a tensor in the working dtype,
//! or blocks of a GGUF quantized type kept as they are (the QLoRA idea: the
//! base stays at 4 or 8 bits, the adapter trains in f32).
//!
//! A quantized weight is widened to a dense tensor only while one product
//! needs it, one projection at a time, and dropped after: never the whole
//! model at once. Decoding (a few rows) multiplies the blocks directly.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use std::sync::Arc;

/// Up to this many rows, a quantized product runs on the blocks (candle's
/// quantized dot products, memory-bound like decoding); beyond it, widening
/// the weight once and running the dense matmul is faster (at 1,024 rows
/// the blocks were 40x slower).
const BLOCK_PRODUCT_MAX_ROWS: usize = 8;

#[derive(Clone)]
pub enum FrozenWeight {
    Dense(Tensor),
    Quantized(QuantizedWeight),
}

#[derive(Clone)]
pub struct QuantizedWeight {
    blocks: Arc<QTensor>,
    /// The working dtype and device a widened copy takes.
    dtype: DType,
    device: Device,
}

impl From<Tensor> for FrozenWeight {
    fn from(t: Tensor) -> Self {
        FrozenWeight::Dense(t)
    }
}

impl FrozenWeight {
    /// `blocks` (`[out, in]`) kept quantized; widened copies take `dtype`
    /// on `device`.
    pub fn quantized(blocks: QTensor, dtype: DType, device: &Device) -> Self {
        FrozenWeight::Quantized(QuantizedWeight {
            blocks: Arc::new(blocks),
            dtype,
            device: device.clone(),
        })
    }

    /// `(out, in)`.
    pub fn dims2(&self) -> (usize, usize) {
        let dims = match self {
            FrozenWeight::Dense(t) => t.dims(),
            FrozenWeight::Quantized(q) => q.blocks.shape().dims(),
        };
        (dims[0], dims[1])
    }

    /// The weight as a dense tensor in the working dtype (for a quantized
    /// one, a fresh widened copy: keep it only as long as it is needed).
    pub fn dense(&self) -> Result<Tensor> {
        match self {
            FrozenWeight::Dense(t) => Ok(t.clone()),
            FrozenWeight::Quantized(q) => q.widen(),
        }
    }

    /// The GGUF type the weight is kept in, when it is quantized.
    pub fn ggml_type(&self) -> Option<GgmlDType> {
        match self {
            FrozenWeight::Dense(_) => None,
            FrozenWeight::Quantized(q) => Some(q.blocks.dtype()),
        }
    }

    /// Bytes the weight holds.
    pub fn byte_size(&self) -> usize {
        match self {
            FrozenWeight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            FrozenWeight::Quantized(q) => q.blocks.storage_size_in_bytes(),
        }
    }

    pub fn device(&self) -> &Device {
        match self {
            FrozenWeight::Dense(t) => t.device(),
            FrozenWeight::Quantized(q) => &q.device,
        }
    }
}

impl QuantizedWeight {
    fn widen(&self) -> Result<Tensor> {
        let _label = crate::profile::scope(crate::profile::Label::Dequantize);
        self.blocks.dequantize(&self.device)?.to_dtype(self.dtype)
    }

    /// Whether `rows` rows are multiplied on the blocks themselves.
    pub fn takes_rows(&self, rows: usize) -> bool {
        rows <= BLOCK_PRODUCT_MAX_ROWS && matches!(self.device, Device::Cpu)
    }

    /// `x @ W.T` on the blocks, `x` `[..., in]`; the result has x's dtype.
    pub fn product_t(&self, x: &Tensor) -> Result<Tensor> {
        let product = QMatMul::from_arc(self.blocks.clone())?;
        product
            .forward(&x.to_dtype(DType::F32)?)?
            .to_dtype(x.dtype())
    }

    /// `x @ W.T` for any number of rows: on the blocks for a few, through
    /// a widened copy otherwise.
    pub fn matmul_t(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
        if self.takes_rows(rows) {
            self.product_t(x)
        } else {
            super::lora::frozen_matmul(x, &self.widen()?, false)
        }
    }
}

/// What to do with a base model's projection weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantize {
    /// A GGUF base's projections stay in the file's types.
    Keep,
    /// Quantize every projection to this type on load (a matrix whose rows
    /// do not split into its blocks falls back, see [`type_for_rows`]).
    To(GgmlDType),
}

/// The quantized types a base can be kept in or quantized to, by the names
/// llama.cpp gives them.
const TYPES: [(&str, GgmlDType); 8] = [
    ("q4_0", GgmlDType::Q4_0),
    ("q4_1", GgmlDType::Q4_1),
    ("q5_0", GgmlDType::Q5_0),
    ("q5_1", GgmlDType::Q5_1),
    ("q8_0", GgmlDType::Q8_0),
    ("q4_k", GgmlDType::Q4K),
    ("q5_k", GgmlDType::Q5K),
    ("q6_k", GgmlDType::Q6K),
];

impl std::str::FromStr for Quantize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if lower == "keep" {
            return Ok(Quantize::Keep);
        }
        TYPES
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, t)| Quantize::To(*t))
            .ok_or_else(|| {
                let names: Vec<&str> = TYPES.iter().map(|(n, _)| *n).collect();
                format!(
                    "quantize `{s}`: expected keep (a GGUF base's own types) or one of {}",
                    names.join(", ")
                )
            })
    }
}

/// llama.cpp's lower-case name of a GGUF tensor type (`q4_k`, `f16`).
pub fn type_name(t: GgmlDType) -> String {
    TYPES
        .iter()
        .find(|(_, ty)| *ty == t)
        .map(|(name, _)| name.to_string())
        .unwrap_or_else(|| format!("{t:?}").to_ascii_lowercase())
}

/// The type a matrix whose rows hold `row` values takes when `wanted` is
/// asked for: `wanted` when the rows split into its blocks, else Q8_0 when
/// they split into its 32-value blocks (as llama.cpp falls back for
/// k-quants), else none (the matrix stays dense).
pub fn type_for_rows(wanted: GgmlDType, row: usize) -> Option<GgmlDType> {
    let fits = |t: GgmlDType| row.is_multiple_of(t.block_size());
    if fits(wanted) {
        Some(wanted)
    } else if fits(GgmlDType::Q8_0) {
        Some(GgmlDType::Q8_0)
    } else {
        None
    }
}

/// `weight` `[out, in]` quantized to `wanted` (or its fallback), or kept
/// dense when its rows fit no block.
pub fn quantize(weight: &Tensor, wanted: GgmlDType) -> Result<FrozenWeight> {
    let (_, row) = weight.dims2()?;
    let Some(ty) = type_for_rows(wanted, row) else {
        return Ok(FrozenWeight::Dense(weight.clone()));
    };
    let f32_weight = weight.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
    let blocks = QTensor::quantize(&f32_weight, ty)?;
    Ok(FrozenWeight::quantized(
        blocks,
        weight.dtype(),
        weight.device(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values spread like N(0,1) draws but fixed, so a bound on the
    /// quantization error is checked against the same numbers every run.
    fn fixed_values(shape: &[usize], seed: f32) -> Tensor {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|i| 1.7 * (i as f32 * 12.9898 + seed).sin())
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn weight(out: usize, inp: usize) -> Tensor {
        fixed_values(&[out, inp], 0.0)
    }

    #[test]
    fn names_parse_and_unknown_ones_say_what_is_accepted() {
        assert_eq!("keep".parse::<Quantize>(), Ok(Quantize::Keep));
        assert_eq!("Q4_K".parse::<Quantize>(), Ok(Quantize::To(GgmlDType::Q4K)));
        let err = "q3_k".parse::<Quantize>().unwrap_err();
        assert!(err.contains("q3_k") && err.contains("q8_0"), "{err}");
        assert_eq!(type_name(GgmlDType::Q4_1), "q4_1");
    }

    #[test]
    fn rows_that_do_not_split_fall_back_to_q8_0_or_stay_dense() {
        assert_eq!(type_for_rows(GgmlDType::Q4K, 512), Some(GgmlDType::Q4K));
        assert_eq!(type_for_rows(GgmlDType::Q4K, 576), Some(GgmlDType::Q8_0));
        assert_eq!(type_for_rows(GgmlDType::Q4K, 40), None);
        let kept = quantize(&weight(4, 40), GgmlDType::Q4K).unwrap();
        assert!(kept.ggml_type().is_none());
    }

    #[test]
    fn block_and_widened_products_agree_with_the_dense_weight() {
        let w = weight(48, 64);
        let q = match quantize(&w, GgmlDType::Q8_0).unwrap() {
            FrozenWeight::Quantized(q) => q,
            FrozenWeight::Dense(_) => panic!("64-value rows split into Q8_0 blocks"),
        };
        assert!(q.blocks.storage_size_in_bytes() < 48 * 64 * 4 / 3);
        for rows in [1, 3, 40] {
            let x = fixed_values(&[1, rows, 64], rows as f32);
            let exact = x.broadcast_matmul(&w.t().unwrap()).unwrap();
            let ours = q.matmul_t(&x).unwrap();
            assert_eq!(ours.dims(), exact.dims());
            // Q8_0 keeps ~2 decimal digits per weight; a 64-term sum of
            // N(0,1) products is ~8 in size.
            let diff = crate::model::max_abs_diff(&ours, &exact).unwrap();
            assert!(diff < 0.25, "{rows} rows: differs by {diff}");
        }
    }
}
