//! bf16 weights times a few f32 rows on AVX2, widening the weights as
//! pairs.
//!
//! The general AVX2 kernel widens 8 bf16 weights at a time (a zero-extending
//! load, then a shift) and loads the inputs again for every weight row. On a
//! Zen 1 EPYC, where each 256-bit operation is two halves, that ran at 12 GB/s
//! of weights per core with the weights in cache: two cores could not keep
//! up with the memory. Here one 256-bit load takes 16 weights, and a shift and
//! a mask make them two registers of f32: the weights at even positions and
//! those at odd ones. The input rows are laid out once per product to match
//! (each 16 values as their 8 even then their 8 odd ones, [`arrange`]). A
//! 200 x 576 product in cache on one Zen 1 core: 9.1-9.7 G weights/s
//! against 6.0.
//!
//! Each input row has its own four sums, run in the same order whatever
//! rows are beside it, so a row's result does not depend on the rows decoded
//! with it.
//!
//! Tiles of four weight rows sharing each load of the inputs were tried:
//! faster in cache, but four streams at once left the memory 20% slower
//! than one row after another.

use super::x86::{Avx2, Lanes, prefetch_next};
use std::arch::x86_64::*;

/// Weights one step takes from a weight row: one register of bf16 pairs.
const STEP: usize = 16;

/// Whether this CPU should take this kernel for bf16 weights: AVX2 with FMA,
/// and no AVX-512 (whose kernel widens 16 weights per instruction).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && !is_x86_feature_detected!("avx512f")
}

/// `inputs` (rows of `in_dim` values) with each whole [`STEP`] of a row
/// reordered as its even positions, then its odd ones; the tail past the
/// last whole step stays in order.
pub(super) fn arrange(inputs: &[f32], in_dim: usize) -> Vec<f32> {
    let mut out = inputs.to_vec();
    for row in out.chunks_exact_mut(in_dim) {
        for step in row.chunks_exact_mut(STEP) {
            let values: [f32; STEP] = step.try_into().expect("a whole step");
            for k in 0..STEP / 2 {
                step[k] = values[2 * k];
                step[STEP / 2 + k] = values[2 * k + 1];
            }
        }
    }
    out
}

/// `out[j * N + r] = rows[r] · w_j` for the `N` rows laid out by
/// [`arrange`] and each weight row `w_j` (of `in_dim` bf16 values, as bit
/// patterns) of `weights`.
///
/// # Safety
/// The CPU has AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block<const N: usize>(
    rows: &[&[f32]],
    weights: &[u16],
    in_dim: usize,
    out: &mut [f32],
) {
    // Checked once here, not for every weight row.
    assert!(rows.len() == N && rows.iter().all(|row| row.len() >= in_dim));
    assert!(in_dim > 0 && weights.len().is_multiple_of(in_dim));
    assert!(out.len() == weights.len() / in_dim * N);
    for (w, ys) in weights.chunks_exact(in_dim).zip(out.chunks_exact_mut(N)) {
        // SAFETY: the features are the caller's; the lengths were checked
        // above.
        unsafe { row_of::<N>(rows, w, ys) };
    }
}

/// [`block`] for one weight row `w`: two steps at a time, four running
/// sums per input row (enough multiply-adds in flight to hide their
/// latency), then a last single step and the tail.
#[inline(always)]
unsafe fn row_of<const N: usize>(rows: &[&[f32]], w: &[u16], out: &mut [f32]) {
    let in_dim = w.len();
    let (pairs_end, whole) = (in_dim / (2 * STEP) * 2 * STEP, in_dim / STEP * STEP);
    // SAFETY: the caller's CPU has AVX2 and FMA; every row holds at least
    // `in_dim` values and every load reads below `whole`. Prefetches never
    // fault.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; N];
        let mut c = 0;
        while c < pairs_end {
            let p = w.as_ptr().add(c);
            // The same weights one row further on.
            prefetch_next(p.wrapping_add(in_dim).cast(), 64);
            let (even, odd) = widened(p);
            let (even_next, odd_next) = widened(p.add(STEP));
            for r in 0..N {
                let x = rows[r].as_ptr().add(c);
                let sums = &mut acc[r];
                sums[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x), even, sums[0]);
                sums[1] = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8)), odd, sums[1]);
                sums[2] = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(16)), even_next, sums[2]);
                sums[3] = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(24)), odd_next, sums[3]);
            }
            c += 2 * STEP;
        }
        if c < whole {
            let (even, odd) = widened(w.as_ptr().add(c));
            for r in 0..N {
                let x = rows[r].as_ptr().add(c);
                let sums = &mut acc[r];
                sums[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x), even, sums[0]);
                sums[1] = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8)), odd, sums[1]);
            }
        }
        for r in 0..N {
            let tail: f32 = rows[r][whole..in_dim]
                .iter()
                .zip(&w[whole..])
                .map(|(&x, &bits)| x * f32::from_bits((bits as u32) << 16))
                .sum();
            out[r] = Avx2::total(acc[r]) + tail;
        }
    }
}

/// The 16 bf16 values at `p` as f32: those at even positions, those at odd
/// ones.
#[inline(always)]
unsafe fn widened(p: *const u16) -> (__m256, __m256) {
    // SAFETY: the caller ensures 32 readable bytes and the CPU's AVX2.
    unsafe { Avx2::widen_pairs(_mm256_loadu_ps(p.cast())) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn arranged_rows_keep_every_value() {
        let x: Vec<f32> = (0..2 * 37).map(|i| i as f32).collect();
        let arranged = arrange(&x, 37);
        let first_step: Vec<f32> = (0..8).map(|i| 2.0 * i as f32).collect();
        assert_eq!(arranged[..8], first_step[..]);
        assert_eq!(arranged[8], 1.0);
        // The tail past two steps stays in place, in both rows.
        assert_eq!(arranged[32..37], x[32..37]);
        assert_eq!(arranged[37 + 32..], x[37 + 32..]);
        let mut sorted = arranged.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, x);
    }

    #[test]
    fn sums_match_and_rows_stay_apart() {
        if !available() {
            return;
        }
        let mut rng = crate::data::rng::SplitMix64::new(5);
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect() };
        // Widths with a tail, with an odd number of steps and without.
        for in_dim in [37, 48, 64, 576] {
            let x = draw(4 * in_dim);
            let weights: Vec<u16> = draw(7 * in_dim)
                .iter()
                .map(|&v| bf16::from_f32(v).to_bits())
                .collect();
            let arranged = arrange(&x, in_dim);
            let rows: Vec<&[f32]> = arranged.chunks_exact(in_dim).collect();
            let widen = |bits: u16| bf16::from_bits(bits).to_f64();
            let mut alone = vec![0f32; 7];
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: `available` checked the features.
                unsafe { block::<1>(&[row], &weights, in_dim, &mut alone) };
                for (j, w) in weights.chunks_exact(in_dim).enumerate() {
                    let exact: f64 = x[r * in_dim..(r + 1) * in_dim]
                        .iter()
                        .zip(w)
                        .map(|(&a, &b)| a as f64 * widen(b))
                        .sum();
                    let error = (alone[j] as f64 - exact).abs();
                    assert!(error < 1e-4, "width {in_dim}, row {r}, weight {j}: {error}");
                }
                let mut together = vec![0f32; 7 * 4];
                let mut two = vec![0f32; 7 * 2];
                let mut three = vec![0f32; 7 * 3];
                unsafe {
                    block::<4>(&rows, &weights, in_dim, &mut together);
                    block::<2>(&rows[..2], &weights, in_dim, &mut two);
                    block::<3>(&rows[1..], &weights, in_dim, &mut three);
                }
                for j in 0..7 {
                    assert_eq!(together[j * 4 + r], alone[j], "width {in_dim}, of 4");
                    if r < 2 {
                        assert_eq!(two[j * 2 + r], alone[j], "width {in_dim}, of 2");
                    }
                    if r > 0 {
                        assert_eq!(three[j * 3 + r - 1], alone[j], "width {in_dim}, of 3");
                    }
                }
            }
        }
    }
}
