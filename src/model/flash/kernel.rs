//! Blockwise attention on the CPU over f32 slices: the forward pass keeps
//! only the output and each row's log-sum-exp, the backward pass recomputes
//! each tile's probabilities from them. Tasks per (sequence, key/value
//! head): forward one per query block, backward one per lane of key
//! blocks; the tiles' products on the task's thread, in f32 through
//! `gemm` or on bf16 pairs ([`Products`]).
//!
//! Layouts: queries, outputs and their gradients `[batch, kv, t, group, d]`
//! (the query heads that share a key/value head interleaved per position,
//! so a block of positions is one run of rows against that head's keys),
//! keys and values `[batch, kv, T, d]`, per-row statistics `[batch, kv, t,
//! group]`.

mod gradient_products;

use crate::model::attend::{Tile, Visibility};
#[cfg(target_arch = "x86_64")]
use crate::model::gemv::pair_tiles;
use crate::model::product::{View, plain, transposed};
use crate::model::softmax_rows as rows;
use gradient_products::{GradientProducts, Input};
use rayon::prelude::*;
use std::ops::Range;

/// Positions per query block and per key block.
///
/// A running task holds two `group * queries × keys` f32 tiles (scores and
/// their gradient in backward) plus the block's `group * queries × d`
/// output: at 64 × 256 with 3 query heads per key head and d 64, 0.44 MB
/// per thread, whatever the sequence length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    pub queries: usize,
    pub keys: usize,
}

/// The problem's sizes.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub batch: usize,
    pub kv_heads: usize,
    /// Query heads per key/value head.
    pub group: usize,
    pub queries: usize,
    pub keys: usize,
    pub dim: usize,
}

impl Shape {
    /// Rows (query positions × group) of one key/value head.
    fn head_rows(&self) -> usize {
        self.queries * self.group
    }

    fn scale(&self) -> f32 {
        (1.0 / (self.dim as f64).sqrt()) as f32
    }
}

/// A tile's product on the calling thread (the tasks are the parallelism).
fn product(
    dst: &mut [f32],
    sizes: (usize, usize, usize),
    lhs: View,
    rhs: View,
    factor: f32,
    accumulate: bool,
) {
    crate::model::product::product(dst, sizes, lhs, rhs, factor, accumulate, false);
}

/// The block of `size` positions numbered `index`, cut at `len`.
fn block(index: usize, size: usize, len: usize) -> Range<usize> {
    index * size..((index + 1) * size).min(len)
}

/// The keys of `keys` that query `query` sees, counted from `keys.start`.
fn seen_in_tile(vis: &Visibility, tile: Tile, query: usize, keys: &Range<usize>) -> Range<usize> {
    if tile == Tile::Whole {
        return 0..keys.len();
    }
    let seen = vis.visible_keys(query);
    let start = seen.start.clamp(keys.start, keys.end);
    let end = seen.end.clamp(start, keys.end);
    start - keys.start..end - keys.start
}

/// The keys of a tile that its queries see: a masked tile on the diagonal
/// computes only up to its last query's position (at 1,024 causal tokens in
/// blocks of 64 x 256, the whole tiles were 1.25x the products needed).
fn seen_part(
    vis: &Visibility,
    tile: Tile,
    queries: &Range<usize>,
    keys: Range<usize>,
) -> Range<usize> {
    match tile {
        Tile::Partial => vis.seen_part(queries, &keys),
        _ => keys,
    }
}

/// How a tile's products are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Products {
    /// f32 through `gemm`.
    F32,
    /// On the CPU's bf16 pairs (`gemv::pair_tiles`, which the caller
    /// checked is available): every product's inputs rounded to bf16 (a
    /// no-op for a bf16 model's prompt), its sums in f32.
    Bf16Pairs,
}

/// Attention output and per-row log-sum-exp.
pub fn forward(
    shape: &Shape,
    (blocks, products): (Blocks, Products),
    vis: &Visibility,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (rows, g, d) = (shape.head_rows(), shape.group, shape.dim);
    // The keys and values rounded to bf16 once for the whole pass, not per
    // tile: every query block reads them again.
    let words = match products {
        Products::Bf16Pairs => Some((pair_words(k), pair_words(v))),
        Products::F32 => None,
    };
    let mut out = vec![0.0; q.len()];
    let mut lse = vec![0.0; shape.batch * shape.kv_heads * rows];
    let head_keys = shape.keys * d;
    out.par_chunks_mut(rows * d)
        .zip(lse.par_chunks_mut(rows))
        .enumerate()
        .for_each(|(head, (out, lse))| {
            let q = nth(q, head, rows * d);
            let (k, v) = (nth(k, head, head_keys), nth(v, head, head_keys));
            let bits = words.as_ref().map(|(k, v)| {
                let half = head_keys / 2;
                (bits_of(nth(k, head, half)), bits_of(nth(v, head, half)))
            });
            out.par_chunks_mut(blocks.queries * g * d)
                .zip(lse.par_chunks_mut(blocks.queries * g))
                .enumerate()
                .for_each(|(i, (out, lse))| {
                    let queries = block(i, blocks.queries, shape.queries);
                    let q = &q[queries.start * g * d..queries.end * g * d];
                    let products = TileProducts::new(q, (k, v), bits);
                    forward_block(shape, blocks, vis, queries, products, out, lse);
                });
        });
    (out, lse)
}

/// `out += scale · sums`.
#[cfg(target_arch = "x86_64")]
fn add_scaled(out: &mut [f32], sums: &[f32], scale: f32) {
    out.iter_mut().zip(sums).for_each(|(o, s)| *o += scale * s);
}

/// The `i`th run of `len` values of `x`.
fn nth<T>(x: &[T], i: usize, len: usize) -> &[T] {
    &x[i * len..][..len]
}

/// `x` (rows of an even width) rounded to bf16, as pair words.
fn pair_words(x: &[f32]) -> Vec<f32> {
    let mut words = Vec::new();
    #[cfg(target_arch = "x86_64")]
    pair_tiles::words_of(x, &mut words);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
    words
}

/// The bf16 bit patterns that pair words hold.
fn bits_of(words: &[f32]) -> &[u16] {
    #[cfg(target_arch = "x86_64")]
    return pair_tiles::bits_of_words(words);
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("pair words are only made on x86: {}", words.len())
}

/// A query block's tile products over its key/value head: in f32, or on
/// bf16 pairs with the block's queries as pair words and buffers kept
/// from tile to tile.
enum TileProducts<'a> {
    F32 {
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
    },
    #[cfg(target_arch = "x86_64")]
    Pairs {
        q_words: Vec<f32>,
        k: &'a [u16],
        v: &'a [u16],
        weighted: Vec<f32>,
        scratch: pair_tiles::Scratch,
    },
}

impl<'a> TileProducts<'a> {
    /// On pairs where the head's bf16 `bits` are given, else in f32.
    fn new(
        q: &'a [f32],
        (k, v): (&'a [f32], &'a [f32]),
        bits: Option<(&'a [u16], &'a [u16])>,
    ) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some((k, v)) = bits {
            let mut q_words = Vec::new();
            pair_tiles::words_of(q, &mut q_words);
            return TileProducts::Pairs {
                q_words,
                k,
                v,
                weighted: vec![0.0; q.len()],
                scratch: pair_tiles::Scratch::default(),
            };
        }
        let _ = bits;
        TileProducts::F32 { q, k, v }
    }

    /// `s = q kᵀ` over the `keys`' rows of the head's keys.
    fn scores(&mut self, s: &mut [f32], keys: &Range<usize>, d: usize) {
        let (rows, n) = (s.len() / keys.len().max(1), keys.len());
        let tile = keys.start * d..keys.end * d;
        match self {
            TileProducts::F32 { q, k, .. } => {
                let k = &k[tile];
                product(s, (rows, n, d), plain(q, d), transposed(k, d), 1.0, false)
            }
            #[cfg(target_arch = "x86_64")]
            TileProducts::Pairs {
                q_words,
                k,
                scratch,
                ..
            } => pair_tiles::times_transposed(q_words, &k[tile], d, s, scratch),
        }
    }

    /// `out += p v` for the probabilities `p` (rows of `keys.len()`) and
    /// the `keys`' rows of the head's values.
    fn add_weighted(&mut self, out: &mut [f32], p: &[f32], keys: &Range<usize>, d: usize) {
        let (rows, n) = (out.len() / d, keys.len());
        let tile = keys.start * d..keys.end * d;
        match self {
            TileProducts::F32 { v, .. } => {
                let v = &v[tile];
                product(out, (rows, d, n), plain(p, n), plain(v, d), 1.0, true)
            }
            #[cfg(target_arch = "x86_64")]
            TileProducts::Pairs {
                v,
                weighted,
                scratch,
                ..
            } => {
                pair_tiles::times(p, n, &v[tile], d, weighted, scratch);
                add_scaled(out, weighted, 1.0);
            }
        }
    }
}

/// One query block against every key block it sees, with the online
/// softmax: a running maximum and sum per row rescale what is accumulated.
#[allow(clippy::too_many_arguments)]
fn forward_block(
    shape: &Shape,
    blocks: Blocks,
    vis: &Visibility,
    queries: Range<usize>,
    mut products: TileProducts,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let (g, d, scale) = (shape.group, shape.dim, shape.scale());
    let rows = queries.len() * g;
    let mut scores = vec![0.0; rows * blocks.keys];
    let mut max = vec![f32::NEG_INFINITY; rows];
    let mut sum = vec![0.0f32; rows];
    for j in 0..shape.keys.div_ceil(blocks.keys) {
        let keys = block(j, blocks.keys, shape.keys);
        let tile = vis.tile(&queries, &keys);
        if tile == Tile::Skipped {
            continue;
        }
        let keys = seen_part(vis, tile, &queries, keys);
        let n = keys.len();
        let s = &mut scores[..rows * n];
        products.scores(s, &keys, d);
        for (r, row) in s.chunks_mut(n).enumerate() {
            let seen = seen_in_tile(vis, tile, queries.start + r / g, &keys);
            let old = max[r];
            // The scale is positive, so the largest scaled score is the
            // largest score scaled.
            let new = old.max(rows::max(&row[seen.clone()]) * scale);
            if new == f32::NEG_INFINITY {
                // Nothing seen yet: the row adds nothing.
                row.fill(0.0);
                continue;
            }
            let rescale = (old - new).exp();
            sum[r] = sum[r] * rescale + rows::exponentiate(row, seen, scale, new);
            max[r] = new;
            if rescale != 1.0 {
                rows::scale(&mut out[r * d..(r + 1) * d], rescale);
            }
        }
        products.add_weighted(out, s, &keys, d);
    }
    for r in 0..rows {
        if sum[r] > 0.0 {
            rows::scale(&mut out[r * d..(r + 1) * d], 1.0 / sum[r]);
            lse[r] = max[r] + sum[r].ln();
        } else {
            // A query that sees no key: zero output, and a backward pass in
            // which its probabilities are zero.
            lse[r] = f32::INFINITY;
        }
    }
}

/// What the backward pass reads for one key/value head.
struct HeadInputs<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    d_out: &'a [f32],
    lse: &'a [f32],
    /// `rowsum(dO ∘ O)` per row.
    delta: &'a [f32],
    /// Queries, output gradients, keys and values rounded to bf16 pair
    /// words, when the tiles go on pairs.
    words: Option<[&'a [f32]; 4]>,
}

/// Gradients of queries, keys and values, in the layouts of their inputs.
pub struct Grads {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// Gradients of `forward`'s output `out` with gradient `d_out`.
pub fn backward(
    shape: &Shape,
    (blocks, products): (Blocks, Products),
    vis: &Visibility,
    (q, k, v): (&[f32], &[f32], &[f32]),
    out: &[f32],
    d_out: &[f32],
    lse: &[f32],
) -> Grads {
    let (rows, d) = (shape.head_rows(), shape.dim);
    let delta: Vec<f32> = out
        .par_chunks(d)
        .zip(d_out.par_chunks(d))
        .map(|(o, grad)| rows::dot(o, grad))
        .collect();
    let mut grads = Grads {
        q: vec![0.0; q.len()],
        k: vec![0.0; k.len()],
        v: vec![0.0; v.len()],
    };
    let head_keys = shape.keys * d;
    let words = match products {
        Products::Bf16Pairs => Some([q, d_out, k, v].map(pair_words)),
        Products::F32 => None,
    };
    let heads = q.len() / (rows * d).max(1);
    let lanes = lanes(heads, shape.keys.div_ceil(blocks.keys));
    grads
        .q
        .par_chunks_mut(rows * d)
        .zip(grads.k.par_chunks_mut(head_keys))
        .zip(grads.v.par_chunks_mut(head_keys))
        .enumerate()
        .for_each(|(head, ((dq, dk), dv))| {
            let inputs = HeadInputs {
                q: &q[head * rows * d..][..rows * d],
                k: &k[head * head_keys..][..head_keys],
                v: &v[head * head_keys..][..head_keys],
                d_out: &d_out[head * rows * d..][..rows * d],
                lse: &lse[head * rows..][..rows],
                delta: &delta[head * rows..][..rows],
                words: words.as_ref().map(|[q, d_out, k, v]| {
                    let (queries, keys) = (rows * d / 2, head_keys / 2);
                    [
                        nth(q, head, queries),
                        nth(d_out, head, queries),
                        nth(k, head, keys),
                        nth(v, head, keys),
                    ]
                }),
            };
            // Key blocks are dealt round-robin to lanes that run in
            // parallel. A lane owns its blocks' dK and dV and sums their dQ
            // in block order into its own buffer; the buffers are added in
            // lane order. So dQ's summation order never depends on which
            // thread finished first, and a step is reproducible.
            let mut dealt: Vec<Vec<KeyBlock>> = (0..lanes).map(|_| Vec::new()).collect();
            let key_blocks = dk
                .chunks_mut(blocks.keys * d)
                .zip(dv.chunks_mut(blocks.keys * d));
            for (j, (dk, dv)) in key_blocks.enumerate() {
                dealt[j % lanes].push((block(j, blocks.keys, shape.keys), dk, dv));
            }
            let mut lane_dq = vec![0.0; (lanes - 1) * rows * d];
            let sums = std::iter::once(&mut *dq).chain(lane_dq.chunks_mut(rows * d));
            dealt
                .into_par_iter()
                .zip(sums.collect::<Vec<_>>())
                .for_each(|(key_blocks, dq)| {
                    for (keys, dk, dv) in key_blocks {
                        backward_block(shape, blocks, vis, &inputs, keys, (dk, dv), dq);
                    }
                });
            for lane in lane_dq.chunks(rows * d) {
                dq.iter_mut().zip(lane).for_each(|(sum, part)| *sum += part);
            }
        });
    grads
}

/// A key block's positions and its slices of dK and dV.
type KeyBlock<'a> = (Range<usize>, &'a mut [f32], &'a mut [f32]);

/// Lanes per head in the backward pass: enough that every thread has about
/// two tasks, never more than the head has key blocks. Fixed for a given
/// thread count, so a process sums in one order.
fn lanes(heads: usize, key_blocks: usize) -> usize {
    let wanted = (2 * rayon::current_num_threads()).div_ceil(heads.max(1));
    wanted.clamp(1, key_blocks.max(1))
}

/// One key block against every query block that sees it.
fn backward_block(
    shape: &Shape,
    blocks: Blocks,
    vis: &Visibility,
    inputs: &HeadInputs,
    keys: Range<usize>,
    (dk, dv): (&mut [f32], &mut [f32]),
    dq: &mut [f32],
) {
    let (g, d, scale) = (shape.group, shape.dim, shape.scale());
    let mut probs = vec![0.0; blocks.queries * g * keys.len()];
    let mut d_scores = vec![0.0; blocks.queries * g * keys.len()];
    let mut products = GradientProducts::new(inputs, d);
    for i in 0..shape.queries.div_ceil(blocks.queries) {
        let queries = block(i, blocks.queries, shape.queries);
        let tile = vis.tile(&queries, &keys);
        if tile == Tile::Skipped {
            continue;
        }
        // This query block's part of the key block, and of its gradients.
        let part = seen_part(vis, tile, &queries, keys.clone());
        let n = part.len();
        let own = (part.start - keys.start) * d..(part.end - keys.start) * d;
        let (dk, dv) = (&mut dk[own.clone()], &mut dv[own]);
        let span = queries.start * g..queries.end * g;
        let rows = span.len();
        // P, recomputed from the scores and the forward pass's log-sum-exp.
        let p = &mut probs[..rows * n];
        products.scores(p, (Input::Queries, Input::Keys), &span, &part);
        for (r, row) in p.chunks_mut(n).enumerate() {
            let seen = seen_in_tile(vis, tile, queries.start + r / g, &part);
            rows::exponentiate(row, seen, scale, inputs.lse[span.start + r]);
        }
        // dV += Pᵀ dO
        products.add_turned(dv, (p, n), (Input::OutputGradients, &span), 1.0);
        // dS = P ∘ (dO Vᵀ − rowsum(dO ∘ O))
        let ds = &mut d_scores[..rows * n];
        let d_out_v = (Input::OutputGradients, Input::Values);
        products.scores(ds, d_out_v, &span, &part);
        for (r, (ds_row, p_row)) in ds.chunks_mut(n).zip(p.chunks(n)).enumerate() {
            rows::score_gradient(ds_row, p_row, inputs.delta[span.start + r]);
        }
        // dK += dSᵀ Q · scale; dQ += dS K · scale
        products.add_turned(dk, (ds, n), (Input::Queries, &span), scale);
        products.add_query_gradients(&mut dq[span.start * d..span.end * d], ds, &part, scale);
    }
}
