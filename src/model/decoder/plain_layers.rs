//! A decoding step through every layer on plain f32 rows, from the
//! embedding to the final norm.
//!
//! Between its products a layer's rows went through candle as tensors: two
//! norms and two residual additions, each taking 2.7-3.6 µs on a row of 576
//! bf16 values (allocation and dispatch around a few hundred operations),
//! and a conversion to f32 and back around the attention and the MLP. Here
//! the hidden state stays one `Vec<f32>` of values of the model's dtype,
//! and each value is rounded where candle rounds it, so the step gives the
//! same bits.

use super::rows::{self, Float};
use super::{Cache, Layer, Mode, RmsNorm, Rows};
use crate::model::gemv;
use crate::profile::{Label, scope};
use candle_core::{DType, Device, Result, Tensor};
use half::bf16;

/// The step's rows `x` (`[1, rows, hidden]`) through `layers`, before the
/// final norm, or `None` where a layer does not take the plain path
/// (checked before any cache is touched).
pub(super) fn through(
    layers: &[Layer],
    x: &Tensor,
    rows: &Rows,
    caches: &mut [&mut Cache],
    mode: Mode,
) -> Result<Option<Tensor>> {
    let (n, dtype) = (caches.len(), x.dtype());
    let takes = |layer: &Layer| {
        rows::applies(&layer.attn, n, dtype, mode) && rows::mlp_applies(&layer.mlp, n, dtype, mode)
    };
    let Some(tables) = &rows.tables else {
        return Ok(None);
    };
    if !matches!(x.device(), Device::Cpu) || !layers.iter().all(takes) {
        return Ok(None);
    }
    let values = gemv::rows_of(x)?;
    let out = match dtype {
        DType::F32 => through_in::<f32>(layers, values, tables, caches, mode)?,
        DType::BF16 => through_in::<bf16>(layers, values, tables, caches, mode)?,
        _ => return Ok(None),
    };
    Ok(Some(
        Tensor::from_vec(out, x.shape(), x.device())?.to_dtype(dtype)?,
    ))
}

/// [`through`] on the rows `x`, values of `T`.
fn through_in<T: Float>(
    layers: &[Layer],
    mut x: Vec<f32>,
    tables: &rows::Tables,
    caches: &mut [&mut Cache],
    mode: Mode,
) -> Result<Vec<f32>> {
    for (i, layer) in layers.iter().enumerate() {
        let h = normed::<T>(&x, &layer.input_norm)?;
        let attended = {
            let _label = scope(Label::Attention);
            rows::attention_values::<T>(&layer.attn, &h, tables, caches, i, mode)?
        };
        add_rounded::<T>(&mut x, &attended);
        let h = normed::<T>(&x, &layer.post_norm)?;
        let mlp = {
            let _label = scope(Label::Mlp);
            rows::mlp_values::<T>(&layer.mlp, &h, mode)?
        };
        add_rounded::<T>(&mut x, &mlp);
    }
    Ok(x)
}

/// `x`'s rows through `norm` as candle's `rms_norm` computes it for `T`: the
/// sum of squares in f32 in order, its root rounded to `T`, then each value
/// divided by it and multiplied by the weight, each rounded to `T`.
fn normed<T: Float>(x: &[f32], norm: &RmsNorm) -> Result<Vec<f32>> {
    let _label = scope(Label::Norm);
    let weight = norm.values()?;
    let (width, eps) = (weight.len(), norm.eps as f32);
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(width) {
        let squares = row.iter().map(|&v| v * v).sum::<f32>();
        let root = T::round_in_f32((squares / width as f32 + eps).sqrt());
        let scaled = |(&v, &w): (&f32, &f32)| T::round_in_f32(T::round_in_f32(v / root) * w);
        out.extend(row.iter().zip(weight).map(scaled));
    }
    Ok(out)
}

/// The residual addition: `x += y`, `y` rounded to `T` first (as the
/// projection's output tensor is), the sum rounded to `T`.
fn add_rounded<T: Float>(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x = T::round_in_f32(*x + T::round_in_f32(y));
    }
}
