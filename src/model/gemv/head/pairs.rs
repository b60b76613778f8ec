//! The output projection's kernels for bf16 weights on `vdpbf16ps`, which
//! multiplies two pairs of bf16 values and adds both products into one f32
//! sum. Where the CPU does that at twice its f32 FMA rate (AMD Zen 4 and 5),
//! a bf16 model's training no longer widens the `[vocab, hidden]` weight to
//! f32 (a copy of twice its size, every step) nor multiplies in f32.
//!
//! The pairs run along the sum: for the logits, two adjacent hidden values
//! (the inputs are arranged as pairs of rows' values, the weight's pair is
//! where it lies); for the gradient, two adjacent weight rows, whose strip
//! of columns is interleaved into pairs once per block and read by every
//! tile of input rows.

use super::{
    AVX512_VECTORS, GRADIENT_DEPTH, GRADIENT_ROWS, GradientTask, Kernels, LOGITS_WEIGHTS,
    LogitsTask, gradient_tile_rows, logits_tiles,
};
use crate::model::gemv::x86::{Avx512, Lanes, prefetch_ahead};
use half::bf16;
use std::arch::x86_64::*;

/// Input rows a register holds.
const LANES: usize = 16;

/// The kernels, where the CPU has `vdpbf16ps` and multiplies bf16 pairs
/// faster than f32 (timed once per process, `gemv::panel`).
pub(super) fn kernels() -> Option<Kernels<u16>> {
    crate::model::gemv::panel::bf16_pairs_fast().then_some(Kernels {
        lanes: LANES,
        block: AVX512_VECTORS * LANES,
        arrange: transposed_pairs,
        logits,
        gradient,
    })
}

/// The bf16 bit pattern nearest `value`.
fn bits(value: f32) -> u32 {
    bf16::from_f32(value).to_bits() as u32
}

/// Two bf16 values as one 32-bit word, the first in the low half (the
/// order `vdpbf16ps` pairs them in).
fn word(first: u32, second: u32) -> f32 {
    f32::from_bits(first | second << 16)
}

/// `x` (`[rows, in_dim]`) as `super::transposed` lays it out, but each
/// value a pair of adjacent hidden values rounded to bf16: block `b` is
/// `[in_dim / 2, width]` words from `b * block * in_dim / 2`. Zeros past
/// the rows.
fn transposed_pairs(x: &[f32], in_dim: usize, padded: usize, block: usize) -> Vec<f32> {
    let half = in_dim / 2;
    let mut xt = vec![0f32; half * padded];
    for (i, row) in x.chunks_exact(in_dim).enumerate() {
        let start = i / block * block;
        let width = block.min(padded - start);
        let to = &mut xt[start * half..];
        for (k, pair) in row.chunks_exact(2).enumerate() {
            to[k * width + i - start] = word(bits(pair[0]), bits(pair[1]));
        }
    }
    xt
}

/// A register of 32 bf16 values from 64 bytes at `p`.
#[inline(always)]
unsafe fn load(p: *const f32) -> __m512bh {
    // SAFETY: the caller ensures 64 readable bytes; both types are 512 bits.
    unsafe { std::mem::transmute(_mm512_loadu_ps(p)) }
}

/// The 32-bit word at `p` in every lane.
#[inline(always)]
unsafe fn broadcast(p: *const u16) -> __m512bh {
    // SAFETY: the caller ensures 4 readable bytes.
    unsafe { std::mem::transmute(_mm512_set1_epi32(p.cast::<i32>().read_unaligned())) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn logits(task: &LogitsTask<u16>) {
    let (padded, in_dim) = (task.padded, task.in_dim);
    let count = task.w.len() / in_dim;
    for (first, weights, column, vectors) in logits_tiles(count, padded, LANES, AVX512_VECTORS) {
        // SAFETY: the tile's weight rows, columns and outputs lie within
        // the task's slices (`first + weights <= count`, `column +
        // vectors * LANES <= padded`).
        unsafe {
            let tile = LogitsTile {
                xt: task.xt.as_ptr().add(column * in_dim / 2),
                w: task.w.as_ptr().add(first * in_dim),
                out: task.out.add(first * padded + column),
                max: task.max.add(column),
            };
            match (weights, vectors) {
                (LOGITS_WEIGHTS, 4) => logits_tile::<4, LOGITS_WEIGHTS>(&tile, task),
                (LOGITS_WEIGHTS, 3) => logits_tile::<3, LOGITS_WEIGHTS>(&tile, task),
                (LOGITS_WEIGHTS, 2) => logits_tile::<2, LOGITS_WEIGHTS>(&tile, task),
                (LOGITS_WEIGHTS, _) => logits_tile::<1, LOGITS_WEIGHTS>(&tile, task),
                (_, 4) => logits_tile::<4, 1>(&tile, task),
                (_, 3) => logits_tile::<3, 1>(&tile, task),
                (_, 2) => logits_tile::<2, 1>(&tile, task),
                (_, _) => logits_tile::<1, 1>(&tile, task),
            }
        }
    }
}

/// One logits tile: `V` bf16 weight rows from `w` times `R` registers of
/// input rows' pairs from `xt`, stored at `out` and folded into `max`.
struct LogitsTile {
    xt: *const f32,
    w: *const u16,
    out: *mut f32,
    max: *mut f32,
}

#[inline(always)]
unsafe fn logits_tile<const R: usize, const V: usize>(tile: &LogitsTile, task: &LogitsTask<u16>) {
    let (padded, in_dim) = (task.padded, task.in_dim);
    // SAFETY (whole body): the caller keeps the tile within the task.
    unsafe {
        let mut sums = [[_mm512_setzero_ps(); R]; V];
        let mut xt = tile.xt;
        // The next tile's weight rows, a line of each every 32 values, as
        // the f32 tile does.
        let mut ahead = tile.w.wrapping_add(V * in_dim);
        for k in (0..in_dim).step_by(2) {
            if k % 32 == 0 {
                prefetch_ahead(ahead.cast(), V * 64);
                ahead = ahead.wrapping_add(32);
            }
            let mut x = [load(xt); R];
            for (r, x) in x.iter_mut().enumerate().skip(1) {
                *x = load(xt.add(r * LANES));
            }
            for (j, sums) in sums.iter_mut().enumerate() {
                let pair = broadcast(tile.w.add(j * in_dim + k));
                for r in 0..R {
                    sums[r] = _mm512_dpbf16_ps(sums[r], x[r], pair);
                }
            }
            xt = xt.add(R * LANES);
        }
        for r in 0..R {
            let mut max = Avx512::load(tile.max.add(r * LANES));
            for (j, sums) in sums.iter().enumerate() {
                Avx512::store(tile.out.add(j * padded + r * LANES), sums[r]);
                max = Avx512::max(max, sums[r]);
            }
            Avx512::store(tile.max.add(r * LANES), max);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn gradient(task: &GradientTask<u16>) {
    let (rows, padded, in_dim) = (task.rows, task.padded, task.in_dim);
    let count = task.w.len() / in_dim;
    let strip_width = AVX512_VECTORS * LANES;
    let mut scaled = vec![0f32; GRADIENT_DEPTH / 2 * rows];
    let mut strips = vec![0f32; GRADIENT_DEPTH / 2 * in_dim];
    let mut words = vec![0f32; padded];
    for first in (0..count).step_by(GRADIENT_DEPTH) {
        let depth = (count - first).min(GRADIENT_DEPTH);
        let pairs = depth.div_ceil(2);
        let block = &task.scaled[first * padded..(first + depth) * padded];
        // SAFETY (both): the CPU has avx512f and avx512bf16 (the caller's
        // features); the buffers hold `pairs` pairs of rows.
        unsafe {
            pack_scaled(block, padded, rows, &mut words, &mut scaled[..pairs * rows]);
            pack_strips(
                &task.w[first * in_dim..(first + depth) * in_dim],
                in_dim,
                &mut strips,
            );
        }
        for column in (0..in_dim).step_by(strip_width) {
            let vectors = ((in_dim - column) / LANES).min(AVX512_VECTORS);
            let width = vectors * LANES;
            let mut row = 0;
            while row < rows {
                let tile_rows = gradient_tile_rows(rows - row);
                // SAFETY: the tile's rows, columns and pairs lie within the
                // task's output and the packed blocks.
                unsafe {
                    let tile = GradientTile {
                        scaled: scaled.as_ptr().add(row * pairs),
                        strip: strips.as_ptr().add(pairs * column),
                        width,
                        out: task.out.add(row * in_dim + column),
                        pairs,
                    };
                    match (tile_rows, vectors) {
                        (GRADIENT_ROWS, 4) => gradient_tile::<4, GRADIENT_ROWS>(&tile, in_dim),
                        (GRADIENT_ROWS, 3) => gradient_tile::<3, GRADIENT_ROWS>(&tile, in_dim),
                        (GRADIENT_ROWS, 2) => gradient_tile::<2, GRADIENT_ROWS>(&tile, in_dim),
                        (GRADIENT_ROWS, _) => gradient_tile::<1, GRADIENT_ROWS>(&tile, in_dim),
                        (_, 4) => gradient_tile::<4, 1>(&tile, in_dim),
                        (_, 3) => gradient_tile::<3, 1>(&tile, in_dim),
                        (_, 2) => gradient_tile::<2, 1>(&tile, in_dim),
                        (_, _) => gradient_tile::<1, 1>(&tile, in_dim),
                    }
                }
                row += tile_rows;
            }
        }
    }
}

/// `block` (`[depth, padded]`, a weight row's scaled softmax per input row)
/// as pairs of adjacent weight rows rounded to bf16, tile by tile: the tile
/// from row `r` of `n` rows at `packed[r * pairs..]`, `[pairs, n]` words. An
/// odd last weight row is paired with zero. `words` holds `padded` values
/// of scratch. The CPU has avx512f and avx512bf16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_scaled(
    block: &[f32],
    padded: usize,
    rows: usize,
    words: &mut [f32],
    packed: &mut [f32],
) {
    let depth = block.len() / padded;
    let pairs = depth.div_ceil(2);
    for m in 0..pairs {
        let low = &block[2 * m * padded..][..padded];
        let high = (2 * m + 1 < depth).then(|| &block[(2 * m + 1) * padded..][..padded]);
        for i in (0..padded).step_by(LANES) {
            // SAFETY: `padded` is a multiple of 16, so 16 values from `i`
            // lie in both rows and in `words`.
            unsafe {
                let first = rounded(low.as_ptr().add(i));
                let second = match high {
                    Some(high) => rounded(high.as_ptr().add(i)),
                    None => _mm512_setzero_si512(),
                };
                let pair = _mm512_or_si512(first, _mm512_slli_epi32::<16>(second));
                _mm512_storeu_si512(words.as_mut_ptr().add(i).cast(), pair);
            }
        }
        let mut row = 0;
        while row < rows {
            let n = gradient_tile_rows(rows - row);
            packed[row * pairs + m * n..][..n].copy_from_slice(&words[row..row + n]);
            row += n;
        }
    }
}

/// The weight rows of `block` (`[depth, in_dim]` bf16) as pairs of
/// adjacent rows, strip by strip of 64 columns (the last may be narrower):
/// the strip from column `c` at `strips[pairs * c..]`, `[pairs, width]`
/// words. An odd last row is paired with zero. Rows are read in order, so
/// the hardware's prefetchers follow. `in_dim` is a multiple of 16, and the
/// CPU has avx512f.
#[target_feature(enable = "avx512f")]
unsafe fn pack_strips(block: &[u16], in_dim: usize, strips: &mut [f32]) {
    let depth = block.len() / in_dim;
    let pairs = depth.div_ceil(2);
    let strip_width = AVX512_VECTORS * LANES;
    for m in 0..pairs {
        let first = &block[2 * m * in_dim..][..in_dim];
        let second = (2 * m + 1 < depth).then(|| &block[(2 * m + 1) * in_dim..][..in_dim]);
        for c in (0..in_dim).step_by(LANES) {
            let (strip, within) = (c / strip_width * strip_width, c % strip_width);
            let width = strip_width.min(in_dim - strip);
            // SAFETY: 16 values from `c` lie in both rows; the word's place
            // lies in the strip's row pair `m`.
            unsafe {
                let low = widened(first.as_ptr().add(c));
                let high = match second {
                    Some(second) => widened(second.as_ptr().add(c)),
                    None => _mm512_setzero_si512(),
                };
                let words = _mm512_or_si512(low, _mm512_slli_epi32::<16>(high));
                let at = pairs * strip + m * width + within;
                _mm512_storeu_si512(strips.as_mut_ptr().add(at).cast(), words);
            }
        }
    }
}

/// 16 bf16 values from `p`, each in the low half of a 32-bit lane. A
/// function, not a closure: a closure would be compiled without the
/// caller's target features.
#[inline(always)]
unsafe fn widened(p: *const u16) -> __m512i {
    // SAFETY: the caller ensures 32 readable bytes.
    unsafe { _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())) }
}

/// 16 f32 values from `p` rounded to bf16, each in the low half of a
/// 32-bit lane.
#[inline(always)]
unsafe fn rounded(p: *const f32) -> __m512i {
    // SAFETY: the caller ensures 64 readable bytes and the features.
    unsafe {
        let narrow = _mm512_cvtneps_pbh(_mm512_loadu_ps(p));
        _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(narrow))
    }
}

/// One gradient tile: `V` input rows times `R` registers of a packed strip
/// of columns over `pairs` pairs of weight rows; `scaled` is the rows'
/// packed pairs (`[pairs, V]`), `out` the first row's first column.
struct GradientTile {
    scaled: *const f32,
    strip: *const f32,
    width: usize,
    out: *mut f32,
    pairs: usize,
}

#[inline(always)]
unsafe fn gradient_tile<const R: usize, const V: usize>(tile: &GradientTile, in_dim: usize) {
    // SAFETY (whole body): the caller keeps the tile within the task.
    unsafe {
        let mut sums = [[_mm512_setzero_ps(); R]; V];
        let (mut scaled, mut strip) = (tile.scaled, tile.strip);
        for _ in 0..tile.pairs {
            let mut weights = [load(strip); R];
            for (r, weights) in weights.iter_mut().enumerate().skip(1) {
                *weights = load(strip.add(r * LANES));
            }
            for (j, sums) in sums.iter_mut().enumerate() {
                let factor = broadcast(scaled.add(j).cast());
                for r in 0..R {
                    sums[r] = _mm512_dpbf16_ps(sums[r], weights[r], factor);
                }
            }
            scaled = scaled.add(V);
            strip = strip.add(tile.width);
        }
        for (j, sums) in sums.iter().enumerate() {
            for (r, &sum) in sums.iter().enumerate() {
                let at = tile.out.add(j * in_dim + r * LANES);
                Avx512::store(at, Avx512::add(Avx512::load(at), sum));
            }
        }
    }
}
