//! One key head's share of a decoding step's attention in AVX2 registers,
//! eight cached positions at a time.
//!
//! The general kernels took each score as its own dot product with a
//! horizontal sum at the end and each head's weighted sum on its own,
//! widening every bf16 value once per query head: on a Zen 1 core that was
//! 54 µs a layer for SmolLM2's 9 heads over 192 positions. Here a block of
//! eight key rows is widened once for all the heads of the group, the
//! eight dot products of a head are summed across lanes together (three
//! rounds of pairwise additions for eight scores), and a block of eight
//! value rows is added into every head's output in one pass.

use crate::model::gemv::Element;
use std::arch::x86_64::*;

/// Positions a block takes: one score per lane.
const BLOCK: usize = 8;

/// `probs[h * positions + t]` = `scale` q_h · k_t for the query heads
/// `queries` (rows of `d` f32) and the `keys` rows (`d` values each) of one
/// key head. The caller checks that the CPU has AVX2 and FMA and that `d`
/// is a multiple of 8.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn scores<W: Element>(
    queries: &[f32],
    keys: &[W],
    d: usize,
    scale: f32,
    probs: &mut [f32],
) {
    assert!(d > 0 && d.is_multiple_of(8));
    let positions = keys.len() / d;
    assert!(probs.len() == queries.len() / d * positions);
    let mut widened = vec![0f32; BLOCK * d];
    for start in (0..positions).step_by(BLOCK) {
        let rows = block(keys, start, d, &mut widened);
        let taken = (positions - start).min(BLOCK);
        for (query, probs) in queries
            .chunks_exact(d)
            .zip(probs.chunks_exact_mut(positions))
        {
            // SAFETY: the caller's CPU has AVX2 and FMA; `rows` holds BLOCK
            // rows of `d` and `query` one.
            let scores = unsafe { block_scores(query, rows, d, scale) };
            probs[start..start + taken].copy_from_slice(&scores[..taken]);
        }
    }
}

/// `out[h] += Σ_t probs[h * positions + t] · v_t` for each head's row of
/// `d` in `out`, over the `values` rows (`d` values each) of one key head.
/// The caller checks the CPU and `d` as for [`scores`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn weighted<W: Element>(probs: &[f32], values: &[W], d: usize, out: &mut [f32]) {
    assert!(d > 0 && d.is_multiple_of(8));
    let positions = values.len() / d;
    assert!(probs.len() == out.len() / d * positions);
    let mut widened = vec![0f32; BLOCK * d];
    for start in (0..positions).step_by(BLOCK) {
        let rows = block(values, start, d, &mut widened);
        let taken = (positions - start).min(BLOCK);
        for (probs, head_out) in probs.chunks_exact(positions).zip(out.chunks_exact_mut(d)) {
            let mut weights = [0f32; BLOCK];
            weights[..taken].copy_from_slice(&probs[start..start + taken]);
            // SAFETY: as above; `head_out` holds `d` values.
            unsafe { add_weighted(head_out, rows, &weights, d) };
        }
    }
}

/// The rows `start..start + BLOCK` of `rows` (of `d` values) as f32: in
/// place for whole f32 blocks, else widened into `widened` with zero rows
/// past the end.
#[inline(always)]
fn block<'a, W: Element>(
    rows: &'a [W],
    start: usize,
    d: usize,
    widened: &'a mut [f32],
) -> &'a [f32] {
    let end = (start + BLOCK) * d;
    if !W::BF16 && end <= rows.len() {
        // SAFETY: W is f32 (BF16 is false only for f32).
        return unsafe { std::slice::from_raw_parts(rows[start * d..].as_ptr().cast(), BLOCK * d) };
    }
    let present = &rows[start * d..end.min(rows.len())];
    for (w, &x) in widened.iter_mut().zip(present) {
        *w = x.widen();
    }
    widened[present.len()..].fill(0.0);
    widened
}

/// `scale` times the dot products of `query` with each of the BLOCK rows
/// of `rows`: eight sums of `d / 8` lanes, added across lanes together.
#[target_feature(enable = "avx2,fma")]
unsafe fn block_scores(query: &[f32], rows: &[f32], d: usize, scale: f32) -> [f32; BLOCK] {
    let mut scores = [0f32; BLOCK];
    // SAFETY: every load reads within `query` (d values) or `rows` (BLOCK
    // rows of d), d a multiple of 8.
    unsafe {
        let mut sums = [_mm256_setzero_ps(); BLOCK];
        for c in (0..d).step_by(8) {
            let q = _mm256_loadu_ps(query.as_ptr().add(c));
            for (k, sum) in sums.iter_mut().enumerate() {
                let key = _mm256_loadu_ps(rows.as_ptr().add(k * d + c));
                *sum = _mm256_fmadd_ps(key, q, *sum);
            }
        }
        let totals = _mm256_mul_ps(across_lanes(sums), _mm256_set1_ps(scale));
        _mm256_storeu_ps(scores.as_mut_ptr(), totals);
    }
    scores
}

/// Lane `k` of the result is the sum of the lanes of `v[k]`.
#[inline(always)]
unsafe fn across_lanes(v: [__m256; BLOCK]) -> __m256 {
    // SAFETY: register arithmetic only; the callers have AVX2.
    unsafe {
        // Pairs of lanes, then quadruples, of registers 0-3 and 4-7, each
        // 128-bit half holding its own half's sums; then the halves added.
        let low = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
        let high = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(low, high),
            _mm256_permute2f128_ps::<0x31>(low, high),
        )
    }
}

/// `out += Σ_k weights[k] · rows[k]` over the BLOCK rows of `d`, in two
/// chains of four so that a column's additions overlap. (No closures in
/// these kernels: one would be compiled without the target features and
/// its intrinsics would become calls.)
#[target_feature(enable = "avx2,fma")]
unsafe fn add_weighted(out: &mut [f32], rows: &[f32], weights: &[f32; BLOCK], d: usize) {
    // SAFETY: every access lies within `out` (d values) or `rows` (BLOCK
    // rows of d), d a multiple of 8.
    unsafe {
        let mut w = [_mm256_setzero_ps(); BLOCK];
        for (w, &x) in w.iter_mut().zip(weights) {
            *w = _mm256_set1_ps(x);
        }
        for c in (0..d).step_by(8) {
            let at = rows.as_ptr().add(c);
            let mut first = _mm256_loadu_ps(out.as_ptr().add(c));
            let mut second = _mm256_mul_ps(w[4], _mm256_loadu_ps(at.add(4 * d)));
            for (k, &w) in w.iter().enumerate().take(4) {
                first = _mm256_fmadd_ps(w, _mm256_loadu_ps(at.add(k * d)), first);
            }
            for (k, &w) in w.iter().enumerate().skip(5) {
                second = _mm256_fmadd_ps(w, _mm256_loadu_ps(at.add(k * d)), second);
            }
            _mm256_storeu_ps(out.as_mut_ptr().add(c), _mm256_add_ps(first, second));
        }
    }
}
