//! Attention of one new position over the cached keys and values, on plain
//! slices: what a decoding step needs, without the tensor ops of the
//! general path (a grouped reshape, two matrix products, a scale, a cast,
//! a softmax), each of which allocates and, from a thread outside the
//! pool, hands work to the threads.

use candle_core::{DType, Device, Result, Storage, Tensor, WithDType};
use half::bf16;
use rayon::prelude::*;

/// Multiply-adds (query heads x keys x head width) below which one thread
/// does them all.
const PARALLEL_FROM: usize = 1 << 16;

/// `softmax(q kᵀ / √d) v` for one query position `q` `[1, h, 1, d]` over
/// all of `k`, `v` `[1, kv, T, d]` (views of the cache; each key head
/// serves `h / kv` query heads), summed in f32 and rounded once to q's
/// dtype. `None` when the tensors are not CPU f32 or bf16 of that shape:
/// the general path applies.
pub fn attend_one(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Option<Tensor>> {
    let (b, heads, t, d) = q.dims4()?;
    let (kb, kv_heads, _, kd) = k.dims4()?;
    let fits = b == 1
        && t == 1
        && kb == 1
        && kd == d
        && kv_heads > 0
        && heads.is_multiple_of(kv_heads)
        && k.dims() == v.dims()
        && k.dtype() == v.dtype()
        && matches!(k.device(), Device::Cpu);
    if !fits {
        return Ok(None);
    }
    let query = q.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let out = match k.dtype() {
        DType::F32 => over_cache::<f32>(&query, k, v, heads)?,
        DType::BF16 => over_cache::<bf16>(&query, k, v, heads)?,
        _ => return Ok(None),
    };
    let out = Tensor::from_vec(out, (1, heads, 1, d), q.device())?;
    Ok(Some(out.to_dtype(q.dtype())?))
}

/// [`attend_one`] on the values of `k` and `v`, which hold `W`.
fn over_cache<W: WithDType + Into<f32>>(
    query: &[f32],
    k: &Tensor,
    v: &Tensor,
    heads: usize,
) -> Result<Vec<f32>> {
    let (_, kv_heads, keys, d) = k.dims4()?;
    let (k_storage, k_layout) = k.storage_and_layout();
    let (v_storage, v_layout) = v.storage_and_layout();
    let (Storage::Cpu(k_cpu), Storage::Cpu(v_cpu)) = (&*k_storage, &*v_storage) else {
        candle_core::bail!("attention of one position needs CPU tensors");
    };
    let k_heads = per_head(k_cpu.as_slice::<W>()?, k_layout, kv_heads, keys, d)?;
    let v_heads = per_head(v_cpu.as_slice::<W>()?, v_layout, kv_heads, keys, d)?;
    let group = heads / kv_heads;
    let head = |h: usize| {
        let q = &query[h * d..(h + 1) * d];
        one_head(q, k_heads[h / group], v_heads[h / group], d)
    };
    let outputs: Vec<Vec<f32>> = if heads * keys * d >= PARALLEL_FROM {
        (0..heads).into_par_iter().map(head).collect()
    } else {
        (0..heads).map(head).collect()
    };
    Ok(outputs.concat())
}

/// The `keys` rows of `d` values of each of the `kv_heads` heads of a
/// cache view with `layout`.
fn per_head<'a, W>(
    values: &'a [W],
    layout: &candle_core::Layout,
    kv_heads: usize,
    keys: usize,
    d: usize,
) -> Result<Vec<&'a [W]>> {
    let stride = layout.stride();
    if stride[3] != 1 || stride[2] != d {
        candle_core::bail!("cache rows are not contiguous: strides {stride:?}");
    }
    let start = layout.start_offset();
    Ok((0..kv_heads)
        .map(|g| &values[start + g * stride[1]..][..keys * d])
        .collect())
}

/// One query head `q` (`d` values) over `keys` and `values` (rows of `d`).
fn one_head<W: Copy + Into<f32>>(q: &[f32], keys: &[W], values: &[W], d: usize) -> Vec<f32> {
    let scale = 1.0 / (d as f32).sqrt();
    let mut scores: Vec<f32> = keys
        .chunks_exact(d)
        .map(|key| scale * q.iter().zip(key).map(|(&a, &b)| a * b.into()).sum::<f32>())
        .collect();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0f32;
    for s in &mut scores {
        *s = (*s - max).exp();
        total += *s;
    }
    let mut out = vec![0f32; d];
    for (p, value) in scores.iter().zip(values.chunks_exact(d)) {
        for (o, &x) in out.iter_mut().zip(value) {
            *o += p * x.into();
        }
    }
    out.iter_mut().for_each(|o| *o /= total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attend::tests::random;
    use crate::model::attend::{Visibility, attend};

    #[test]
    fn matches_the_general_path_over_a_cache_view() {
        // 6 query heads over 2 key heads; the keys are the first 37 of a
        // 64-position buffer, as the cache hands them out; enough work for
        // the parallel path at 700 keys.
        for keys in [37, 700] {
            let buffer_k = random((1, 2, keys + 27, 16), 1);
            let buffer_v = random((1, 2, keys + 27, 16), 2);
            let (k, v) = (
                buffer_k.narrow(2, 0, keys).unwrap(),
                buffer_v.narrow(2, 0, keys).unwrap(),
            );
            let q = random((1, 6, 1, 16), 3);
            let general = attend(&q, &k, &v, &Visibility::new(keys - 1, None), false).unwrap();
            for dtype in [DType::F32, DType::BF16] {
                let [q, k, v] = [&q, &k, &v].map(|t| t.to_dtype(dtype).unwrap());
                let ours = attend_one(&q, &k, &v).unwrap().expect("CPU f32/bf16 fits");
                assert_eq!(ours.dims(), &[1, 6, 1, 16]);
                let ours = ours.to_dtype(DType::F32).unwrap();
                let diff = crate::model::max_abs_diff(&ours, &general).unwrap();
                let bound = if dtype == DType::F32 { 1e-5 } else { 2e-2 };
                assert!(diff < bound, "{keys} keys, {dtype:?}: {diff}");
            }
        }
    }

    #[test]
    fn shapes_it_does_not_cover_are_left_to_the_general_path() {
        let two_queries = random((1, 6, 2, 16), 3);
        let k = random((1, 2, 5, 16), 1);
        assert!(attend_one(&two_queries, &k, &k).unwrap().is_none());
        let f16 = k.to_dtype(DType::F16).unwrap();
        let q = random((1, 6, 1, 16), 3).to_dtype(DType::F16).unwrap();
        assert!(attend_one(&q, &f16, &f16).unwrap().is_none());
    }
}
