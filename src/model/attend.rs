//! Scaled dot-product attention of queries over keys and values that are
//! already in their final (rotated, cached, repeated) form.
//!
//! Neither path holds a `[heads, seq, seq]` score matrix. On the CPU both
//! go in blocks of queries and keys (`model/flash`; inference takes its
//! forward pass alone). Inference on other devices walks the queries in
//! blocks: each block sees only the keys up to its own last position (the
//! causal blocks above the diagonal are never computed), and its mask
//! covers just that block.

use super::flash::{Blocks, Products};
use candle_core::{D, DType, Device, Result, Tensor};
use std::ops::Range;

/// Queries per block in inference. A block's scores are
/// `heads * QUERY_BLOCK * keys` floats: 75 MB for 9 heads at 8k keys.
pub const QUERY_BLOCK: usize = 256;

/// Which keys each query may see: every earlier position (causal) and, when
/// samples are packed in one row, only positions of its own sample.
#[derive(Clone)]
pub struct Visibility {
    /// Positions already cached before the first query.
    offset: usize,
    /// First position of each position's sample, when packing.
    sample_start: Option<Vec<u32>>,
}

impl Visibility {
    pub fn new(offset: usize, segments: Option<&[usize]>) -> Visibility {
        let sample_start = segments.map(|lengths| {
            let mut starts = Vec::with_capacity(lengths.iter().sum());
            let mut start = 0;
            for &n in lengths {
                starts.extend(std::iter::repeat_n(start as u32, n));
                start += n;
            }
            starts
        });
        Visibility {
            offset,
            sample_start,
        }
    }

    /// Keys the queries `rows` (counted from the first query) may look at:
    /// none lies past the last query's own position.
    fn keys_for(&self, rows: &Range<usize>) -> usize {
        self.offset + rows.end
    }

    /// The keys query `row` sees: a contiguous run, from its sample's start
    /// (or the first key) up to its own position.
    pub fn visible_keys(&self, row: usize) -> Range<usize> {
        let position = self.offset + row;
        let first = self
            .sample_start
            .as_ref()
            .map_or(0, |starts| starts[position] as usize);
        first..position + 1
    }

    /// How the queries `rows` meet the keys `keys`: not at all, wholly, or
    /// in part (the tile needs a mask).
    pub fn tile(&self, rows: &Range<usize>, keys: &Range<usize>) -> Tile {
        // Both ends of each query's run grow with the query.
        let (first, last) = (
            self.visible_keys(rows.start),
            self.visible_keys(rows.end - 1),
        );
        if last.start <= keys.start && first.end >= keys.end {
            return Tile::Whole;
        }
        let meets = rows.clone().any(|row| {
            let seen = self.visible_keys(row);
            seen.start < keys.end && seen.end > keys.start
        });
        if meets { Tile::Partial } else { Tile::Skipped }
    }

    /// The run of `keys` that the queries `rows` see between them (each
    /// query's run starts and ends no earlier than the one before, so it is
    /// one range): a masked tile needs its products only over it.
    pub fn seen_part(&self, rows: &Range<usize>, keys: &Range<usize>) -> Range<usize> {
        let (first, last) = (
            self.visible_keys(rows.start),
            self.visible_keys(rows.end - 1),
        );
        let start = first.start.clamp(keys.start, keys.end);
        start..last.end.clamp(start, keys.end)
    }

    /// The additive mask `[1, 1, rows, keys]` for `rows` over the first
    /// `keys` positions; `None` when every query sees every key.
    fn mask(&self, rows: Range<usize>, keys: usize, device: &Device) -> Result<Option<Tensor>> {
        if let Tile::Whole = self.tile(&rows, &(0..keys)) {
            return Ok(None);
        }
        let n = rows.len();
        let mut values = Vec::with_capacity(n * keys);
        for row in rows {
            let seen = self.visible_keys(row);
            values.extend((0..keys).map(|key| {
                if seen.contains(&key) {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            }));
        }
        Ok(Some(Tensor::from_vec(values, (1, 1, n, keys), device)?))
    }
}

/// How a block of queries meets a block of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// No query sees any key: never computed.
    Skipped,
    /// Every query sees every key: no mask.
    Whole,
    /// Some pairs are hidden: masked.
    Partial,
}

/// `softmax(q kᵀ · scale + mask) v` for `q [b, h, t, d]` and `k`, `v`
/// `[b, kv, T, d]`, each key/value head serving `h / kv` query heads (GQA)
/// without copying it per query head. Training goes in blocks of queries
/// and keys with its own backward pass (`flash`); inference goes in blocks
/// of queries.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    vis: &Visibility,
    training: Option<Products>,
) -> Result<Tensor> {
    let (_, _, t, _) = q.dims4()?;
    if let Some(products) = training {
        return match training_path(q.device()) {
            TrainingPath::Blockwise(blocks) => {
                super::flash::flash_attention(q, k, v, vis, (blocks, products))
            }
            TrainingPath::Whole => whole_matrix(q, k, v, vis),
        };
    }
    // A decoding step: one position that sees every key.
    if t == 1
        && vis.visible_keys(0) == (0..k.dim(2)?)
        && let Some(out) = super::attend_one::attend_one(q, k, v)?
    {
        return Ok(out);
    }
    // A prompt on the CPU: the blockwise kernel's forward pass, in f32 for
    // bf16 too (candle multiplies CPU bf16 with a scalar loop; torch's CPU
    // kernels also sum bf16 attention in f32), the output rounded once.
    // 7,808 tokens on SmolLM2 f32: 81 s in query blocks of candle ops, 22.5
    // s here.
    if q.device().is_cpu() {
        return super::flash::attend_inference(q, k, v, vis, Blocks::DEFAULT);
    }
    in_query_blocks(q, k, v, vis)
}

/// Inference attention a block of [`QUERY_BLOCK`] queries at a time, each
/// over the keys up to its last query, through candle's ops.
fn in_query_blocks(q: &Tensor, k: &Tensor, v: &Tensor, vis: &Visibility) -> Result<Tensor> {
    let t = q.dim(2)?;
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

/// How training attends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingPath {
    /// The whole differentiable score matrix (memory quadratic in the
    /// sequence): on devices without the blockwise kernel, and the
    /// reference the blockwise path is tested against.
    Whole,
    Blockwise(Blocks),
}

#[cfg(test)]
thread_local! {
    /// Tests pick the training path (and block sizes) per thread.
    static TEST_TRAINING_PATH: std::cell::Cell<Option<TrainingPath>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` with training attention going `path` on this thread.
#[cfg(test)]
pub fn with_training_path<R>(path: TrainingPath, f: impl FnOnce() -> R) -> R {
    let before = TEST_TRAINING_PATH.replace(Some(path));
    let result = f();
    TEST_TRAINING_PATH.set(before);
    result
}

fn training_path(device: &Device) -> TrainingPath {
    #[cfg(test)]
    if let Some(path) = TEST_TRAINING_PATH.get() {
        return path;
    }
    if device.is_cpu() {
        TrainingPath::Blockwise(Blocks::DEFAULT)
    } else {
        TrainingPath::Whole
    }
}

/// Differentiable attention through the whole `[b, h, t, T]` score matrix.
pub(crate) fn whole_matrix(q: &Tensor, k: &Tensor, v: &Tensor, vis: &Visibility) -> Result<Tensor> {
    let (t, keys) = (q.dim(2)?, k.dim(2)?);
    grouped(q, k, v, vis.mask(0..t, keys, q.device())?.as_ref(), true)
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
pub(crate) mod tests {
    use super::*;

    /// Uniform values in [-1, 1) from `seed`.
    pub(crate) fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
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

    /// The CPU's inference path (the blockwise kernel) and other devices'
    /// (query blocks of candle ops) against [`whole`].
    fn both_paths_equal_the_whole_matrix(q: &Tensor, k: &Tensor, v: &Tensor, vis: &Visibility) {
        let want = whole(q, k, v, vis);
        for blocked in [attend(q, k, v, vis, None), in_query_blocks(q, k, v, vis)] {
            let diff = crate::model::max_abs_diff(&blocked.unwrap(), &want).unwrap();
            assert!(diff < 1e-5, "max difference {diff}");
        }
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
        both_paths_equal_the_whole_matrix(&q, &k, &v, &vis);
    }

    #[test]
    fn packed_samples_never_see_each_other_in_blocks() {
        let vis = Visibility::new(0, Some(&[300, 5, 295]));
        let q = random((1, 1, 600, 64), 4);
        let k = random((1, 1, 600, 64), 5);
        let v = random((1, 1, 600, 64), 6);
        both_paths_equal_the_whole_matrix(&q, &k, &v, &vis);
        // Query 302 (second sample) sees only keys 300..=302.
        let mask = vis.mask(302..303, 303, &Device::Cpu).unwrap().unwrap();
        let row: Vec<f32> = mask.flatten_all().unwrap().to_vec1().unwrap();
        assert!(row[..300].iter().all(|x| x.is_infinite()));
        assert!(row[300..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn tiles_above_the_diagonal_or_across_samples_are_skipped() {
        let causal = Visibility::new(0, None);
        assert_eq!(causal.tile(&(0..64), &(64..128)), Tile::Skipped);
        assert_eq!(causal.tile(&(64..128), &(64..128)), Tile::Partial);
        assert_eq!(causal.tile(&(128..192), &(0..128)), Tile::Whole);
        // Samples 0..100 and 100..300.
        let packed = Visibility::new(0, Some(&[100, 200]));
        assert_eq!(packed.tile(&(192..256), &(0..64)), Tile::Skipped);
        assert_eq!(packed.tile(&(64..128), &(0..64)), Tile::Partial);
        assert_eq!(packed.tile(&(192..256), &(128..192)), Tile::Whole);
        assert_eq!(packed.visible_keys(150), 100..151);
    }

    #[test]
    fn a_masked_tile_is_cut_to_the_keys_its_queries_see() {
        let causal = Visibility::new(0, None);
        assert_eq!(causal.seen_part(&(64..128), &(0..256)), 0..128);
        assert_eq!(causal.seen_part(&(192..256), &(0..256)), 0..256);
        // Samples 0..100 and 100..300: queries 120..130 see keys 100..130.
        let packed = Visibility::new(0, Some(&[100, 200]));
        assert_eq!(packed.seen_part(&(120..130), &(0..256)), 100..130);
        // Queries 90..110 straddle the boundary: 0..110 between them.
        assert_eq!(packed.seen_part(&(90..110), &(64..256)), 64..110);
    }

    #[test]
    fn one_new_token_needs_no_mask() {
        let vis = Visibility::new(10, None);
        assert!(vis.mask(0..1, 11, &Device::Cpu).unwrap().is_none());
    }
}
