//! Products with few outputs a row (a LoRA adapter's rank) on AVX-512:
//! `x @ A^T` and `g @ B`, `[tokens, r]`. gemm took these at 50-80
//! GFLOP/s on an Intel Xeon whose f32 peak is 161 a core, and its threads
//! did not speed them up (2026-12-07).
//!
//! A row's outputs (up to [`WIDE`]) lie in one or two registers; a tile of
//! [`ROWS`] rows broadcasts each row's input and multiplies the matching
//! row of the other factor, packed once per product as `[k, 16 or 32]`.

use super::{Destination, View};
use std::arch::x86_64::*;

/// f32 lanes in a register.
const LANES: usize = 16;

/// The most outputs on the narrow side (two registers a row).
pub(super) const WIDE: usize = 2 * LANES;

/// Rows a tile takes: enough sums in flight to cover the multiply-add's
/// latency on both ports.
const ROWS: usize = 8;

/// Rows of the wide side a task takes at least.
const MIN_TASK: usize = 64;

/// Whether [`product`] takes a product of `m x n` outputs here: the CPU
/// has AVX-512, `n` is at most [`WIDE`] while `m` is long, and each row
/// of `lhs` has its inputs side by side (`x @ A^T`, `g @ B`). A factor
/// whose inputs lie a row apart (`g^T @ down`, the factors' gradients)
/// read a cache line per input and was slower than gemm.
pub(super) fn takes(m: usize, n: usize, lhs: &View) -> bool {
    n <= WIDE && m >= MIN_TASK && lhs.col_stride == 1 && is_x86_feature_detected!("avx512f")
}

/// `dst = [dst +] factor · lhs · rhs` for a product [`takes`] accepted,
/// its rows shared out on the pool.
///
/// # Safety
/// The views hold `m x k` and `k x n` matrices, `dst` has `m x n` places
/// at its row stride that nothing else touches meanwhile.
pub(super) unsafe fn product(
    dst: Destination,
    (m, n, k): (usize, usize, usize),
    (lhs, rhs): (View, View),
    factor: f32,
    accumulate: bool,
) {
    let strips = n.div_ceil(LANES);
    let width = strips * LANES;
    // `rhs` as `[k, width]`, zero past its `n` columns.
    let mut packed = vec![0f32; k * width];
    for (i, row) in packed.chunks_exact_mut(width).enumerate() {
        for (j, place) in row[..n].iter_mut().enumerate() {
            *place = rhs.data[i * rhs.row_stride + j * rhs.col_stride];
        }
    }
    let threads = rayon::current_num_threads().max(1);
    let per_task = m.div_ceil(2 * threads).max(MIN_TASK).div_ceil(ROWS) * ROWS;
    let task = |t: usize| {
        let rows = t * per_task..((t + 1) * per_task).min(m);
        let tiles = rows.clone().step_by(ROWS).map(|first| Tile {
            lhs: lhs.data[first * lhs.row_stride..].as_ptr(),
            row_stride: lhs.row_stride,
            rows: (rows.end - first).min(ROWS),
            packed: packed.as_ptr(),
            depth: k,
            dst: dst.offset(first * dst.row_stride).first,
            dst_stride: dst.row_stride,
            columns: n,
            factor,
            accumulate,
        });
        for tile in tiles {
            // SAFETY: the CPU has avx512f (`takes`); the tile's rows lie in
            // `lhs` and in this task's part of `dst`.
            unsafe {
                match strips {
                    1 => rows_of::<1>(&tile),
                    _ => rows_of::<2>(&tile),
                }
            }
        }
    };
    crate::pool::crew::for_each(m.div_ceil(per_task), &task);
}

/// One kernel call's operands: up to [`ROWS`] rows of the product.
struct Tile {
    /// The first row's first input; rows follow `row_stride` apart.
    lhs: *const f32,
    row_stride: usize,
    rows: usize,
    /// The other factor, `[depth, S * LANES]`.
    packed: *const f32,
    depth: usize,
    /// The first row's first output; rows follow `dst_stride` apart.
    dst: *mut f32,
    dst_stride: usize,
    /// Outputs written per row.
    columns: usize,
    factor: f32,
    accumulate: bool,
}

/// [`kernel`] for the tile's row count.
#[target_feature(enable = "avx512f")]
unsafe fn rows_of<const S: usize>(tile: &Tile) {
    // SAFETY: as the caller's.
    unsafe {
        match tile.rows {
            1 => kernel::<1, S>(tile),
            2 => kernel::<2, S>(tile),
            3 => kernel::<3, S>(tile),
            4 => kernel::<4, S>(tile),
            5 => kernel::<5, S>(tile),
            6 => kernel::<6, S>(tile),
            7 => kernel::<7, S>(tile),
            _ => kernel::<8, S>(tile),
        }
    }
}

/// `R` rows times `S` registers of outputs, summed over the depth.
#[inline(always)]
unsafe fn kernel<const R: usize, const S: usize>(tile: &Tile) {
    // SAFETY: the caller's CPU has avx512f; the tile addresses `R` rows
    // of `depth` inputs, `depth` packed rows and `R` rows of `columns`
    // outputs.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); S]; R];
        for i in 0..tile.depth {
            let other: [__m512; S] =
                std::array::from_fn(|s| _mm512_loadu_ps(tile.packed.add((i * S + s) * LANES)));
            for (r, sums) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*tile.lhs.add(r * tile.row_stride + i));
                for s in 0..S {
                    sums[s] = _mm512_fmadd_ps(x, other[s], sums[s]);
                }
            }
        }
        let factor = _mm512_set1_ps(tile.factor);
        for (r, sums) in acc.iter().enumerate() {
            let row = tile.dst.add(r * tile.dst_stride);
            for (s, &sum) in sums.iter().enumerate() {
                let lanes = tile.columns.saturating_sub(s * LANES).min(LANES);
                let mask = ((1u32 << lanes) - 1) as __mmask16;
                let y = row.add(s * LANES);
                let value = match tile.accumulate {
                    true => _mm512_fmadd_ps(sum, factor, _mm512_maskz_loadu_ps(mask, y)),
                    false => _mm512_mul_ps(sum, factor),
                };
                _mm512_mask_storeu_ps(y, mask, value);
            }
        }
    }
}
