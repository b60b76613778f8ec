//! A prompt's projections split into heads and rotated in one pass on the
//! CPU. The tensor form reshaped, transposed, copied and then rotated with
//! candle's rope, which for bf16 rounds through scalar conversions at every
//! multiply: on SmolLM2 bf16 that was 10 ms of an 80 ms prefill of 110
//! tokens. The values here are rounded where candle's rope rounds them
//! (each product, then the difference or sum, in the model's dtype), so
//! both forms give the same bits.

use super::rows::Float;
use candle_core::{DType, Device, Result, Tensor};
use half::bf16;

/// The rows `y` `[b, t, n * d]` as heads `[b, n, t, d]`, each row of a head
/// rotated by its position's `cos` and `sin` (`[t, d / 2]`) when `tables`
/// are given. `None` where this path does not apply (not the CPU, another
/// dtype, tables per batch row or of another dtype).
pub(super) fn split(
    y: &Tensor,
    (n, d): (usize, usize),
    tables: Option<(&Tensor, &Tensor)>,
) -> Result<Option<Tensor>> {
    let (b, t, width) = y.dims3()?;
    let half = d / 2;
    let tables_fit = tables.is_none_or(|(cos, sin)| {
        cos.dims() == [t, half] && sin.dims() == [t, half] && cos.dtype() == y.dtype()
    });
    if !matches!(y.device(), Device::Cpu) || width != n * d || d % 2 != 0 || !tables_fit {
        return Ok(None);
    }
    let tables = match tables {
        Some((cos, sin)) => Some((values_f32(cos)?, values_f32(sin)?)),
        None => None,
    };
    let shape = Shape { b, t, n, d };
    let out = match y.dtype() {
        DType::F32 => heads::<f32>(&y.flatten_all()?.to_vec1()?, shape, tables.as_ref()),
        DType::BF16 => heads::<bf16>(&y.flatten_all()?.to_vec1()?, shape, tables.as_ref()),
        _ => return Ok(None),
    }?;
    Ok(Some(out))
}

/// A tensor's values in f32.
fn values_f32(x: &Tensor) -> Result<Vec<f32>> {
    x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

#[derive(Clone, Copy)]
struct Shape {
    b: usize,
    t: usize,
    n: usize,
    d: usize,
}

/// [`split`] of `values` in `T`: a task per (batch row, head).
fn heads<T: Float>(
    values: &[T],
    Shape { b, t, n, d }: Shape,
    tables: Option<&(Vec<f32>, Vec<f32>)>,
) -> Result<Tensor> {
    let mut out = vec![T::of_rounded(0.0); b * n * t * d];
    let tasks: Vec<(usize, &mut [T])> = out.chunks_mut(t * d).enumerate().collect();
    let task = |(head_of_row, dst): (usize, &mut [T])| {
        let (row, head) = (head_of_row / n, head_of_row % n);
        for (position, dst) in dst.chunks_exact_mut(d).enumerate() {
            let from = ((row * t + position) * n + head) * d;
            let src = &values[from..from + d];
            match tables {
                Some((cos, sin)) => {
                    let at = position * d / 2..(position + 1) * d / 2;
                    rotate::<T>(src, &cos[at.clone()], &sin[at], dst)
                }
                None => dst.copy_from_slice(src),
            }
        }
    };
    crate::pool::crew::for_each_item(tasks, task);
    Tensor::from_vec(out, (b, n, t, d), &Device::Cpu)
}

crate::model::wide::widest! {
    /// One head's row rotated: `(x1 c - x2 s, x1 s + x2 c)` for its halves
    /// `x1`, `x2`, each product and each sum rounded to `T`.
    pub(super) fn rotate<T: Float>(src: &[T], cos: &[f32], sin: &[f32], dst: &mut [T]) {
        let half = cos.len();
        let (first, second) = src.split_at(half);
        let (out_first, out_second) = dst.split_at_mut(half);
        for j in 0..half {
            let (x1, x2) = (first[j].widen(), second[j].widen());
            let (c, s) = (cos[j], sin[j]);
            let (x1c, x2s) = (T::round_in_f32(x1 * c), T::round_in_f32(x2 * s));
            let (x1s, x2c) = (T::round_in_f32(x1 * s), T::round_in_f32(x2 * c));
            out_first[j] = T::of_rounded(T::round_in_f32(x1c - x2s));
            out_second[j] = T::of_rounded(T::round_in_f32(x1s + x2c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_candles_split_and_rope_bit_for_bit() {
        // 2 rows of 5 positions, 3 heads of 8; tables from real angles.
        let (b, t, n, d) = (2, 5, 3, 8);
        let y = Tensor::randn(0f32, 2.0, (b, t, n * d), &Device::Cpu).unwrap();
        let angles: Vec<f32> = (0..t * d / 2).map(|i| i as f32 * 0.37).collect();
        let angles = Tensor::from_vec(angles, (t, d / 2), &Device::Cpu).unwrap();
        for dtype in [DType::F32, DType::BF16] {
            let y = y.to_dtype(dtype).unwrap();
            let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
            let (cos, sin) = (cos.to_dtype(dtype).unwrap(), sin.to_dtype(dtype).unwrap());
            let split_heads = y.reshape((b, t, n, d)).unwrap().transpose(1, 2).unwrap();
            let split_heads = split_heads.contiguous().unwrap();
            let want = candle_nn::rotary_emb::rope(&split_heads, &cos, &sin).unwrap();
            let got = split(&y, (n, d), Some((&cos, &sin))).unwrap().unwrap();
            let plain = split(&y, (n, d), None).unwrap().unwrap();
            let bits = |x: &Tensor| {
                let x = x.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
                let values = x.to_vec1::<f32>().unwrap();
                values.into_iter().map(f32::to_bits).collect::<Vec<_>>()
            };
            assert_eq!(bits(&got), bits(&want), "{dtype:?} rotated");
            assert_eq!(bits(&plain), bits(&split_heads), "{dtype:?} split");
        }
    }

    #[test]
    fn tables_of_another_shape_are_left_to_the_tensor_form() {
        let y = Tensor::zeros((1, 4, 16), DType::F32, &Device::Cpu).unwrap();
        let per_row = Tensor::zeros((1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let tables = Some((&per_row, &per_row));
        assert!(split(&y, (2, 8), tables).unwrap().is_none());
    }
}
