//! Many input rows (a prompt) times a block of f32 or bf16 weights, as
//! outer products on f32 multiply-adds.
//!
//! The GEMV kernels take a dot product per (row, output), each ending in
//! a horizontal sum, and load as many values as they multiply. Here a
//! task first copies its block of weights, widened to f32, into strips of
//! one register of outputs each, laid out input by input. A register of
//! sums then holds one input row's sums for a strip's outputs: each step
//! broadcasts one input of each of 8 rows and multiplies it into three
//! strips (24 registers of sums on AVX-512, 4 rows on AVX2), and nothing
//! is reduced at the end. The copy reads the block once; the rows share it
//! from cache.
//!
//! bf16 weights are widened in the copy unless the inputs are bf16 values
//! too (a bf16 model's activations) and the CPU multiplies bf16 pairs
//! faster than f32 (`pairs::fast`): then the copy keeps the weights' bf16
//! pairs and each step multiplies a broadcast pair of inputs into them with
//! `vdpbf16ps`, two inputs per instruction. That ran at 1.3 G
//! instructions/s on the Xeon measured (81 GFLOP/s per core, against 168
//! for f32 FMA) but at twice the FMA rate on a Zen 5 EPYC.
//!
//! A row's sums run input after input whatever rows are beside it, so a
//! row's result does not depend on them.

mod halves;
mod pairs;
mod sequence;
pub(crate) mod tiles;

use super::Element;
use super::x86::{Avx2, Avx512, Lanes};
pub(super) use pairs::{
    fast as bf16_pairs_fast, products as products_of_bf16_pairs, words as pair_words,
};
use std::mem::MaybeUninit;

/// Whether a sequence's products over a bf16 weight have a kernel here,
/// the weight's rows `paired` inputs long (even, for pairs).
pub(super) fn sequence_takes(paired: usize) -> bool {
    halves_fast() || (bf16_pairs_fast() && paired.is_multiple_of(2))
}

/// Whether the sequence kernels take fp16 multiply-adds (`halves.rs`).
pub(super) fn halves_fast() -> bool {
    halves::fast()
}

/// `x @ w.T` for f32 rows `x` and a bf16 weight `w` `[out, in_dim]`, on
/// fp16 multiply-adds where those are the fast route, else on bf16 pairs.
pub(super) fn sequence_times_transposed(x: &[f32], w: &[u16], in_dim: usize) -> Vec<f32> {
    match halves::fast() {
        true => halves::times_transposed(x, w, in_dim),
        false => sequence::times_transposed(x, w, in_dim),
    }
}

/// `g @ w`, as [`sequence_times_transposed`] chooses its kernel.
pub(super) fn sequence_times(g: &[f32], w: &[u16], in_dim: usize) -> Vec<f32> {
    match halves::fast() {
        true => halves::times(g, w, in_dim),
        false => sequence::times(g, w, in_dim),
    }
}

/// Strips one kernel call takes.
const STRIPS: usize = 3;

/// Inputs a kernel call takes: a group of strips' weights for them (`DEPTH
/// * 3 * 64` bytes on AVX-512) stay in L1 while the rows pass.
const DEPTH: usize = 128;

/// Bytes of input rows a task keeps in cache while every strip of its
/// block passes over them.
const ROW_BLOCK_BYTES: usize = 512 << 10;

/// Whether this CPU has a panel kernel.
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        || (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// `out[r * m + j] = x_r · w_j` for the `n` rows `x_r` of `inputs` (`n *
/// in_dim` values) and the `m` weight rows `w_j` of `weights`. The caller
/// checks [`available`].
pub(super) fn products<W: Element>(inputs: &[f32], weights: &[W], in_dim: usize, out: &mut [f32]) {
    let (n, m) = (inputs.len() / in_dim, weights.len() / in_dim);
    assert!(inputs.len() == n * in_dim && weights.len() == m * in_dim && out.len() == n * m);
    // SAFETY (both): the CPU has the features the function is compiled for;
    // the lengths were checked above.
    if is_x86_feature_detected!("avx512f") {
        unsafe { products_avx512(inputs, weights, in_dim, out) }
    } else {
        unsafe { products_avx2(inputs, weights, in_dim, out) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn products_avx512<W: Element>(inputs: &[f32], w: &[W], in_dim: usize, out: &mut [f32]) {
    let mut packed = Vec::new();
    // SAFETY: the CPU has avx512f; the caller checked the lengths.
    unsafe { pack::<Avx512, W>(w, in_dim, &mut packed) };
    unsafe { products_in::<Avx512, Fma>(inputs, &packed, in_dim, places(out)) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn products_avx2<W: Element>(inputs: &[f32], w: &[W], in_dim: usize, out: &mut [f32]) {
    let mut packed = Vec::new();
    // SAFETY: the CPU has avx2 and fma; the caller checked the lengths.
    unsafe { pack::<Avx2, W>(w, in_dim, &mut packed) };
    unsafe { products_in::<Avx2, Fma>(inputs, &packed, in_dim, places(out)) }
}

/// How a kernel step multiplies a broadcast input into a register of
/// packed weights and adds the result to a register of sums.
trait Multiply<L: Lanes> {
    unsafe fn madd(input: L::V, weights: L::V, sums: L::V) -> L::V;
}

/// f32 inputs times f32 weights.
struct Fma;

impl<L: Lanes> Multiply<L> for Fma {
    #[inline(always)]
    unsafe fn madd(input: L::V, weights: L::V, sums: L::V) -> L::V {
        unsafe { L::fmadd(input, weights, sums) }
    }
}

/// `out` as places the kernels write to.
fn places(out: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: the same layout; only f32 values are written through it, so
    // `out` stays initialised.
    unsafe { &mut *(out as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// [`products`] of `inputs` (rows of `in_dim` values, `in_dim` > 0) with a
/// block that [`pack`] laid out, on L's registers multiplied by M: the
/// usual blocking of a matrix product: rows a cache-sized block at a time,
/// inputs [`DEPTH`] at a time, so that each group of strips' part for those
/// inputs stays in L1 while every group of rows passes under it. Every
/// output is written by its first block of inputs before anything reads
/// it, so `out` may start uninitialised (a fresh result need not be zeroed
/// first).
#[inline(always)]
unsafe fn products_in<L: Lanes, M: Multiply<L>>(
    inputs: &[f32],
    packed: &[f32],
    in_dim: usize,
    out: &mut [MaybeUninit<f32>],
) {
    assert!(in_dim > 0, "a product over no inputs");
    let n = inputs.len() / in_dim;
    let m = out.len() / n.max(1);
    let group_width = STRIPS * L::WIDTH;
    let row_block = (ROW_BLOCK_BYTES / (in_dim * 4)).max(L::PANEL_ROWS);
    for first_row in (0..n).step_by(row_block) {
        let block_end = (first_row + row_block).min(n);
        for first_input in (0..in_dim).step_by(DEPTH) {
            let depth = (in_dim - first_input).min(DEPTH);
            for first_column in (0..m).step_by(group_width) {
                let columns = (m - first_column).min(group_width);
                let strips = columns.div_ceil(L::WIDTH);
                let group = &packed[first_column * in_dim..];
                for row in (first_row..block_end).step_by(L::PANEL_ROWS) {
                    let tile = Tile {
                        x: inputs[row * in_dim + first_input..].as_ptr(),
                        in_dim,
                        depth,
                        w: group[first_input * strips * L::WIDTH..].as_ptr(),
                        out: out[row * m + first_column..].as_mut_ptr().cast(),
                        out_stride: m,
                        columns,
                        add: first_input > 0,
                    };
                    let rows = (block_end - row).min(L::PANEL_ROWS);
                    // SAFETY: the tile's `rows` rows from `row`, `depth`
                    // inputs from `first_input` and `columns` outputs from
                    // `first_column` lie within the slices.
                    unsafe { dispatch::<L, M>(&tile, rows, strips) };
                }
            }
        }
    }
}

/// Copies the weight rows of `in_dim` values, widened to f32, into
/// `packed` as groups of [`STRIPS`] strips of `L::WIDTH` rows, input by
/// input: group `g` starts at `g * 3 * WIDTH * in_dim`, and its value for
/// input `k` and row `3 * WIDTH * g + c` is at `k * strips * WIDTH + c`
/// from there (`strips` is 3 but for a last, narrower group). Rows past
/// the last stay zero.
#[inline(always)]
unsafe fn pack<L: Lanes, W: Element>(weights: &[W], in_dim: usize, packed: &mut Vec<f32>) {
    let width = L::WIDTH;
    let m = weights.len() / in_dim;
    let group_width = STRIPS * width;
    packed.resize(m.div_ceil(group_width) * group_width * in_dim, 0.0);
    for first in (0..m).step_by(STRIPS * width) {
        let strips = (m - first).min(STRIPS * width).div_ceil(width);
        let dst = &mut packed[first * in_dim..];
        for s in 0..strips {
            let top = first + s * width;
            let strip = &weights[top * in_dim..];
            let rows = (m - top).min(width);
            let at = |k: usize| (k * strips + s) * width;
            if rows < width {
                for c in 0..rows {
                    for k in 0..in_dim {
                        dst[at(k) + c] = strip[c * in_dim + k].widen();
                    }
                }
                continue;
            }
            // SAFETY: a whole strip: every lane read is a value of one of
            // its `width` rows, and every store a register within `dst`.
            unsafe {
                let to = dst.as_mut_ptr();
                match W::bf16_bits(strip) {
                    Some(bits) => {
                        let pairs = in_dim / 2;
                        let turned = pairs / width * width;
                        for p in (0..turned).step_by(width) {
                            let block = L::columns(bits.as_ptr().add(2 * p).cast(), in_dim * 2);
                            for (i, &words) in block.as_ref().iter().enumerate() {
                                let (first, second) = L::widen_pairs(words);
                                L::store(to.add(at(2 * (p + i))), first);
                                L::store(to.add(at(2 * (p + i) + 1)), second);
                            }
                        }
                        for p in turned..pairs {
                            let (first, second) =
                                L::gather_bf16_pairs(bits.as_ptr().add(2 * p), in_dim);
                            L::store(to.add(at(2 * p)), first);
                            L::store(to.add(at(2 * p + 1)), second);
                        }
                        for k in 2 * pairs..in_dim {
                            for c in 0..width {
                                dst[at(k) + c] = strip[c * in_dim + k].widen();
                            }
                        }
                    }
                    None => {
                        let values: *const f32 = strip.as_ptr().cast();
                        turn_over::<L>(values, in_dim, |k| to.add(at(k)));
                    }
                }
            }
        }
    }
}

/// Stores `WIDTH` rows of `in_dim` 32-bit values at `rows` (any
/// alignment) a column at a time: column `k`, lane `c` row `c`'s value
/// `k`, at `to(k)`. Square blocks are turned over in registers, the
/// columns past the last block gathered.
#[inline(always)]
unsafe fn turn_over<L: Lanes>(rows: *const f32, in_dim: usize, to: impl Fn(usize) -> *mut f32) {
    let width = L::WIDTH;
    let turned = in_dim / width * width;
    // SAFETY: the caller's rows hold `in_dim` values each and `to(k)`
    // has room for a register.
    unsafe {
        for k in (0..turned).step_by(width) {
            let block = L::columns(rows.add(k).cast(), in_dim * 4);
            for (i, &column) in block.as_ref().iter().enumerate() {
                L::store(to(k + i), column);
            }
        }
        for k in turned..in_dim {
            L::store(to(k), L::gather(rows.add(k), in_dim));
        }
    }
}

/// One kernel call's operands.
struct Tile {
    /// The first row's first input; rows follow `in_dim` apart.
    x: *const f32,
    in_dim: usize,
    /// Inputs this call takes.
    depth: usize,
    /// The group's weights for the first input; inputs follow `strips *
    /// WIDTH` apart.
    w: *const f32,
    /// The first row's first output; rows follow `out_stride` apart.
    out: *mut f32,
    out_stride: usize,
    /// Outputs written per row (the last strip may be partial).
    columns: usize,
    /// Whether the sums add to the outputs (inputs before `x` were taken).
    add: bool,
}

/// `$kernel::<[generics..,] R, S>($tile)` for `$rows` (1 to 8) rows and
/// `$strips` (1 to 3) strips: a kernel instantiated for every tile shape.
macro_rules! for_tile_shape {
    ($kernel:ident $(::<$($generic:ty),*>)? ($tile:expr), $rows:expr, $strips:expr) => {{
        macro_rules! by_strips {
            ($r:literal) => {
                match $strips {
                    1 => $kernel::<$($($generic,)*)? $r, 1>($tile),
                    2 => $kernel::<$($($generic,)*)? $r, 2>($tile),
                    _ => $kernel::<$($($generic,)*)? $r, 3>($tile),
                }
            };
        }
        match $rows {
            1 => by_strips!(1),
            2 => by_strips!(2),
            3 => by_strips!(3),
            4 => by_strips!(4),
            5 => by_strips!(5),
            6 => by_strips!(6),
            7 => by_strips!(7),
            _ => by_strips!(8),
        }
    }};
}
use for_tile_shape;

/// [`kernel`] for `rows` (1 to `L::PANEL_ROWS`) and `strips` (1 to
/// [`STRIPS`]).
#[inline(always)]
unsafe fn dispatch<L: Lanes, M: Multiply<L>>(tile: &Tile, rows: usize, strips: usize) {
    // SAFETY: as the caller's.
    unsafe { for_tile_shape!(kernel::<L, M>(tile), rows, strips) }
}

/// `R` rows times `S` strips: `R * S` registers of sums; each input costs
/// one load per strip and one broadcast per row.
#[inline(always)]
unsafe fn kernel<L: Lanes, M: Multiply<L>, const R: usize, const S: usize>(tile: &Tile) {
    let width = L::WIDTH;
    // SAFETY: the caller's CPU has L's features and `tile` addresses `R`
    // rows of `depth` inputs, a group of `S` strips, and `R` rows of
    // `columns` outputs.
    unsafe {
        // The first input's products start the sums. Had they started
        // at zero, the compiler would zero the stack copy of them it keeps
        // for the stores below, in case the loop did not run: a call to
        // `memset` of up to 1.5 KB every kernel call, which made SmolLM2's
        // products of 1,024 rows 8-14% slower on the Zen 4 and its
        // training step 5%. Every call has inputs: `products_in` takes
        // blocks of one at least.
        let loaded = |k: usize| {
            let mut w = [L::zero(); S];
            for (s, slot) in w.iter_mut().enumerate() {
                *slot = L::load(tile.w.add((k * S + s) * width));
            }
            w
        };
        let input = |r: usize, k: usize| L::splat(*tile.x.add(r * tile.in_dim + k));
        let w = loaded(0);
        let mut acc: [[L::V; S]; R] =
            std::array::from_fn(|r| std::array::from_fn(|s| M::madd(input(r, 0), w[s], L::zero())));
        for k in 1..tile.depth {
            let w = loaded(k);
            for (r, sums) in acc.iter_mut().enumerate() {
                let x = input(r, k);
                for s in 0..S {
                    sums[s] = M::madd(x, w[s], sums[s]);
                }
            }
        }
        for (r, sums) in acc.iter().enumerate() {
            let row = tile.out.add(r * tile.out_stride);
            if tile.columns == S * width {
                for (s, &sum) in sums.iter().enumerate() {
                    let y = row.add(s * width);
                    let sum = if tile.add {
                        L::add(L::load(y), sum)
                    } else {
                        sum
                    };
                    L::store(y, sum);
                }
                continue;
            }
            // Through a buffer: the group's last strip is partial.
            let mut all = [0f32; STRIPS * 16];
            for (s, &sum) in sums.iter().enumerate() {
                L::store(all.as_mut_ptr().add(s * width), sum);
            }
            if tile.add {
                let row = std::slice::from_raw_parts_mut(row, tile.columns);
                for (y, sum) in row.iter_mut().zip(all) {
                    *y += sum;
                }
            } else {
                // Not through a slice: the row may not be initialised yet.
                std::ptr::copy_nonoverlapping(all.as_ptr(), row, tile.columns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of `n * width` values in [-1, 1) from `seed`.
    fn draw(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::data::rng::SplitMix64::new(seed);
        (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect()
    }

    /// `inputs` times `weights` (rows of `in_dim`) in f64.
    fn exact(inputs: &[f32], weights: &[f32], in_dim: usize) -> Vec<f64> {
        let dot = |x: &[f32], w: &[f32]| x.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
        let rows = inputs.chunks_exact(in_dim);
        rows.flat_map(|x| weights.chunks_exact(in_dim).map(move |w| dot(x, w)))
            .collect()
    }

    #[test]
    fn every_register_width_sums_right_on_ragged_shapes() {
        // 13 rows (a group of 8 and one of 5 on AVX-512), 75 outputs (a
        // group of three strips, one of two and a partial one), 301 inputs
        // (two blocks of DEPTH and a ragged one; an odd count, so bf16
        // pairs leave one input over).
        let (n, m, in_dim) = (13, 75, 301);
        let inputs = draw(n * in_dim, 1);
        let weights = draw(m * in_dim, 2);
        let as_bf16: Vec<half::bf16> = weights.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let widened: Vec<f32> = as_bf16.iter().map(|v| v.to_f32()).collect();
        type Kernel = unsafe fn(&[f32], &[f32], usize, &mut [f32]);
        type Bf16Kernel = unsafe fn(&[f32], &[half::bf16], usize, &mut [f32]);
        let mut kernels: Vec<(&str, Kernel, Bf16Kernel)> = Vec::new();
        if is_x86_feature_detected!("avx512f") {
            kernels.push((
                "AVX-512",
                products_avx512::<f32>,
                products_avx512::<half::bf16>,
            ));
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            kernels.push(("AVX2", products_avx2::<f32>, products_avx2::<half::bf16>));
        }
        for (name, f32_kernel, bf16_kernel) in kernels {
            for (what, want) in [
                ("f32", exact(&inputs, &weights, in_dim)),
                ("bf16", exact(&inputs, &widened, in_dim)),
            ] {
                let mut out = vec![f32::NAN; n * m];
                // SAFETY: the CPU has the kernel's features, checked above.
                unsafe {
                    match what {
                        "f32" => f32_kernel(&inputs, &weights, in_dim, &mut out),
                        _ => bf16_kernel(&inputs, &as_bf16, in_dim, &mut out),
                    }
                }
                for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                    let error = (got as f64 - want).abs();
                    assert!(error < 1e-4, "{name} {what}: output {i} off by {error}");
                }
            }
        }
    }

    #[test]
    fn bf16_pairs_sum_right_on_ragged_shapes() {
        // As above with an even input count (302: two blocks of DEPTH
        // pairs and a ragged one), inputs and weights as bf16 values.
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")) {
            return;
        }
        let (n, m, in_dim) = (13, 75, 302);
        let round =
            |v: Vec<f32>| -> Vec<half::bf16> { v.into_iter().map(half::bf16::from_f32).collect() };
        let (inputs, weights) = (round(draw(n * in_dim, 3)), round(draw(m * in_dim, 4)));
        let bits = |v: &[half::bf16]| v.iter().map(|b| b.to_bits()).collect::<Vec<u16>>();
        let widen = |v: &[half::bf16]| v.iter().map(|b| b.to_f32()).collect::<Vec<f32>>();
        let mut out = vec![f32::NAN; n * m];
        products_of_bf16_pairs(
            &pair_words(&bits(&inputs)),
            &bits(&weights),
            in_dim,
            &mut out,
        );
        let want = exact(&widen(&inputs), &widen(&weights), in_dim);
        for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
            let error = (got as f64 - want).abs();
            assert!(error < 1e-4, "output {i} off by {error}");
        }
    }
}
