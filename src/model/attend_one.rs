//! Attention of one new position over the cached keys and values, on plain
//! slices: what a decoding step needs, without the tensor ops of the
//! general path (a grouped reshape, two matrix products, a scale, a cast,
//! a softmax), each of which allocates and, from a thread outside the
//! pool, hands work to the threads.

use crate::model::exp::exp;
use crate::model::gemv::{self, Element};
use candle_core::{DType, Device, Result, Storage, Tensor, WithDType};
use half::bf16;

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
pub(crate) fn over_cache<W: WithDType + Element>(
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
    // Tasks of a few query heads of one key head, which read each key and
    // value row once for all of them; enough tasks to keep every thread
    // busy when the group sizes do not divide among the threads.
    let per_task = heads
        .div_ceil(rayon::current_num_threads() * 4)
        .clamp(1, group.min(gemv::MAX_ROWS));
    let mut out = vec![0f32; heads * d];
    let tasks: Vec<(usize, &mut [f32])> = out
        .chunks_mut(d * group)
        .flat_map(|group_out| group_out.chunks_mut(per_task * d))
        .enumerate()
        .collect();
    let heads_per_group_task = group.div_ceil(per_task);
    let task = |(t, out): (usize, &mut [f32])| {
        let (g, part) = (t / heads_per_group_task, t % heads_per_group_task);
        let first = g * group + part * per_task;
        let queries = &query[first * d..first * d + out.len()];
        heads_of_one_key_head(queries, k_heads[g], v_heads[g], d, out);
    };
    if heads * keys * d >= PARALLEL_FROM {
        crate::pool::crew::for_each_item(tasks, task);
    } else {
        tasks.into_iter().for_each(task);
    }
    Ok(out)
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

/// Query heads `queries` (up to [`gemv::MAX_ROWS`] rows of `d` values)
/// that share one key head, over its `keys` and `values` (rows of `d`),
/// into `out` (a row per query head). The scores are the GEMV kernels'
/// products (each key row read once for all the heads); the weighted sum
/// of values is compiled for AVX2 where the CPU has it (the portable
/// build's four-wide vectors, and libm's `expf`, made this the larger part
/// of a bf16 step's attention).
fn heads_of_one_key_head<W: Element>(
    queries: &[f32],
    keys: &[W],
    values: &[W],
    d: usize,
    out: &mut [f32],
) {
    let heads = queries.len() / d;
    let positions = keys.len() / d;
    let rows: Vec<&[f32]> = queries.chunks_exact(d).collect();
    let mut by_key = vec![0f32; positions * heads];
    gemv::row_dots(&rows, keys, d, &mut by_key);
    let scale = 1.0 / (d as f32).sqrt();
    let mut probs = vec![0f32; heads * positions];
    for (t, scores) in by_key.chunks_exact(heads).enumerate() {
        for (h, &score) in scores.iter().enumerate() {
            probs[h * positions + t] = scale * score;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { weighted_avx2(&mut probs, values, d, out) };
    }
    weighted::<W, false>(&mut probs, values, d, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_avx2<W: Element>(probs: &mut [f32], values: &[W], d: usize, out: &mut [f32]) {
    weighted::<W, true>(probs, values, d, out)
}

/// Each head's scores (a row of `probs`) made a softmax, and its output
/// row of `out` the values weighted by it, `CHUNK` outputs at a time in
/// running sums that stay in registers over all positions. `FUSED` where
/// the code is compiled for FMA (elsewhere `mul_add` is a libm call).
#[inline(always)]
fn weighted<W: Element, const FUSED: bool>(
    probs: &mut [f32],
    values: &[W],
    d: usize,
    out: &mut [f32],
) {
    const CHUNK: usize = 32;
    let positions = values.len() / d;
    for (head, o) in probs
        .chunks_exact_mut(positions.max(1))
        .zip(out.chunks_exact_mut(d))
    {
        let max = head.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for s in head.iter_mut() {
            *s = exp(*s - max);
        }
        let total: f32 = head.iter().sum();
        for c in (0..d).step_by(CHUNK) {
            let width = (d - c).min(CHUNK);
            let mut acc = [0f32; CHUNK];
            for (&p, value) in head.iter().zip(values.chunks_exact(d)) {
                let value = &value[c..c + width];
                if width == CHUNK {
                    for k in 0..CHUNK {
                        acc[k] = multiply_add::<FUSED>(p, value[k].widen(), acc[k]);
                    }
                } else {
                    for (a, v) in acc.iter_mut().zip(value) {
                        *a = multiply_add::<FUSED>(p, v.widen(), *a);
                    }
                }
            }
            for (o, a) in o[c..c + width].iter_mut().zip(acc) {
                *o = a / total;
            }
        }
    }
}

#[inline(always)]
fn multiply_add<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
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
