//! Attention of one new position over the cached keys and values, on plain
//! slices: what a decoding step needs, without the tensor ops of the
//! general path (a grouped reshape, two matrix products, a scale, a cast,
//! a softmax), each of which allocates and, from a thread outside the
//! pool, hands work to the threads.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use crate::model::exp::exp;
use crate::model::gemv::{self, Element};
use crate::model::softmax_rows;
use candle_core::{DType, Device, Result, Storage, Tensor, WithDType};
use half::bf16;
use std::ops::Range;

/// Multiply-adds (query heads x keys x head width) below which one thread
/// does them all.
const PARALLEL_FROM: usize = 1 << 16;

/// Tasks per thread a step's attention is split into.
const TASKS_PER_THREAD: usize = 4;

/// Fewest positions a task takes: a task costs about a microsecond (its
/// buffers, handing it out, combining its sums), the attention of a
/// SmolLM2 key head's three query heads over 128 positions about five.
const MIN_SPAN: usize = 128;

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
    // Tasks of all the query heads of one key head over a span of the
    // positions, so that each key and value row is read once; enough spans
    // to keep every thread busy, each long enough to be worth handing out.
    let parallel = heads * keys * d >= PARALLEL_FROM;
    let spans = if parallel {
        let wanted = (rayon::current_num_threads() * TASKS_PER_THREAD).div_ceil(kv_heads);
        wanted.min(keys / MIN_SPAN).max(1)
    } else {
        1
    };
    let span = keys.div_ceil(spans).next_multiple_of(8).max(1);
    let mut parts: Vec<Part> = (0..kv_heads)
        .flat_map(|g| (0..keys.max(1)).step_by(span).map(move |start| (g, start)))
        .map(|(g, start)| Part::new(g, start..(start + span).min(keys), group, d))
        .collect();
    let task = |part: &mut Part| {
        let (g, range) = (part.key_head, part.positions.clone());
        let queries = &query[g * group * d..(g + 1) * group * d];
        let (keys, values) = (
            &k_heads[g][range.start * d..range.end * d],
            &v_heads[g][range.start * d..range.end * d],
        );
        heads_of_one_key_head(queries, keys, values, d, part);
    };
    if parallel && parts.len() > 1 {
        crate::pool::crew::for_each_item(parts.iter_mut().collect(), task);
    } else {
        parts.iter_mut().for_each(task);
    }
    Ok(combined(&parts, heads, group, d))
}

/// Attention of a key head's query heads over a span of the positions:
/// per head, the largest score, the sum of `exp(score - largest)` and the
/// values weighted by those exponentials (rows of `d`).
struct Part {
    key_head: usize,
    positions: Range<usize>,
    largest: Vec<f32>,
    total: Vec<f32>,
    weighted: Vec<f32>,
}

impl Part {
    fn new(key_head: usize, positions: Range<usize>, heads: usize, d: usize) -> Self {
        Part {
            key_head,
            positions,
            largest: vec![f32::NEG_INFINITY; heads],
            total: vec![0.0; heads],
            weighted: vec![0.0; heads * d],
        }
    }
}

/// Each query head's output (rows of `d`, heads in order, `group` to a
/// key head) from the parts over its key head's spans, each part's sums
/// rescaled to the largest score of all of them.
fn combined(parts: &[Part], heads: usize, group: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; heads * d];
    for (g, group_out) in out.chunks_exact_mut(group * d).enumerate() {
        let mine: Vec<&Part> = parts.iter().filter(|p| p.key_head == g).collect();
        for (h, head_out) in group_out.chunks_exact_mut(d).enumerate() {
            let largest = mine
                .iter()
                .map(|p| p.largest[h])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0;
            for part in &mine {
                // exp(0) is exactly 1: a single span keeps its bits.
                let factor = exp(part.largest[h] - largest);
                total += factor * part.total[h];
                for (o, &w) in head_out.iter_mut().zip(&part.weighted[h * d..(h + 1) * d]) {
                    *o += factor * w;
                }
            }
            for o in head_out {
                *o /= total;
            }
        }
    }
    out
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

/// The query heads `queries` (rows of `d`) that share one key head, over
/// a span of its `keys` and `values` (rows of `d`), into `part`: on
/// AVX-512 sixteen positions at a time (`avx512.rs`), on AVX2 eight for all
/// the heads (`avx2.rs`); elsewhere the
/// scores are the GEMV kernels' products (each key row read once for up
/// to [`gemv::MAX_ROWS`] heads) and the weighted sums run a chunk of
/// outputs at a time.
fn heads_of_one_key_head<W: Element>(
    queries: &[f32],
    keys: &[W],
    values: &[W],
    d: usize,
    part: &mut Part,
) {
    let scale = 1.0 / (d as f32).sqrt();
    let heads = queries.len() / d;
    let positions = keys.len() / d;
    let mut probs = vec![0f32; heads * positions];
    #[cfg(target_arch = "x86_64")]
    if avx512::takes(d) && is_x86_feature_detected!("avx512f") {
        match bf16_queries::<W>(queries, d) {
            // SAFETY (all): the CPU has the features the functions are
            // compiled for; `d` is whole registers, of pairs for pairs.
            Some(pairs) => unsafe {
                avx512::scores_of_pairs(
                    &pairs,
                    W::bf16_bits(keys).unwrap_or_default(),
                    d,
                    scale,
                    &mut probs,
                )
            },
            None => unsafe { avx512::scores(queries, keys, d, scale, &mut probs) },
        }
        exponentiate(&mut probs, positions, part);
        unsafe { avx512::weighted(&probs, values, d, &mut part.weighted) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(8) && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY (both): the CPU has the features the functions are
        // compiled for, and `d` is a multiple of 8.
        unsafe { avx2::scores(queries, keys, d, scale, &mut probs) };
        exponentiate(&mut probs, positions, part);
        unsafe { avx2::weighted(&probs, values, d, &mut part.weighted) };
        return;
    }
    for (rows, probs) in queries
        .chunks(gemv::MAX_ROWS * d)
        .zip(probs.chunks_mut(gemv::MAX_ROWS * positions))
    {
        let rows: Vec<&[f32]> = rows.chunks_exact(d).collect();
        let mut by_key = vec![0f32; positions * rows.len()];
        gemv::row_dots(&rows, keys, d, &mut by_key);
        for (t, scores) in by_key.chunks_exact(rows.len()).enumerate() {
            for (h, &score) in scores.iter().enumerate() {
                probs[h * positions + t] = scale * score;
            }
        }
    }
    exponentiate(&mut probs, positions, part);
    weighted(&probs, values, d, &mut part.weighted);
}

/// The query heads as bf16 bit patterns, where the keys are bf16, the CPU
/// multiplies bf16 pairs, `d` holds whole registers of pairs and every
/// query value is a bf16 value (a bf16 model's queries are rounded to it).
#[cfg(target_arch = "x86_64")]
fn bf16_queries<W: Element>(queries: &[f32], d: usize) -> Option<Vec<u16>> {
    let pairs = W::BF16 && d.is_multiple_of(32) && is_x86_feature_detected!("avx512bf16");
    pairs.then(|| gemv::bf16_bits_if_exact(queries)).flatten()
}

/// Each head's row of scores in `probs` (of `positions`) turned into
/// `exp(score - largest)`, the largest and the sum kept in `part`.
fn exponentiate(probs: &mut [f32], positions: usize, part: &mut Part) {
    for ((row, largest), total) in probs
        .chunks_exact_mut(positions.max(1))
        .zip(&mut part.largest)
        .zip(&mut part.total)
    {
        *largest = softmax_rows::max(row);
        *total = softmax_rows::exponentiate(row, 0..positions, 1.0, *largest);
    }
}

/// Each head's output row of `out` = its row of `probs` times `values`,
/// `CHUNK` outputs at a time in running sums.
fn weighted<W: Element>(probs: &[f32], values: &[W], d: usize, out: &mut [f32]) {
    const CHUNK: usize = 32;
    let positions = values.len() / d;
    for (head, o) in probs
        .chunks_exact(positions.max(1))
        .zip(out.chunks_exact_mut(d))
    {
        for c in (0..d).step_by(CHUNK) {
            let width = (d - c).min(CHUNK);
            let mut acc = [0f32; CHUNK];
            for (&p, value) in head.iter().zip(values.chunks_exact(d)) {
                for (a, v) in acc.iter_mut().zip(&value[c..c + width]) {
                    *a += p * v.widen();
                }
            }
            o[c..c + width].copy_from_slice(&acc[..width]);
        }
    }
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
        // the parallel path, in spans combined afterwards, at 700 keys.
        // Heads of 16 and 64 take the AVX-512 kernels where the CPU has
        // them (bf16 heads of 64 on bf16 pairs), else AVX2; heads of 12 the
        // portable ones.
        for (keys, d) in [
            (37, 16),
            (700, 16),
            (37, 12),
            (700, 12),
            (37, 64),
            (700, 64),
        ] {
            let buffer_k = random((1, 2, keys + 27, d), 1);
            let buffer_v = random((1, 2, keys + 27, d), 2);
            let (k, v) = (
                buffer_k.narrow(2, 0, keys).unwrap(),
                buffer_v.narrow(2, 0, keys).unwrap(),
            );
            let q = random((1, 6, 1, d), 3);
            let general = attend(&q, &k, &v, &Visibility::new(keys - 1, None), None).unwrap();
            for dtype in [DType::F32, DType::BF16] {
                let [q, k, v] = [&q, &k, &v].map(|t| t.to_dtype(dtype).unwrap());
                let ours = attend_one(&q, &k, &v).unwrap().expect("CPU f32/bf16 fits");
                assert_eq!(ours.dims(), &[1, 6, 1, d]);
                let ours = ours.to_dtype(DType::F32).unwrap();
                let diff = crate::model::max_abs_diff(&ours, &general).unwrap();
                let bound = if dtype == DType::F32 { 1e-5 } else { 2e-2 };
                assert!(diff < bound, "{keys} keys of {d}, {dtype:?}: {diff}");
            }
        }
    }

    #[test]
    fn spans_combined_give_what_one_span_gives() {
        // 1,000 positions, 8 query heads over 2 key heads: one part against
        // parts of 64 to 1,000 positions (the last one short).
        let (keys, d, heads) = (1000, 16, 8);
        let k = random((1, 2, keys, d), 4);
        let v = random((1, 2, keys, d), 5);
        let query = random((1, heads, 1, d), 6)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let rows = |t: &Tensor, g: usize| {
            t.get(0)
                .unwrap()
                .get(g)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let group = heads / 2;
        let outputs = |span: usize| {
            let mut parts = Vec::new();
            for g in 0..2 {
                let (all_k, all_v) = (rows(&k, g), rows(&v, g));
                for start in (0..keys).step_by(span) {
                    let end = (start + span).min(keys);
                    let mut part = Part::new(g, start..end, group, d);
                    let queries = &query[g * group * d..(g + 1) * group * d];
                    heads_of_one_key_head(
                        queries,
                        &all_k[start * d..end * d],
                        &all_v[start * d..end * d],
                        d,
                        &mut part,
                    );
                    parts.push(part);
                }
            }
            combined(&parts, heads, group, d)
        };
        let whole = outputs(keys);
        for span in [64, 136, 999] {
            let split = outputs(span);
            let diff = whole
                .iter()
                .zip(&split)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-6, "spans of {span}: {diff}");
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
