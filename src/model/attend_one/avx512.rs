//! One key head's share of a decoding step's attention in AVX-512
//! registers, sixteen cached positions at a time.
//!
//! A score is sixteen lanes of products (bf16 keys by bf16 queries with
//! `vdpbf16ps`, 32 pairs an instruction, where the CPU has it), and sixteen
//! scores are summed across lanes together in four rounds of shuffles,
//! where `avx2.rs` widens each block of bf16 rows into memory and takes
//! three rounds of `hadd` for eight. The weighted sum reads each value row
//! once, in order, widened in registers once for up to eight query heads.
//! On an AMD EPYC Zen 4, one call for 9 heads over 4,000 positions took 108
//! against 184 µs with a hot cache; in a decoding step, where the weights
//! streamed between layers leave the cache cold, the step was 2.8% faster
//! over 3,000 positions and no faster over a few hundred (DEVELOPERS.md).

use crate::model::gemv::Element;
use crate::model::gemv::x86::{Avx512, Lanes};
use std::arch::x86_64::*;

/// Positions a block of scores takes: one score per lane.
const BLOCK: usize = 16;

/// `probs[h * positions + t]` = `scale` q_h · k_t for the query heads
/// `queries` (rows of `d` f32) and the `keys` rows (`d` values each) of one
/// key head, each key widened to f32. The caller checks `avx512f` and that
/// `d` is a multiple of 16.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn scores<W: Element>(
    queries: &[f32],
    keys: &[W],
    d: usize,
    scale: f32,
    probs: &mut [f32],
) {
    assert!(d > 0 && d.is_multiple_of(16));
    for_each_block(queries.len() / d, keys.len() / d, probs, |h, rows| {
        let query = &queries[h * d..(h + 1) * d];
        // SAFETY: the CPU has avx512f; `rows` are within `keys` (rows of d,
        // a multiple of 16) and `query` holds d values.
        unsafe {
            let mut sums = [_mm512_setzero_ps(); BLOCK];
            for c in (0..d).step_by(16) {
                let q = _mm512_loadu_ps(query.as_ptr().add(c));
                for (sum, &t) in sums.iter_mut().zip(&rows) {
                    let key = Avx512::load_weights(keys.as_ptr().add(t * d + c));
                    *sum = _mm512_fmadd_ps(key, q, *sum);
                }
            }
            _mm512_mul_ps(across_lanes(sums), _mm512_set1_ps(scale))
        }
    });
}

/// [`scores`] for bf16 keys and queries (`queries` as bf16 bit patterns):
/// each product of two bf16 values is exact in f32, so only the order of
/// the f32 additions differs from widening both. The caller checks
/// `avx512f`, `avx512bf16` and that `d` is a multiple of 32.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn scores_of_pairs(
    queries: &[u16],
    keys: &[u16],
    d: usize,
    scale: f32,
    probs: &mut [f32],
) {
    assert!(d > 0 && d.is_multiple_of(32));
    for_each_block(queries.len() / d, keys.len() / d, probs, |h, rows| {
        let query = &queries[h * d..(h + 1) * d];
        // SAFETY: as in `scores`, 32 bf16 values (64 bytes) per load.
        unsafe {
            let mut sums = [_mm512_setzero_ps(); BLOCK];
            for c in (0..d).step_by(32) {
                let q = pairs(query.as_ptr().add(c));
                for (sum, &t) in sums.iter_mut().zip(&rows) {
                    *sum = _mm512_dpbf16_ps(*sum, pairs(keys.as_ptr().add(t * d + c)), q);
                }
            }
            _mm512_mul_ps(across_lanes(sums), _mm512_set1_ps(scale))
        }
    });
}

/// 32 bf16 values from `p`.
#[inline(always)]
unsafe fn pairs(p: *const u16) -> __m512bh {
    // SAFETY: the caller ensures 64 readable bytes; both types are 512 bits.
    unsafe { std::mem::transmute(_mm512_loadu_si512(p.cast())) }
}

/// `block(h, rows)` for each of `heads` query heads and each block of
/// [`BLOCK`] of the `positions`, its sixteen scores stored in `probs[h *
/// positions + t]`. A short last block repeats its last row in the lanes
/// past the end (whose scores are dropped), so every block takes the same
/// unrolled code.
#[inline(always)]
fn for_each_block(
    heads: usize,
    positions: usize,
    probs: &mut [f32],
    block: impl Fn(usize, [usize; BLOCK]) -> __m512,
) {
    assert!(probs.len() == heads * positions);
    for start in (0..positions).step_by(BLOCK) {
        let taken = (positions - start).min(BLOCK);
        let mut rows = [0; BLOCK];
        for (t, row) in rows.iter_mut().enumerate() {
            *row = start + t.min(taken - 1);
        }
        for h in 0..heads {
            let mut scores = [0f32; BLOCK];
            // SAFETY: `scores` holds sixteen f32.
            unsafe { _mm512_storeu_ps(scores.as_mut_ptr(), block(h, rows)) };
            probs[h * positions + start..][..taken].copy_from_slice(&scores[..taken]);
        }
    }
}

/// Lane `t` of the result is the sum of the sixteen lanes of `v[t]`: pairs
/// of registers interleaved and added (each 128-bit block then holds two
/// sums' halves), pairs of those shuffled and added (four sums per block),
/// then the blocks added across registers, twice. (Loops, not closures: a
/// closure is compiled without the caller's target features, and each
/// intrinsic in it would become a call.)
#[inline(always)]
unsafe fn across_lanes(v: [__m512; BLOCK]) -> __m512 {
    // SAFETY: register arithmetic only; the callers have avx512f.
    unsafe {
        let mut two = [_mm512_setzero_ps(); 8];
        for (i, sum) in two.iter_mut().enumerate() {
            let (a, b) = (v[2 * i], v[2 * i + 1]);
            *sum = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        }
        let mut four = [_mm512_setzero_ps(); 4];
        for (i, sum) in four.iter_mut().enumerate() {
            let (a, b) = (two[2 * i], two[2 * i + 1]);
            *sum = _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(a, b),
                _mm512_shuffle_ps::<0xEE>(a, b),
            );
        }
        let eight = [
            blocks_added(four[0], four[1]),
            blocks_added(four[2], four[3]),
        ];
        blocks_added(eight[0], eight[1])
    }
}

/// The 128-bit blocks of `a` and `b` added in pairs: blocks 0+1 and 2+3 of
/// `a`, then the same of `b`.
#[inline(always)]
unsafe fn blocks_added(a: __m512, b: __m512) -> __m512 {
    // SAFETY: register arithmetic only; the callers have avx512f.
    unsafe {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        )
    }
}

/// Whether [`weighted`] takes heads of `d` values: whole registers, few
/// enough that a pass's sums and a widened value row fit the registers.
pub(super) fn takes(d: usize) -> bool {
    d.is_multiple_of(16) && matches!(d / 16, 1 | 2 | 3 | 4 | 6 | 8)
}

/// `out[h] += Σ_t probs[h * positions + t] · v_t` for each head's row of
/// `d` in `out`, over the `values` rows (`d` values each) of one key head.
/// The caller checks `avx512f` and [`takes`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn weighted<W: Element>(probs: &[f32], values: &[W], d: usize, out: &mut [f32]) {
    assert!(takes(d));
    let positions = values.len() / d;
    assert!(probs.len() == out.len() / d * positions);
    // SAFETY (all): as this function's; the register counts match `d`.
    unsafe {
        match d / 16 {
            1 => weighted_in::<W, 1, 8>(probs, values, out),
            2 => weighted_in::<W, 2, 8>(probs, values, out),
            3 => weighted_in::<W, 3, 5>(probs, values, out),
            4 => weighted_in::<W, 4, 4>(probs, values, out),
            6 => weighted_in::<W, 6, 2>(probs, values, out),
            _ => weighted_in::<W, 8, 2>(probs, values, out),
        }
    }
}

/// [`weighted`] for rows of `C` registers, `H` query heads a pass: the
/// positions in order, each value row read once a pass (a cold cache's rows
/// arrive in the order the prefetcher expects) and widened once for the
/// pass's heads. Lanes of heads past the last repeat it and are not stored.
#[inline(always)]
unsafe fn weighted_in<W: Element, const C: usize, const H: usize>(
    probs: &[f32],
    values: &[W],
    out: &mut [f32],
) {
    let d = 16 * C;
    let positions = values.len() / d;
    let heads = out.len() / d;
    for first in (0..heads).step_by(H) {
        let pass = (heads - first).min(H);
        // SAFETY: the caller has avx512f; every access lies within `values`
        // (rows of d), `probs` (heads rows of positions) or `out`.
        unsafe {
            let mut sums = [[_mm512_setzero_ps(); C]; H];
            for t in 0..positions {
                let mut row = [_mm512_setzero_ps(); C];
                for (c, lanes) in row.iter_mut().enumerate() {
                    *lanes = Avx512::load_weights(values.as_ptr().add(t * d + 16 * c));
                }
                for (h, head_sums) in sums.iter_mut().enumerate() {
                    let p = _mm512_set1_ps(probs[(first + h.min(pass - 1)) * positions + t]);
                    for (sum, &lanes) in head_sums.iter_mut().zip(&row) {
                        *sum = _mm512_fmadd_ps(p, lanes, *sum);
                    }
                }
            }
            for (h, head_sums) in sums.iter().enumerate().take(pass) {
                for (c, &sum) in head_sums.iter().enumerate() {
                    let at = out.as_mut_ptr().add((first + h) * d + 16 * c);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::avx2;
    use super::*;
    use half::bf16;

    /// Values in [-1, 1) from a seed, rounded to bf16 so that both kernels'
    /// inputs are exact in either type.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::data::rng::SplitMix64::new(seed);
        (0..n)
            .map(|_| bf16::from_f32(rng.next_f64() as f32 * 2.0 - 1.0).to_f32())
            .collect()
    }

    /// The scores and weighted sums in f64, one value at a time.
    fn expected(queries: &[f32], rows: &[f32], probs: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
        let (heads, positions) = (queries.len() / d, rows.len() / d);
        let mut scores = vec![0f64; heads * positions];
        let mut sums = vec![0f64; heads * d];
        for h in 0..heads {
            for t in 0..positions {
                let row = &rows[t * d..(t + 1) * d];
                let q = &queries[h * d..(h + 1) * d];
                scores[h * positions + t] = 0.5
                    * q.iter()
                        .zip(row)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>();
                for (s, &v) in sums[h * d..(h + 1) * d].iter_mut().zip(row) {
                    *s += probs[h * positions + t] as f64 * v as f64;
                }
            }
        }
        (scores, sums)
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() < 1e-4,
                "{what}: value {i}: {g} against {w}"
            );
        }
    }

    #[test]
    fn the_vector_kernels_agree_with_sums_in_f64() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        let pairs = is_x86_feature_detected!("avx512bf16");
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        // 37 positions: two whole blocks of 16 and a short one; 5 heads: a
        // pass of fewer heads than the registers take.
        for (d, heads) in [(16, 9), (48, 5), (64, 3), (64, 5), (128, 3)] {
            let positions = 37;
            let queries = values(heads * d, 1);
            let rows = values(positions * d, 2);
            let probs = values(heads * positions, 3);
            let (want_scores, want_sums) = expected(&queries, &rows, &probs, d);
            let narrow: Vec<bf16> = rows.iter().map(|&v| bf16::from_f32(v)).collect();
            let bits = bf16::to_bits;
            for wide in [true, false] {
                let what = format!("d {d}, {heads} heads, f32 rows {wide}");
                let mut scores_got = vec![0f32; heads * positions];
                let mut sums_got = vec![0f32; heads * d];
                // SAFETY (all): the features were checked above; `d` is a
                // multiple of 16 that `takes` accepts.
                unsafe {
                    if wide {
                        scores(&queries, &rows, d, 0.5, &mut scores_got);
                        weighted(&probs, &rows, d, &mut sums_got);
                    } else {
                        scores(&queries, &narrow, d, 0.5, &mut scores_got);
                        weighted(&probs, &narrow, d, &mut sums_got);
                    }
                }
                assert_close(&scores_got, &want_scores, &format!("scores, {what}"));
                assert_close(&sums_got, &want_sums, &format!("weighted, {what}"));
                if avx2 {
                    let (mut scores_got, mut sums_got) =
                        (vec![0f32; heads * positions], vec![0f32; heads * d]);
                    unsafe {
                        avx2::scores(&queries, &narrow, d, 0.5, &mut scores_got);
                        avx2::weighted(&probs, &narrow, d, &mut sums_got);
                    }
                    assert_close(&scores_got, &want_scores, &format!("AVX2 scores, {what}"));
                    assert_close(&sums_got, &want_sums, &format!("AVX2 weighted, {what}"));
                }
            }
            if pairs && d.is_multiple_of(32) {
                let query_bits: Vec<u16> =
                    queries.iter().map(|&q| bits(bf16::from_f32(q))).collect();
                let row_bits: Vec<u16> = narrow.iter().map(|&v| bits(v)).collect();
                let mut got = vec![0f32; heads * positions];
                unsafe { scores_of_pairs(&query_bits, &row_bits, d, 0.5, &mut got) };
                assert_close(
                    &got,
                    &want_scores,
                    &format!("pair scores, d {d}, {heads} heads"),
                );
            }
        }
    }
}
