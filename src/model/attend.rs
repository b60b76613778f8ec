//! Scaled dot-product attention of queries over keys and values that are
//! already in their final (rotated, cached, repeated) form.
//!
//! Inference walks the queries in blocks, so a long prompt never holds a
//! `[heads, seq, seq]` score matrix: each block sees only the keys up to its
//! own last position (the causal blocks above the diagonal are never
//! computed), and its mask covers just that block.

use candle_core::{D, DType, Device, Result, Tensor};
use std::ops::Range;

/// Queries per block in inference. A block's scores are
/// `heads * QUERY_BLOCK * keys` floats: 75 MB for 9 heads at 8k keys.
pub const QUERY_BLOCK: usize = 256;

/// Which keys each query may see: every earlier position (causal) and, when
/// samples are packed in one row, only positions of its own sample.
pub struct Visibility {
    /// Positions already cached before the first query.
    offset: usize,
    /// Sample of each position, when packing.
    segment_of: Option<Vec<u32>>,
}

impl Visibility {
    pub fn new(offset: usize, segments: Option<&[usize]>) -> Visibility {
        let segment_of = segments.map(|lengths| {
            lengths
                .iter()
                .enumerate()
                .flat_map(|(s, &n)| std::iter::repeat_n(s as u32, n))
                .collect()
        });
        Visibility { offset, segment_of }
    }

    /// Keys the queries `rows` (counted from the first query) may look at:
    /// none lies past the last query's own position.
    fn keys_for(&self, rows: &Range<usize>) -> usize {
        self.offset + rows.end
    }

    /// The additive mask `[1, 1, rows, keys]` for `rows` over the first
    /// `keys` positions; `None` when every query sees every key.
    fn mask(&self, rows: Range<usize>, keys: usize, device: &Device) -> Result<Option<Tensor>> {
        let last_query = self.offset + rows.end - 1;
        if rows.len() == 1 && self.segment_of.is_none() && last_query + 1 >= keys {
            return Ok(None);
        }
        let n = rows.len();
        let mut values = Vec::with_capacity(n * keys);
        for row in rows {
            let query = self.offset + row;
            for key in 0..keys {
                let same_sample = match &self.segment_of {
                    Some(seg) => seg[key] == seg[query],
                    None => true,
                };
                let visible = key <= query && same_sample;
                values.push(if visible { 0.0 } else { f32::NEG_INFINITY });
            }
        }
        Ok(Some(Tensor::from_vec(values, (1, 1, n, keys), device)?))
    }
}

/// `softmax(q kᵀ · scale + mask) v` for `q [b, h, t, d]` and `k`, `v`
/// `[b, kv, T, d]`, each key/value head serving `h / kv` query heads (GQA)
/// without copying it per query head. Training keeps the whole
/// differentiable graph (candle's fused softmax drops gradients); inference
/// goes block by block.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, vis: &Visibility, train: bool) -> Result<Tensor> {
    let (_, _, t, _) = q.dims4()?;
    if train {
        let keys = k.dim(2)?;
        return grouped(q, k, v, vis.mask(0..t, keys, q.device())?.as_ref(), true);
    }
    let mut outputs = Vec::with_capacity(t.div_ceil(QUERY_BLOCK));
    for start in (0..t).step_by(QUERY_BLOCK) {
        let rows = start..(start + QUERY_BLOCK).min(t);
        let keys = vis.keys_for(&rows);
        let q_rows = q.narrow(2, rows.start, rows.len())?;
        let k_seen = k.narrow(2, 0, keys)?;
        let v_seen = v.narrow(2, 0, keys)?;
        let mask = vis.mask(rows, keys, q.device())?;
        outputs.push(grouped(&q_rows, &k_seen, &v_seen, mask.as_ref(), false)?);
    }
    if outputs.len() == 1 {
        return Ok(outputs.pop().expect("one block"));
    }
    Tensor::cat(&outputs, 2)
}

/// Attention with the query heads of each key/value head stacked as extra
/// rows: `[b, kv, group * t, d]` against `[b, kv, T, d]`.
fn grouped(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    train: bool,
) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (kv, keys) = (k.dim(1)?, k.dim(2)?);
    let group = h / kv;
    let q = q.contiguous()?.reshape((b, kv, group * t, d))?;
    let scale = 1.0 / (d as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
    let scores = match mask {
        // The mask `[1, 1, t, keys]` repeats for every head of a group.
        Some(m) => scores
            .reshape((b, kv, group, t, keys))?
            .broadcast_add(m)?
            .reshape((b, kv, group * t, keys))?,
        None => scores,
    };
    let probs = if train {
        candle_nn::ops::softmax(&scores, D::Minus1)?
    } else {
        candle_nn::ops::softmax_last_dim(&scores)?
    };
    probs.to_dtype(v.dtype())?.matmul(v)?.reshape((b, h, t, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let mut rng = crate::data::rng::SplitMix64::new(seed);
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let values: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// Attention as the decoder computed it before blocks and groups: key
    /// and value heads copied per query head, the whole mask at once.
    fn whole(q: &Tensor, k: &Tensor, v: &Tensor, vis: &Visibility) -> Tensor {
        let (t, keys) = (q.dim(2).unwrap(), k.dim(2).unwrap());
        let group = q.dim(1).unwrap() / k.dim(1).unwrap();
        let repeat = |x: &Tensor| {
            let (b, kv, n, d) = x.dims4().unwrap();
            x.unsqueeze(2)
                .unwrap()
                .expand((b, kv, group, n, d))
                .unwrap()
                .reshape((b, kv * group, n, d))
                .unwrap()
        };
        let mask = vis.mask(0..t, keys, &Device::Cpu).unwrap().unwrap();
        let scores = (q.matmul(&repeat(k).t().unwrap()).unwrap() * 0.125).unwrap();
        let probs =
            candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
        probs.matmul(&repeat(v)).unwrap()
    }

    #[test]
    fn blocks_equal_the_whole_matrix_on_a_ragged_prompt_after_a_cache() {
        // 600 queries: two full blocks and a ragged one, after 37 cached keys.
        let (offset, t) = (37, 600);
        // Six query heads over two key/value heads (GQA 3:1).
        let q = random((1, 6, t, 64), 1);
        let k = random((1, 2, offset + t, 64), 2);
        let v = random((1, 2, offset + t, 64), 3);
        let vis = Visibility::new(offset, None);
        let blocked = attend(&q, &k, &v, &vis, false).unwrap();
        let diff = crate::model::max_abs_diff(&blocked, &whole(&q, &k, &v, &vis)).unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn packed_samples_never_see_each_other_in_blocks() {
        let vis = Visibility::new(0, Some(&[300, 5, 295]));
        let q = random((1, 1, 600, 64), 4);
        let k = random((1, 1, 600, 64), 5);
        let v = random((1, 1, 600, 64), 6);
        let blocked = attend(&q, &k, &v, &vis, false).unwrap();
        let diff = crate::model::max_abs_diff(&blocked, &whole(&q, &k, &v, &vis)).unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
        // Query 302 (second sample) sees only keys 300..=302.
        let mask = vis.mask(302..303, 303, &Device::Cpu).unwrap().unwrap();
        let row: Vec<f32> = mask.flatten_all().unwrap().to_vec1().unwrap();
        assert!(row[..300].iter().all(|x| x.is_infinite()));
        assert!(row[300..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn one_new_token_needs_no_mask() {
        let vis = Visibility::new(10, None);
        assert!(vis.mask(0..1, 11, &Device::Cpu).unwrap().is_none());
    }
}
