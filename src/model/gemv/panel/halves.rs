//! A training pass's frozen products over a bf16 weight on fp16 multiply-
//! adds (AVX512-FP16), for CPUs that run those at twice their f32 rate
//! while their bf16 pairs are slower than f32: the Xeon (family 6 model
//! 207, no AMX exposed) of 2026-12-07 ran `vfmadd231ph` at 358 GFLOP/s a
//! core, f32 FMA at 161 and `vdpbf16ps` at 82.
//!
//! Weights and input rows become fp16, each scaled by a power of two (so
//! exactly, while in range): the weight so that its largest value lies in
//! [1, 2), each row so that its largest lies in [`ROW_BOUND`] / 2 to
//! `ROW_BOUND`. A register of sums takes at most [`DEPTH`] inputs in fp16,
//! then is widened and added to the f32 result with both scales undone:
//! no partial sum reaches 2^15, so none overflows, and a gradient's rows
//! (values of 1e-6 and below) keep fp16's 11 bits instead of falling into
//! its subnormals. fp16 keeps 3 more bits than bf16 of every value; the
//! fp16 sums of 64 inputs add an error about 1.4 times what rounding the
//! inputs to bf16 (the pairs' route) costs, for products of random signs
//! (DEVELOPERS.md has the estimate and the loss curves it gave).

use super::super::transpose::columns_16;
use super::for_tile_shape;
use super::sequence::{on_row_blocks, packed_in_parallel};
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// fp16 values in a register: a strip of outputs.
const LANES: usize = 32;

/// Strips one kernel call takes: 3 per row, 8 rows, 24 registers of sums.
const STRIPS: usize = 3;
const GROUP_WIDTH: usize = STRIPS * LANES;
const ROWS: usize = 8;

/// Rows whose outputs for a group (12 KB in f32) and inputs stay in L1
/// beside the group's weights for [`DEPTH`] inputs (12 KB).
const ROW_BLOCK: usize = 4 * ROWS;

/// Inputs summed in fp16 before the sums are widened into the result.
const DEPTH: usize = 64;

/// A scaled row's largest value: [`DEPTH`] products of it with weights
/// below 2 stay below 2^15.
const ROW_BOUND: f32 = (1 << 15) as f32 / (DEPTH as f32 * 2.0);

/// Whether the training products take fp16 multiply-adds: the CPU has
/// them and its bf16 pairs are not the faster route (`pairs::fast`).
/// `TUNEBENCH_HALVES=0` or `1` decides instead.
pub(in crate::model::gemv) fn fast() -> bool {
    static FAST: OnceLock<bool> = OnceLock::new();
    *FAST.get_or_init(|| {
        let has = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512fp16");
        match std::env::var("TUNEBENCH_HALVES").as_deref() {
            Ok("0") => false,
            Ok("1") => has,
            _ => has && !super::pairs::fast(),
        }
    })
}

/// `x @ w.T` for rows `x` of `in_dim` f32 values and `w` `[out, in_dim]`
/// as bf16 bits: `[rows, out]`. The CPU has avx512f and avx512fp16.
pub(in crate::model::gemv) fn times_transposed(x: &[f32], w: &[u16], in_dim: usize) -> Vec<f32> {
    let out = w.len() / in_dim;
    let scale = Scale::of_weight(w);
    let packed = packed_in_parallel(out, GROUP_WIDTH, GROUP_WIDTH * in_dim / 2, |groups, dst| {
        let rows = groups.start * GROUP_WIDTH..(groups.end * GROUP_WIDTH).min(out);
        // SAFETY: the caller checked the features; `dst` holds the groups.
        unsafe {
            pack_rows(
                &w[rows.start * in_dim..rows.end * in_dim],
                in_dim,
                scale,
                dst,
            )
        }
    });
    // SAFETY (both): the caller checked the features; `block` writes all
    // its outputs (each tile on its first inputs).
    unsafe {
        on_row_blocks(x, in_dim, out, |x, y| {
            block(x, packed.as_ptr().cast(), in_dim, y, scale)
        })
    }
}

/// `g @ w` for rows `g` of `out` f32 values and `w` `[out, in_dim]` as
/// bf16 bits: `[rows, in_dim]`. The CPU has avx512f and avx512fp16.
pub(in crate::model::gemv) fn times(g: &[f32], w: &[u16], in_dim: usize) -> Vec<f32> {
    let out = w.len() / in_dim;
    let scale = Scale::of_weight(w);
    let packed = packed_in_parallel(in_dim, GROUP_WIDTH, GROUP_WIDTH * out / 2, |groups, dst| {
        let columns = groups.start * GROUP_WIDTH..(groups.end * GROUP_WIDTH).min(in_dim);
        // SAFETY: as above; `dst` holds the groups of columns `columns`.
        unsafe { pack_columns(w, in_dim, columns, scale, dst) }
    });
    // SAFETY (both): as above.
    unsafe {
        on_row_blocks(g, out, in_dim, |g, y| {
            block(g, packed.as_ptr().cast(), out, y, scale)
        })
    }
}

/// A power of two a set of values is multiplied by before it becomes
/// fp16, and the one that undoes it.
#[derive(Clone, Copy)]
struct Scale {
    by: f32,
    undo: f32,
}

impl Scale {
    /// The scale that brings the largest of values whose largest
    /// magnitude is `largest` (a finite f32) into [`bound`/2, `bound`).
    fn bringing(largest: f32, bound: f32) -> Scale {
        if largest == 0.0 || !largest.is_finite() {
            return Scale { by: 1.0, undo: 1.0 };
        }
        let exponent = |v: f32| ((v.to_bits() >> 23) & 0xff) as i32 - 127;
        let shift = (exponent(bound) - 1 - exponent(largest)).clamp(-126, 126);
        Scale {
            by: power_of_two(shift),
            undo: power_of_two(-shift),
        }
    }

    /// A bf16 weight's: its largest magnitude brought into [1, 2).
    fn of_weight(bits: &[u16]) -> Scale {
        // Magnitudes of bf16 values order as their bit patterns do.
        let largest = bits.iter().map(|b| b & 0x7fff).max().unwrap_or(0);
        Scale::bringing(f32::from_bits((largest as u32) << 16), 2.0)
    }
}

fn power_of_two(shift: i32) -> f32 {
    f32::from_bits(((shift + 127) as u32) << 23)
}

/// Rows of `w` (whole groups of [`GROUP_WIDTH`] but for the last) packed
/// into `dst` as groups of strips, input by input: a group's value for
/// input `k` and its output `c` at `k * strips * LANES + c`; lanes past
/// the last row zero.
///
/// A strip's 32 rows are converted 32 inputs at a time into a block,
/// turned over as two 16 x 16 blocks of 32-bit words (pairs of inputs),
/// and each word's halves sorted into one register per input. Written a
/// value at a time, the packing took 10% of a product of 1,024 rows.
#[target_feature(enable = "avx512f,avx512bw,avx512fp16")]
unsafe fn pack_rows(w: &[u16], in_dim: usize, scale: Scale, dst: &mut [MaybeUninit<f32>]) {
    let to: *mut u16 = dst.as_mut_ptr().cast();
    let rows = w.len() / in_dim;
    let turned = in_dim / LANES * LANES;
    let mut block = [0u16; LANES * LANES];
    let (first_of_pair, second_of_pair) = (halves_index(0), halves_index(1));
    for first in (0..rows).step_by(GROUP_WIDTH) {
        let count = (rows - first).min(GROUP_WIDTH);
        let width = count.div_ceil(LANES) * LANES;
        // SAFETY: the group's `width * in_dim` values lie in `dst`.
        let group = unsafe { to.add(first * in_dim) };
        for strip in (0..count).step_by(LANES) {
            let strip_rows = (count - strip).min(LANES);
            let row = |c: usize| &w[(first + strip + c) * in_dim..][..in_dim];
            for k0 in (0..turned).step_by(LANES) {
                for (c, place) in block.chunks_exact_mut(LANES).enumerate() {
                    match c < strip_rows {
                        // SAFETY: the CPU has the features.
                        true => unsafe { to_halves(&row(c)[k0..k0 + LANES], scale, place) },
                        false => place.fill(0),
                    }
                }
                let (mut top, mut bottom) = ([_mm512_setzero_ps(); 16], [_mm512_setzero_ps(); 16]);
                // SAFETY: `block` holds 32 rows of 64 bytes; every store
                // lies in the group (`k0 + 2 * i + 1 < in_dim`, `strip +
                // LANES <= width`).
                unsafe {
                    let bytes: *const u8 = block.as_ptr().cast();
                    columns_16(bytes, 2 * LANES, &mut top);
                    columns_16(bytes.add(32 * LANES), 2 * LANES, &mut bottom);
                    for (i, (&top, &bottom)) in top.iter().zip(&bottom).enumerate() {
                        let (top, bottom) = (_mm512_castps_si512(top), _mm512_castps_si512(bottom));
                        for (j, index) in [first_of_pair, second_of_pair].into_iter().enumerate() {
                            let values = _mm512_permutex2var_epi16(top, index, bottom);
                            let at = group.add((k0 + 2 * i + j) * width + strip);
                            _mm512_storeu_si512(at.cast(), values);
                        }
                    }
                }
            }
            // The inputs past the last block of 32: each row's converted, then
            // stored a value at a time.
            let tail = &mut block[..in_dim - turned];
            for c in 0..LANES {
                match c < strip_rows {
                    // SAFETY: the CPU has the features.
                    true => unsafe { to_halves(&row(c)[turned..], scale, tail) },
                    false => tail.fill(0),
                }
                for (k, &value) in (turned..in_dim).zip(tail.iter()) {
                    // SAFETY: within the group.
                    unsafe { group.add(k * width + strip + c).write(value) };
                }
            }
        }
        // SAFETY: the rest of the group's room (a last, narrower group).
        unsafe {
            std::ptr::write_bytes(group.add(width * in_dim), 0, (GROUP_WIDTH - width) * in_dim)
        };
    }
}

/// The index `_mm512_permutex2var_epi16` takes to gather the 16-bit
/// halves `half` (0: low, 1: high) of two registers' 32-bit words, the
/// first register's in the low lanes.
#[target_feature(enable = "avx512f")]
fn halves_index(half: u16) -> __m512i {
    let index: [u16; 32] = std::array::from_fn(|i| 2 * i as u16 + half);
    // SAFETY: 64 bytes.
    unsafe { _mm512_loadu_si512(index.as_ptr().cast()) }
}

/// The columns `columns` (from a group's first) of `w` `[out, in_dim]`
/// packed as [`pack_rows`] packs rows: a group's value for `w`'s row `k`
/// and column `c` at `k * strips * LANES + c`.
#[target_feature(enable = "avx512f,avx512fp16")]
unsafe fn pack_columns(
    w: &[u16],
    in_dim: usize,
    columns: std::ops::Range<usize>,
    scale: Scale,
    dst: &mut [MaybeUninit<f32>],
) {
    let to: *mut u16 = dst.as_mut_ptr().cast();
    let rows = w.len() / in_dim;
    for first in columns.clone().step_by(GROUP_WIDTH) {
        let count = (columns.end - first).min(GROUP_WIDTH);
        let width = count.div_ceil(LANES) * LANES;
        let group = (first - columns.start) * rows;
        for k in 0..rows {
            // SAFETY: the group's row `k` of `width` values lies in `dst`.
            let place = unsafe { std::slice::from_raw_parts_mut(to.add(group + k * width), width) };
            let (values, past) = place.split_at_mut(count);
            // SAFETY: the CPU has the features.
            unsafe { to_halves(&w[k * in_dim + first..][..count], scale, values) };
            past.fill(0);
        }
        // SAFETY: as in `pack_rows`.
        unsafe {
            std::ptr::write_bytes(
                to.add(group + width * rows),
                0,
                (GROUP_WIDTH - width) * rows,
            )
        };
    }
}

/// bf16 `bits` times `scale.by`, as fp16 bits rounded to nearest even.
#[target_feature(enable = "avx512f,avx512fp16")]
unsafe fn to_halves(bits: &[u16], scale: Scale, out: &mut [u16]) {
    let whole = bits.len() / 16 * 16;
    let by = _mm512_set1_ps(scale.by);
    for i in (0..whole).step_by(16) {
        // SAFETY: 16 values from `i` lie in both slices.
        unsafe {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(bits.as_ptr().add(i).cast()));
            let values = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide)), by);
            let halves = _mm256_castph_si256(_mm512_cvtxps_ph(values));
            _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), halves);
        }
    }
    for i in whole..bits.len() {
        let value = half::bf16::from_bits(bits[i]).to_f32() * scale.by;
        out[i] = half::f16::from_f32(value).to_bits();
    }
}

/// A task's rows: scaled into fp16, then every group of outputs over them.
///
/// Each input's fp16 bits are kept twice in a 32-bit word, so that the
/// kernel broadcasts a row's input with a 32-bit load, which takes a load
/// port only; a 16-bit broadcast also takes a shuffle port from the
/// multiply-adds (the kernel ran at 240-330 GFLOP/s so, at 1,024 rows of
/// SmolLM2's shapes).
#[target_feature(enable = "avx512f,avx512fp16")]
unsafe fn block(
    x: &[f32],
    packed: *const u16,
    width: usize,
    out: &mut [MaybeUninit<f32>],
    weight: Scale,
) {
    HALVES.with_borrow_mut(|(halves, undo)| {
        halves.resize(halves.len().max(x.len()), 0);
        undo.clear();
        for (row, place) in x.chunks_exact(width).zip(halves.chunks_exact_mut(width)) {
            let largest = row
                .iter()
                .map(|v| v.to_bits() & 0x7fff_ffff)
                .max()
                .unwrap_or(0);
            let scale = Scale::bringing(f32::from_bits(largest), ROW_BOUND);
            undo.push(scale.undo * weight.undo);
            // SAFETY: the CPU has the features.
            unsafe { scaled_halves(row, scale.by, place) };
        }
        // SAFETY: as the caller's; the rows are in `halves`.
        unsafe { tiles(halves, undo, packed, width, out) }
    })
}

thread_local! {
    /// A task's rows as fp16 words and their factors, kept for the
    /// thread's next task: a fresh zeroed buffer for each (1,680 tasks of
    /// up to 1.5 MB a SmolLM2 step at 1,024 tokens) came as new pages
    /// from the kernel, which cleared them (6% of a step).
    static HALVES: RefCell<(Vec<u32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Every group of outputs over a task's rows, `halves` their inputs.
#[target_feature(enable = "avx512f,avx512fp16")]
unsafe fn tiles(
    halves: &[u32],
    undo: &[f32],
    packed: *const u16,
    width: usize,
    out: &mut [MaybeUninit<f32>],
) {
    let n = undo.len();
    let m = out.len() / n;
    for first_column in (0..m).step_by(GROUP_WIDTH) {
        let columns = (m - first_column).min(GROUP_WIDTH);
        let strips = columns.div_ceil(LANES);
        // SAFETY: group `first_column / GROUP_WIDTH` starts there.
        let group = unsafe { packed.add(first_column * width) };
        // A block of rows takes all its inputs before the next: its outputs,
        // widened into after every DEPTH inputs, and the weights for those
        // inputs stay in L1 while its tiles pass.
        for first_row in (0..n).step_by(ROW_BLOCK) {
            for first_input in (0..width).step_by(DEPTH) {
                for row in (first_row..n.min(first_row + ROW_BLOCK)).step_by(ROWS) {
                    let tile = Tile {
                        x: halves[row * width + first_input..].as_ptr(),
                        in_dim: width,
                        depth: (width - first_input).min(DEPTH),
                        // SAFETY: the group's values for `first_input` on.
                        w: unsafe { group.add(first_input * strips * LANES) },
                        out: out[row * m + first_column..].as_mut_ptr().cast(),
                        out_stride: m,
                        columns,
                        add: first_input > 0,
                        undo: undo[row..].as_ptr(),
                    };
                    // SAFETY: the tile's rows, inputs and outputs lie within
                    // the slices.
                    unsafe { dispatch(&tile, (n - row).min(ROWS), strips) };
                }
            }
        }
    }
}

/// `row` times `by`, as fp16 bits, each twice in a word.
#[target_feature(enable = "avx512f,avx512fp16")]
unsafe fn scaled_halves(row: &[f32], by: f32, out: &mut [u32]) {
    let whole = row.len() / 16 * 16;
    for i in (0..whole).step_by(16) {
        // SAFETY: 16 values from `i` lie in both slices.
        unsafe {
            let values = _mm512_mul_ps(_mm512_loadu_ps(row.as_ptr().add(i)), _mm512_set1_ps(by));
            let halves = _mm256_castph_si256(_mm512_cvtxps_ph(values));
            let words = _mm512_cvtepu16_epi32(halves);
            let twice = _mm512_or_si512(words, _mm512_slli_epi32::<16>(words));
            _mm512_storeu_si512(out.as_mut_ptr().add(i).cast(), twice);
        }
    }
    for i in whole..row.len() {
        let bits = half::f16::from_f32(row[i] * by).to_bits() as u32;
        out[i] = bits | bits << 16;
    }
}

/// One kernel call's operands.
struct Tile {
    /// The first row's first input (fp16 bits, twice: see [`block`]);
    /// rows follow `in_dim` apart.
    x: *const u32,
    in_dim: usize,
    /// Inputs this call sums (at most [`DEPTH`]).
    depth: usize,
    /// The group's weights for the first input; inputs follow `strips *
    /// LANES` apart.
    w: *const u16,
    /// The first row's first output; rows follow `out_stride` apart.
    out: *mut f32,
    out_stride: usize,
    /// Outputs written per row (the last strip may be partial).
    columns: usize,
    /// Whether the sums add to the outputs.
    add: bool,
    /// Each row's factor undoing its scale and the weight's.
    undo: *const f32,
}

/// [`kernel`] for `rows` (1 to [`ROWS`]) and `strips` (1 to [`STRIPS`]).
#[target_feature(enable = "avx512f,avx512fp16")]
unsafe fn dispatch(tile: &Tile, rows: usize, strips: usize) {
    // SAFETY: as the caller's.
    unsafe { for_tile_shape!(kernel(tile), rows, strips) }
}

/// `R` rows times `S` strips of fp16 sums over the tile's inputs, then
/// widened into the f32 outputs.
#[inline(always)]
unsafe fn kernel<const R: usize, const S: usize>(tile: &Tile) {
    // SAFETY: the caller's CPU has avx512f and avx512fp16, and `tile`
    // addresses `R` rows of `depth` inputs, `S` strips and `R` rows of
    // `columns` outputs.
    unsafe {
        let loaded = |k: usize| -> [__m512h; S] {
            std::array::from_fn(|s| {
                _mm512_castsi512_ph(_mm512_loadu_si512(tile.w.add((k * S + s) * LANES).cast()))
            })
        };
        let input = |r: usize, k: usize| {
            _mm512_castsi512_ph(_mm512_set1_epi32(*tile.x.add(r * tile.in_dim + k) as i32))
        };
        // The first input's products start the sums (see `panel::kernel`).
        let w = loaded(0);
        let mut acc: [[__m512h; S]; R] =
            std::array::from_fn(|r| std::array::from_fn(|s| _mm512_mul_ph(input(r, 0), w[s])));
        for k in 1..tile.depth {
            let w = loaded(k);
            for (r, sums) in acc.iter_mut().enumerate() {
                let x = input(r, k);
                for s in 0..S {
                    sums[s] = _mm512_fmadd_ph(x, w[s], sums[s]);
                }
            }
        }
        // The outputs each half of a strip writes, as masks: the same for
        // every row (and set apart from the loop: a mask register is filled
        // on a port the multiply-adds use).
        let masks: [[__mmask16; 2]; S] = std::array::from_fn(|s| {
            std::array::from_fn(|h| {
                let lanes = tile.columns.saturating_sub(s * LANES + h * 16).min(16);
                ((1u32 << lanes) - 1) as u16
            })
        });
        for (r, sums) in acc.iter().enumerate() {
            let row = tile.out.add(r * tile.out_stride);
            let undo = _mm512_set1_ps(*tile.undo.add(r));
            for (s, &sum) in sums.iter().enumerate() {
                let bits = _mm512_castph_si512(sum);
                let halves = [
                    _mm512_castsi512_si256(bits),
                    _mm512_extracti64x4_epi64::<1>(bits),
                ];
                for (h, half) in halves.into_iter().enumerate() {
                    let mask = masks[s][h];
                    let value = _mm512_cvtxph_ps(_mm256_castsi256_ph(half));
                    let y = row.add(s * LANES + h * 16);
                    let value = match tile.add {
                        true => _mm512_fmadd_ps(value, undo, _mm512_maskz_loadu_ps(mask, y)),
                        false => _mm512_mul_ps(value, undo),
                    };
                    _mm512_mask_storeu_ps(y, mask, value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(n: usize, seed: u64, size: f32) -> Vec<f32> {
        let mut rng = crate::data::rng::SplitMix64::new(seed);
        (0..n)
            .map(|_| (rng.next_f64() as f32 * 2.0 - 1.0) * size)
            .collect()
    }

    fn bf16_bits(values: &[f32]) -> Vec<u16> {
        values
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect()
    }

    fn cpu_has_halves() -> bool {
        let has = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512fp16");
        if !has {
            eprintln!("skipped: this CPU has no avx512_fp16");
        }
        has
    }

    /// `a` `[n, k]` times `b` `[k, m]` (given as `b_at(i, j)`) in f64, and
    /// each output's sum of the magnitudes of its products.
    fn exact(a: &[f32], k: usize, m: usize, b_at: impl Fn(usize, usize) -> f64) -> Vec<(f64, f64)> {
        a.chunks_exact(k)
            .flat_map(|row| {
                (0..m).map(|j| {
                    let terms = (0..k).map(|i| row[i] as f64 * b_at(i, j));
                    terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()))
                })
            })
            .collect()
    }

    /// Each output within `tolerance` of the magnitudes its products sum.
    fn assert_close(got: &[f32], want: &[(f64, f64)], tolerance: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &(sum, size))) in got.iter().zip(want).enumerate() {
            let error = (g as f64 - sum).abs();
            assert!(
                error <= tolerance * size,
                "{what}[{i}]: {g} vs {sum} (products' size {size})"
            );
        }
    }

    /// Both products of `n` rows of values of about `size` against exact
    /// sums of the f32 rows and bf16 weights: `x @ w.T` with `w` `[m,
    /// in_dim]`, and `g @ w` with `w` `[out, columns]`.
    fn assert_both_close(
        n: usize,
        (m, in_dim): (usize, usize),
        (out, columns): (usize, usize),
        size: f32,
    ) {
        let widen = |bits: &[u16]| -> Vec<f64> {
            bits.iter()
                .map(|&b| half::bf16::from_bits(b).to_f64())
                .collect()
        };
        // fp16's rounding of each value (2^-11), and the fp16 sums' (2^-11
        // for each of up to DEPTH additions, against the largest partial
        // sum: bounded here by the products' total).
        let tolerance = 2f64.powi(-11) * (2.0 + DEPTH as f64);
        let x = draw(n * in_dim, 1, size);
        let w = bf16_bits(&draw(m * in_dim, 2, 0.05));
        let values = widen(&w);
        let want = exact(&x, in_dim, m, |i, j| values[j * in_dim + i]);
        assert_close(
            &times_transposed(&x, &w, in_dim),
            &want,
            tolerance,
            "x @ w.T",
        );

        let g = draw(n * out, 3, size);
        let w = bf16_bits(&draw(out * columns, 4, 0.05));
        let values = widen(&w);
        let want = exact(&g, out, columns, |i, j| values[i * columns + j]);
        assert_close(&times(&g, &w, columns), &want, tolerance, "g @ w");
    }

    #[test]
    fn both_products_are_close_to_exact_sums_on_ragged_shapes() {
        if !cpu_has_halves() {
            return;
        }
        // 70 rows (tasks of at least 32, a ragged last one and a ragged
        // last tile of rows), 200 outputs (two whole groups of strips and
        // one of a strip and a partial one), 301 inputs (nine blocks of
        // DEPTH and a ragged one); the gradient's weight `[75, 131]`.
        assert_both_close(70, (200, 301), (75, 131), 1.0);
    }

    #[test]
    fn tiny_and_huge_rows_keep_their_precision() {
        if !cpu_has_halves() {
            return;
        }
        // Values of 1e-7 (a gradient's; fp16's subnormals start at 6e-5)
        // and of 1e5 (past fp16's largest, 65,504).
        assert_both_close(9, (40, 64), (64, 40), 1e-7);
        assert_both_close(9, (40, 64), (64, 40), 1e5);
    }
}
