//! Training's cross-entropy through the output projection, in f32 on
//! AVX-512 or AVX2 registers: the logits of a block of rows, their softmax
//! and the gradient back to the rows, without packing the weight.
//!
//! The weight is `[vocab, hidden]` and tall (152k rows at Qwen2.5's
//! vocabulary); the rows are few (a chunk of at most a few hundred). A
//! general matrix product packs the weight into its own layout on every
//! call, reading and writing all of it (gemm's f32 kernel reached 65% of
//! the FMA peak here). These kernels put the rows in the vector lanes
//! instead: the inputs are transposed once (a few hundred KB), and the
//! weight is read where it lies, one value broadcast into a register at a
//! time. So the logits come out weight-row-major (`[vocab, rows]`, a
//! register of rows per weight row), the softmax runs down the columns
//! with whole registers, and the gradient, `Σ_v dlogits[v] ⊗ w[v]`, walks
//! the weight's rows in order again, its registers along the hidden size.

use super::x86::{Avx2, Avx512, Lanes, prefetch_ahead};
use crate::model::exp::exp;
use crate::model::softmax_rows::scale;
use crate::model::wide::widest;
use rayon::prelude::*;

mod pairs;

/// Weight rows a task of the logits or softmax pass takes.
const TASK_ROWS: usize = 1536;

/// Weight rows the gradient's tiles run over before adding their sums to
/// memory. A strip of a block's columns is 64 rows of four cache lines at
/// the weight's row stride, which maps them onto few L1 sets (a 896-wide
/// row is 56 lines): at 128 rows they no longer fit those sets' ways.
const GRADIENT_DEPTH: usize = 64;

/// Gradient tasks per thread, each with its own sums (a few hundred KB).
const GRADIENT_TASKS_PER_THREAD: usize = 2;

/// The kernels for this CPU and weights of `W`, with the number of rows
/// one register holds.
struct Kernels<W> {
    lanes: usize,
    /// Input rows a logits tile takes: a block of [`transposed`].
    block: usize,
    /// The input rows as the logits tiles read them: [`transposed`], or
    /// its pairs for bf16 weights.
    arrange: fn(&[f32], usize, usize, usize) -> Vec<f32>,
    logits: unsafe fn(&LogitsTask<W>),
    gradient: unsafe fn(&GradientTask<W>),
}

impl<W> Clone for Kernels<W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for Kernels<W> {}

impl Kernels<f32> {
    /// Every set of kernels this CPU can run, widest first.
    fn on_cpu() -> Vec<Kernels<f32>> {
        let mut found = Vec::new();
        if is_x86_feature_detected!("avx512f") {
            found.push(Kernels {
                lanes: Avx512::WIDTH,
                block: AVX512_VECTORS * Avx512::WIDTH,
                arrange: transposed,
                logits: logits_avx512,
                gradient: gradient_avx512,
            });
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            found.push(Kernels {
                lanes: Avx2::WIDTH,
                block: AVX2_VECTORS * Avx2::WIDTH,
                arrange: transposed,
                logits: logits_avx2,
                gradient: gradient_avx2,
            });
        }
        found
    }

    fn for_cpu() -> Option<Kernels<f32>> {
        Self::on_cpu().first().copied()
    }
}

/// Whether [`cross_entropy`] runs on this CPU for rows `in_dim` wide.
pub fn available(in_dim: usize) -> bool {
    Kernels::for_cpu().is_some_and(|k| in_dim > 0 && in_dim.is_multiple_of(k.lanes))
}

/// Each row's cross-entropy loss against its target and the loss's
/// gradient with respect to the row (`[rows, in_dim]`), for the rows `x`
/// (`targets.len()` rows of `in_dim`) times the f32 weight `w` (`[vocab,
/// in_dim]`). The caller checks [`available`] and that targets are below
/// the vocabulary.
pub fn cross_entropy(x: &[f32], w: &[f32], in_dim: usize, targets: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let kernels = Kernels::for_cpu().expect("the caller checks `available`");
    cross_entropy_on(kernels, x, w, in_dim, targets)
}

/// [`cross_entropy`] for bf16 weights (their bit patterns), on
/// `vdpbf16ps`: the rows and the softmax's gradient are rounded to bf16 on
/// the way in, the sums are f32. The caller checks [`available_bf16`].
pub fn cross_entropy_bf16(
    x: &[f32],
    w: &[u16],
    in_dim: usize,
    targets: &[u32],
) -> (Vec<f32>, Vec<f32>) {
    let kernels = pairs::kernels().expect("the caller checks `available_bf16`");
    cross_entropy_on(kernels, x, w, in_dim, targets)
}

/// Whether [`cross_entropy_bf16`] runs on this CPU for rows `in_dim` wide:
/// it has `vdpbf16ps` and multiplies bf16 pairs faster than f32.
pub fn available_bf16(in_dim: usize) -> bool {
    pairs::kernels().is_some_and(|k| in_dim > 0 && in_dim.is_multiple_of(k.lanes))
}

fn cross_entropy_on<W: Copy + Sync>(
    kernels: Kernels<W>,
    x: &[f32],
    w: &[W],
    in_dim: usize,
    targets: &[u32],
) -> (Vec<f32>, Vec<f32>) {
    let (rows, vocab) = (targets.len(), w.len() / in_dim);
    assert!(in_dim.is_multiple_of(kernels.lanes) && x.len() == rows * in_dim);
    let padded = rows.next_multiple_of(kernels.lanes);
    let xt = (kernels.arrange)(x, in_dim, padded, kernels.block);

    // Every value is written by the tiles before it is read: zeroing 78 MB
    // (Qwen2.5's vocabulary, 128 rows) first cost 5-10 ms a chunk.
    let mut logits: Vec<f32> = Vec::with_capacity(vocab * padded);
    let maxima: Vec<Vec<f32>> = logits.spare_capacity_mut()[..vocab * padded]
        .par_chunks_mut(TASK_ROWS * padded)
        .enumerate()
        .map(|(t, out)| {
            let first = t * TASK_ROWS;
            let count = out.len() / padded;
            let mut max = vec![f32::NEG_INFINITY; padded];
            let task = LogitsTask {
                xt: &xt,
                padded,
                w: &w[first * in_dim..(first + count) * in_dim],
                in_dim,
                out: out.as_mut_ptr().cast(),
                max: max.as_mut_ptr(),
            };
            // SAFETY: the CPU has the kernels' features (`for_cpu`); `out`
            // holds `count` rows of `padded` and `max` one of `padded`.
            unsafe { (kernels.logits)(&task) };
            max
        })
        .collect();
    // SAFETY: the tiles wrote every one of the values (`logits_in` covers
    // each weight row and each column of the padded rows).
    unsafe { logits.set_len(vocab * padded) };
    let max = combine(maxima, padded, f32::max);
    let picked: Vec<f32> = (0..rows)
        .map(|i| logits[targets[i] as usize * padded + i])
        .collect();

    let sums: Vec<Vec<f32>> = logits
        .par_chunks_mut(TASK_ROWS * padded)
        .map(|block| {
            let mut sums = vec![0f32; padded];
            exponentiate_columns(block, &max, &mut sums);
            sums
        })
        .collect();
    let sum = combine(sums, padded, |a, b| a + b);
    // `logits` now holds exp(l - max): the softmax times each row's sum.
    // Take that sum off at the target, so the products below give the
    // gradient times the sum, which is divided out once at the end.
    for (i, &t) in targets.iter().enumerate() {
        logits[t as usize * padded + i] -= sum[i];
    }

    let mut drows = weighted_rows_on(kernels, &logits, padded, rows, w, in_dim);
    drows
        .par_chunks_mut(in_dim)
        .zip(&sum)
        .for_each(|(row, &s)| scale(row, 1.0 / s));
    let losses = (0..rows)
        .map(|i| sum[i].ln() + max[i] - picked[i])
        .collect();
    (losses, drows)
}

/// `out[i * in_dim + c] = Σ_v scaled[v * padded + i] · w[v * in_dim + c]`
/// for the first `rows` of the `padded` columns of `scaled` (`[vocab,
/// padded]`): the weight's rows weighted by each column, in parallel over
/// spans of the weight's rows.
fn weighted_rows_on<W: Copy + Sync>(
    kernels: Kernels<W>,
    scaled: &[f32],
    padded: usize,
    rows: usize,
    w: &[W],
    in_dim: usize,
) -> Vec<f32> {
    let vocab = w.len() / in_dim;
    let tasks = (rayon::current_num_threads() * GRADIENT_TASKS_PER_THREAD).min(vocab.max(1));
    let share = vocab.div_ceil(tasks);
    let partials: Vec<Vec<f32>> = (0..tasks)
        .into_par_iter()
        .map(|t| {
            let (first, end) = ((t * share).min(vocab), ((t + 1) * share).min(vocab));
            let mut out = vec![0f32; rows * in_dim];
            let task = GradientTask {
                scaled: &scaled[first * padded..end * padded],
                padded,
                rows,
                w: &w[first * in_dim..end * in_dim],
                in_dim,
                out: out.as_mut_ptr(),
            };
            // SAFETY: the CPU has the kernels' features; `out` holds `rows`
            // rows of `in_dim`.
            unsafe { (kernels.gradient)(&task) };
            out
        })
        .collect();
    combine(partials, rows * in_dim, |a, b| a + b)
}

/// `x` (`[rows, in_dim]`) transposed a block of `block` rows at a time
/// (the last block holds what is left of `padded`): block `b` is
/// `[in_dim, width]` from `b * block * in_dim`, so a tile reads its
/// inputs in order. Zeros past the rows.
fn transposed(x: &[f32], in_dim: usize, padded: usize, block: usize) -> Vec<f32> {
    let mut xt = vec![0f32; in_dim * padded];
    for (i, row) in x.chunks_exact(in_dim).enumerate() {
        let start = i / block * block;
        let width = block.min(padded - start);
        let to = &mut xt[start * in_dim..];
        for (k, &value) in row.iter().enumerate() {
            to[k * width + i - start] = value;
        }
    }
    xt
}

/// The element-wise `op` of equal-length vectors.
fn combine(parts: Vec<Vec<f32>>, len: usize, op: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_else(|| vec![0f32; len]);
    for part in parts {
        out.iter_mut().zip(&part).for_each(|(o, &p)| *o = op(*o, p));
    }
    out
}

widest! {
    /// Each row of `block` (a row per weight row, a column per input row)
    /// turned into `exp(l - max)`, column by column, and added to `sums`.
    fn exponentiate_columns(block: &mut [f32], max: &[f32], sums: &mut [f32]) {
        for row in block.chunks_exact_mut(max.len()) {
            for ((l, &m), s) in row.iter_mut().zip(max).zip(sums.iter_mut()) {
                *l = exp(*l - m);
                *s += *l;
            }
        }
    }
}

/// A logits task: `out[v * padded + i] = w_v · x_i` for the task's weight
/// rows, and each column's largest value folded into `max`.
struct LogitsTask<'a, W> {
    /// The input rows transposed by blocks ([`transposed`]), or their
    /// pairs' bit patterns.
    xt: &'a [f32],
    padded: usize,
    w: &'a [W],
    in_dim: usize,
    out: *mut f32,
    max: *mut f32,
}

/// A gradient task: `out[i * in_dim + c] += Σ_v scaled[v * padded + i] ·
/// w[v * in_dim + c]` over the task's weight rows.
struct GradientTask<'a, W> {
    scaled: &'a [f32],
    padded: usize,
    rows: usize,
    w: &'a [W],
    in_dim: usize,
    out: *mut f32,
}

/// Registers a tile spans: of input rows in a logits tile (64 rows on
/// AVX-512), of columns in a gradient tile. Times the tiles' 6 rows, 24
/// registers of sums of the 32 on AVX-512, 12 of the 16 on AVX2.
const AVX512_VECTORS: usize = 4;
const AVX2_VECTORS: usize = 2;

/// Weight rows a logits tile takes.
const LOGITS_WEIGHTS: usize = 6;

/// Input rows a gradient tile takes.
const GRADIENT_ROWS: usize = 6;

#[target_feature(enable = "avx512f")]
unsafe fn logits_avx512(task: &LogitsTask<f32>) {
    // SAFETY: as the caller's.
    unsafe { logits_in::<Avx512, AVX512_VECTORS>(task) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn logits_avx2(task: &LogitsTask<f32>) {
    // SAFETY: as the caller's.
    unsafe { logits_in::<Avx2, AVX2_VECTORS>(task) }
}

#[target_feature(enable = "avx512f")]
unsafe fn gradient_avx512(task: &GradientTask<f32>) {
    // SAFETY: as the caller's.
    unsafe { gradient_in::<Avx512, AVX512_VECTORS>(task) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn gradient_avx2(task: &GradientTask<f32>) {
    // SAFETY: as the caller's.
    unsafe { gradient_in::<Avx2, AVX2_VECTORS>(task) }
}

/// One logits tile: `V` weight rows from `w` times `R` registers of input
/// rows from `xt`, stored at `out` and folded into `max`.
struct LogitsTile {
    xt: *const f32,
    w: *const f32,
    out: *mut f32,
    max: *mut f32,
}

#[inline(always)]
unsafe fn logits_in<L: Lanes, const R: usize>(task: &LogitsTask<f32>) {
    let (padded, in_dim) = (task.padded, task.in_dim);
    let count = task.w.len() / in_dim;
    for (first, weights, column, vectors) in logits_tiles(count, padded, L::WIDTH, R) {
        // SAFETY: the tile's weight rows, columns and outputs lie
        // within the task's slices (`first + weights <= count`,
        // `column + vectors * WIDTH <= padded`).
        unsafe {
            let tile = LogitsTile {
                xt: task.xt.as_ptr().add(column * in_dim),
                w: task.w.as_ptr().add(first * in_dim),
                out: task.out.add(first * padded + column),
                max: task.max.add(column),
            };
            match (weights, vectors) {
                (LOGITS_WEIGHTS, 4) => logits_tile::<L, 4, LOGITS_WEIGHTS>(&tile, task),
                (LOGITS_WEIGHTS, 3) => logits_tile::<L, 3, LOGITS_WEIGHTS>(&tile, task),
                (LOGITS_WEIGHTS, 2) => logits_tile::<L, 2, LOGITS_WEIGHTS>(&tile, task),
                (LOGITS_WEIGHTS, _) => logits_tile::<L, 1, LOGITS_WEIGHTS>(&tile, task),
                (_, 4) => logits_tile::<L, 4, 1>(&tile, task),
                (_, 3) => logits_tile::<L, 3, 1>(&tile, task),
                (_, 2) => logits_tile::<L, 2, 1>(&tile, task),
                (_, _) => logits_tile::<L, 1, 1>(&tile, task),
            }
        }
    }
}

/// The logits tiles over `count` weight rows and `padded` input rows:
/// (first weight row, weight rows, first input row, registers of input rows),
/// [`LOGITS_WEIGHTS`] weight rows at a time and then one, up to `vectors`
/// registers of `lanes` rows.
fn logits_tiles(
    count: usize,
    padded: usize,
    lanes: usize,
    vectors: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let whole = count / LOGITS_WEIGHTS * LOGITS_WEIGHTS;
    let firsts = (0..whole)
        .step_by(LOGITS_WEIGHTS)
        .map(|f| (f, LOGITS_WEIGHTS));
    let firsts = firsts.chain((whole..count).map(|f| (f, 1)));
    firsts.flat_map(move |(first, weights)| {
        let columns = (0..padded).step_by(vectors * lanes);
        columns.map(move |column| {
            let n = ((padded - column) / lanes).min(vectors);
            (first, weights, column, n)
        })
    })
}

#[inline(always)]
unsafe fn logits_tile<L: Lanes, const R: usize, const V: usize>(
    tile: &LogitsTile,
    task: &LogitsTask<f32>,
) {
    let (padded, in_dim) = (task.padded, task.in_dim);
    // SAFETY (whole body): the caller keeps the tile within the task.
    unsafe {
        let mut sums = [[L::zero(); R]; V];
        let (mut xt, mut w) = (tile.xt, tile.w);
        // The next tile's weight rows follow this tile's: fetch them from
        // memory meanwhile, V lines every 16 inputs (the hardware's
        // prefetchers alone left the first pass over the weight ~20%
        // slower than over cached weights).
        let mut ahead = tile.w.wrapping_add(V * in_dim);
        for k in 0..in_dim {
            if k % 16 == 0 {
                prefetch_ahead(ahead.cast(), V * 64);
                ahead = ahead.wrapping_add(V * 16);
            }
            let mut x = [L::zero(); R];
            for (r, x) in x.iter_mut().enumerate() {
                *x = L::load(xt.add(r * L::WIDTH));
            }
            for (j, sums) in sums.iter_mut().enumerate() {
                let weight = L::splat(*w.add(j * in_dim));
                for r in 0..R {
                    sums[r] = L::fmadd(x[r], weight, sums[r]);
                }
            }
            xt = xt.add(R * L::WIDTH);
            w = w.add(1);
        }
        for r in 0..R {
            let mut max = L::load(tile.max.add(r * L::WIDTH));
            for (j, sums) in sums.iter().enumerate() {
                L::store(tile.out.add(j * padded + r * L::WIDTH), sums[r]);
                max = L::max(max, sums[r]);
            }
            L::store(tile.max.add(r * L::WIDTH), max);
        }
    }
}

/// One gradient tile: `V` input rows times `R` registers of columns over
/// a block of weight rows; `scaled` is the rows' packed block
/// (`[depth, V]`), `w` the first weight row's first column, `out` the
/// first row's first column.
struct GradientTile {
    scaled: *const f32,
    w: *const f32,
    out: *mut f32,
    depth: usize,
}

#[inline(always)]
unsafe fn gradient_in<L: Lanes, const R: usize>(task: &GradientTask<f32>) {
    let (rows, padded, in_dim) = (task.rows, task.padded, task.in_dim);
    let count = task.w.len() / in_dim;
    let mut packed = vec![0f32; GRADIENT_DEPTH * rows];
    for first in (0..count).step_by(GRADIENT_DEPTH) {
        let depth = (count - first).min(GRADIENT_DEPTH);
        pack_gradient_block(
            &task.scaled[first * padded..(first + depth) * padded],
            padded,
            rows,
            &mut packed,
        );
        for column in (0..in_dim).step_by(R * L::WIDTH) {
            let vectors = ((in_dim - column) / L::WIDTH).min(R);
            // Each tile fetches a share of the weights the next strip of
            // columns takes (the next block's first strip after the last):
            // the first tile over a strip waited on memory for them.
            let next = if column + R * L::WIDTH < in_dim {
                first * in_dim + column + R * L::WIDTH
            } else {
                (first + depth) * in_dim
            };
            let share = depth.div_ceil(rows.div_ceil(GRADIENT_ROWS));
            let mut fetched = 0;
            let mut row = 0;
            while row < rows {
                let tile_rows = gradient_tile_rows(rows - row);
                for v in fetched..(fetched + share).min(depth) {
                    let at = task.w.as_ptr().wrapping_add(next + v * in_dim);
                    // SAFETY: prefetching reads nothing the program sees.
                    unsafe { prefetch_ahead(at.cast(), R * L::WIDTH * 4) };
                }
                fetched += share;
                // SAFETY: the tile's rows, columns and weight rows lie
                // within the task's slices and the packed block.
                unsafe {
                    let tile = GradientTile {
                        scaled: packed.as_ptr().add(row * depth),
                        w: task.w.as_ptr().add(first * in_dim + column),
                        out: task.out.add(row * in_dim + column),
                        depth,
                    };
                    match (tile_rows, vectors) {
                        (GRADIENT_ROWS, 4) => gradient_tile::<L, 4, GRADIENT_ROWS>(&tile, in_dim),
                        (GRADIENT_ROWS, 3) => gradient_tile::<L, 3, GRADIENT_ROWS>(&tile, in_dim),
                        (GRADIENT_ROWS, 2) => gradient_tile::<L, 2, GRADIENT_ROWS>(&tile, in_dim),
                        (GRADIENT_ROWS, _) => gradient_tile::<L, 1, GRADIENT_ROWS>(&tile, in_dim),
                        (_, 4) => gradient_tile::<L, 4, 1>(&tile, in_dim),
                        (_, 3) => gradient_tile::<L, 3, 1>(&tile, in_dim),
                        (_, 2) => gradient_tile::<L, 2, 1>(&tile, in_dim),
                        (_, _) => gradient_tile::<L, 1, 1>(&tile, in_dim),
                    }
                }
                row += tile_rows;
            }
        }
    }
}

/// Rows the gradient tile starting with `left` rows to go takes.
fn gradient_tile_rows(left: usize) -> usize {
    if left >= GRADIENT_ROWS {
        GRADIENT_ROWS
    } else {
        1
    }
}

/// `block` (`[depth, padded]`, a weight row's scaled softmax per input
/// row) laid out tile by tile: the tile from row `r` of `n` rows at
/// `packed[r * depth..]`, weight row by weight row. A tile's values sit
/// at a 512-byte stride in the block (128 rows), which maps them onto a
/// few L1 sets; packed they are consecutive.
fn pack_gradient_block(block: &[f32], padded: usize, rows: usize, packed: &mut [f32]) {
    let depth = block.len() / padded;
    let mut row = 0;
    while row < rows {
        let n = gradient_tile_rows(rows - row);
        let tile = &mut packed[row * depth..(row + n) * depth];
        for (to, from) in tile.chunks_exact_mut(n).zip(block.chunks_exact(padded)) {
            to.copy_from_slice(&from[row..row + n]);
        }
        row += n;
    }
}

#[inline(always)]
unsafe fn gradient_tile<L: Lanes, const R: usize, const V: usize>(
    tile: &GradientTile,
    in_dim: usize,
) {
    // SAFETY (whole body): the caller keeps the tile within the task.
    unsafe {
        let mut sums = [[L::zero(); R]; V];
        let (mut scaled, mut w) = (tile.scaled, tile.w);
        for _ in 0..tile.depth {
            let mut weights = [L::zero(); R];
            for (r, weights) in weights.iter_mut().enumerate() {
                *weights = L::load(w.add(r * L::WIDTH));
            }
            for (j, sums) in sums.iter_mut().enumerate() {
                let factor = L::splat(*scaled.add(j));
                for r in 0..R {
                    sums[r] = L::fmadd(factor, weights[r], sums[r]);
                }
            }
            scaled = scaled.add(V);
            w = w.add(in_dim);
        }
        for (j, sums) in sums.iter().enumerate() {
            for (r, &sum) in sums.iter().enumerate() {
                let at = tile.out.add(j * in_dim + r * L::WIDTH);
                L::store(at, L::add(L::load(at), sum));
            }
        }
    }
}

#[cfg(test)]
mod tests;
