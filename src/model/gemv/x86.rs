//! The GEMV's dot products in explicit AVX-512 or AVX2 registers: four
//! vector sums per input row that stay in registers from the first weight
//! to the last. The portable form (`dots_lanes`) left LLVM an array of 64
//! running sums per row, which it kept on the stack, storing and reloading
//! them at every step; decoding reached half of the memory bandwidth.
//!
//! Each row's sums run in the same order whatever the number of rows, so a
//! row's result does not depend on the rows decoded beside it.

use super::Element;
use std::arch::x86_64::*;

/// A vector register width: the operations the kernels need on it.
pub(crate) trait Lanes {
    type V: Copy;
    const WIDTH: usize;
    /// Input rows a panel kernel call takes (`PANEL_ROWS * 3` registers of
    /// sums fit in the register file beside the weights).
    const PANEL_ROWS: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(value: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `p[lane * stride]` for each lane.
    unsafe fn gather(p: *const f32, stride: usize) -> Self::V;
    /// The two bf16 values at `p[lane * stride]` and one after, as f32:
    /// (the first ones, the second ones).
    unsafe fn gather_bf16_pairs(p: *const u16, stride: usize) -> (Self::V, Self::V);
    /// `WIDTH` registers, one per column of a square block of 32-bit values.
    type Block: Copy + AsRef<[Self::V]>;
    /// The `WIDTH` rows of `WIDTH` 32-bit values at `p + c * row_bytes`
    /// (any alignment) as columns: lane `c` of register `i` is row `c`'s
    /// value `i`.
    unsafe fn columns(p: *const u8, row_bytes: usize) -> Self::Block;
    /// The two bf16 values in each lane's 32 bits, as f32: (the first ones,
    /// in the low halves; the second ones).
    unsafe fn widen_pairs(pairs: Self::V) -> (Self::V, Self::V);
    /// `WIDTH` weights as f32: bf16 is the top half of an f32, so each
    /// 16-bit value is widened and shifted up.
    unsafe fn load_weights<W: Element>(p: *const W) -> Self::V;
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// The sum of every lane of four registers.
    unsafe fn total(v: [Self::V; 4]) -> f32;
}

pub(crate) struct Avx512;

impl Lanes for Avx512 {
    type V = __m512;
    const WIDTH: usize = 16;
    const PANEL_ROWS: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> __m512 {
        unsafe { _mm512_set1_ps(value) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, stride: usize) -> __m512 {
        unsafe { _mm512_i32gather_ps::<4>(lane_offsets_512(stride), p) }
    }
    #[inline(always)]
    unsafe fn gather_bf16_pairs(p: *const u16, stride: usize) -> (__m512, __m512) {
        unsafe {
            // Each lane reads 32 bits at a 2-byte scale: the pair.
            let pairs = _mm512_i32gather_epi32::<2>(lane_offsets_512(stride), p.cast());
            Self::widen_pairs(_mm512_castsi512_ps(pairs))
        }
    }
    type Block = [__m512; 16];
    #[inline(always)]
    unsafe fn columns(p: *const u8, row_bytes: usize) -> [__m512; 16] {
        let mut out = [unsafe { _mm512_setzero_ps() }; 16];
        // SAFETY: as the caller's.
        unsafe { super::transpose::columns_16(p, row_bytes, &mut out) };
        out
    }
    #[inline(always)]
    unsafe fn widen_pairs(pairs: __m512) -> (__m512, __m512) {
        unsafe {
            let pairs = _mm512_castps_si512(pairs);
            let first = _mm512_slli_epi32::<16>(pairs);
            let second = _mm512_and_si512(pairs, _mm512_set1_epi32(0xffff_0000u32 as i32));
            (_mm512_castsi512_ps(first), _mm512_castsi512_ps(second))
        }
    }
    #[inline(always)]
    unsafe fn load_weights<W: Element>(p: *const W) -> __m512 {
        unsafe {
            if W::BF16 {
                let halves = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(halves))
            } else {
                _mm512_loadu_ps(p.cast())
            }
        }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn total([a, b, c, d]: [__m512; 4]) -> f32 {
        unsafe { _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d))) }
    }
}

pub(super) struct Avx2;

impl Lanes for Avx2 {
    type V = __m256;
    const WIDTH: usize = 8;
    const PANEL_ROWS: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> __m256 {
        unsafe { _mm256_set1_ps(value) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, stride: usize) -> __m256 {
        unsafe { _mm256_i32gather_ps::<4>(p, lane_offsets_256(stride)) }
    }
    #[inline(always)]
    unsafe fn gather_bf16_pairs(p: *const u16, stride: usize) -> (__m256, __m256) {
        unsafe {
            let pairs = _mm256_i32gather_epi32::<2>(p.cast(), lane_offsets_256(stride));
            Self::widen_pairs(_mm256_castsi256_ps(pairs))
        }
    }
    type Block = [__m256; 8];
    #[inline(always)]
    unsafe fn columns(p: *const u8, row_bytes: usize) -> [__m256; 8] {
        let mut out = [unsafe { _mm256_setzero_ps() }; 8];
        // SAFETY: as the caller's.
        unsafe { super::transpose::columns_8(p, row_bytes, &mut out) };
        out
    }
    #[inline(always)]
    unsafe fn widen_pairs(pairs: __m256) -> (__m256, __m256) {
        unsafe {
            let pairs = _mm256_castps_si256(pairs);
            let first = _mm256_slli_epi32::<16>(pairs);
            let second = _mm256_and_si256(pairs, _mm256_set1_epi32(0xffff_0000u32 as i32));
            (_mm256_castsi256_ps(first), _mm256_castsi256_ps(second))
        }
    }
    #[inline(always)]
    unsafe fn load_weights<W: Element>(p: *const W) -> __m256 {
        unsafe {
            if W::BF16 {
                let halves = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(halves))
            } else {
                _mm256_loadu_ps(p.cast())
            }
        }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn total([a, b, c, d]: [__m256; 4]) -> f32 {
        unsafe {
            let s = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d));
            let q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
            let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps::<1>(q, q)))
        }
    }
}

/// `lane * stride` in each of 16 lanes.
#[inline(always)]
unsafe fn lane_offsets_512(stride: usize) -> __m512i {
    // SAFETY: the caller's CPU has avx512f.
    unsafe {
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        _mm512_mullo_epi32(lanes, _mm512_set1_epi32(stride as i32))
    }
}

/// `lane * stride` in each of 8 lanes.
#[inline(always)]
unsafe fn lane_offsets_256(stride: usize) -> __m256i {
    // SAFETY: the caller's CPU has avx2.
    unsafe {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_mullo_epi32(lanes, _mm256_set1_epi32(stride as i32))
    }
}

/// Asks for the `bytes` from `p` (the weights the kernel reads after the
/// current ones) to be brought into L1. With more than one input row the
/// kernels issue more instructions per cache line, the core keeps fewer
/// lines in flight, and the hardware prefetchers alone left two rows 45%
/// slower than one over the same weights (151,936 x 896 bf16: 24.7 against
/// 17.2 ms); fetched one tile or weight row ahead, 14.7 and 12.4 ms. A
/// prefetch never faults, so past the end of the weights is harmless.
#[inline(always)]
pub(super) unsafe fn prefetch_ahead(p: *const i8, bytes: usize) {
    for line in (0..bytes).step_by(64) {
        // SAFETY: prefetching reads nothing the program sees.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line)) };
    }
}

/// [`prefetch_ahead`] for the decoding kernels, where the process's
/// trial (`super::prefetch`) found it pays.
#[inline(always)]
pub(super) unsafe fn prefetch_next(p: *const i8, bytes: usize) {
    if super::prefetch::on() {
        // SAFETY: a prefetch reads nothing the program sees.
        unsafe { prefetch_ahead(p, bytes) }
    }
}

/// `rows[r] · w` for each of the `N` rows, `4 * WIDTH` weights a step.
/// The caller ensures the CPU has L's features, `rows` holds `N` rows and
/// none is shorter than `w`.
#[inline(always)]
unsafe fn dots_in<L: Lanes, W: Element, const N: usize>(rows: &[&[f32]], w: &[W]) -> [f32; N] {
    let step = 4 * L::WIDTH;
    let whole = w.len() / step * step;
    let mut out = [0f32; N];
    // SAFETY: the caller's CPU has L's features; every load reads below
    // `whole`, which no row and not `w` is shorter than.
    unsafe {
        let mut acc = [[L::zero(); 4]; N];
        let mut c = 0;
        while c < whole {
            let wp = w.as_ptr().add(c);
            prefetch_next(wp.wrapping_add(w.len()).cast(), step * size_of::<W>());
            // No closures here: one would be compiled without the target
            // features, and the intrinsics in it would become calls.
            let wide = [
                L::load_weights(wp),
                L::load_weights(wp.add(L::WIDTH)),
                L::load_weights(wp.add(2 * L::WIDTH)),
                L::load_weights(wp.add(3 * L::WIDTH)),
            ];
            for r in 0..N {
                let xp = rows[r].as_ptr().add(c);
                for k in 0..4 {
                    acc[r][k] = L::fmadd(L::load(xp.add(k * L::WIDTH)), wide[k], acc[r][k]);
                }
            }
            c += step;
        }
        for r in 0..N {
            let tail: f32 = rows[r][whole..w.len()]
                .iter()
                .zip(&w[whole..])
                .map(|(a, b)| a * b.widen())
                .sum();
            out[r] = L::total(acc[r]) + tail;
        }
    }
    out
}

/// `out[j * N + r] = rows[r] · w_j` for each weight row `w_j` (of `in_dim`
/// values) of `weights`; inlined into a function compiled with L's
/// features, so nothing is called per row.
#[inline(always)]
unsafe fn block_in<L: Lanes, W: Element, const N: usize>(
    rows: &[&[f32]],
    weights: &[W],
    in_dim: usize,
    out: &mut [f32],
) {
    // Checked once here, not for every weight row.
    assert!(rows.len() == N && rows.iter().all(|row| row.len() >= in_dim));
    for (w, ys) in weights.chunks_exact(in_dim).zip(out.chunks_exact_mut(N)) {
        // SAFETY: the caller checked the features; the rows were checked above.
        ys.copy_from_slice(&unsafe { dots_in::<L, W, N>(rows, w) });
    }
}

/// [`block_in`] on AVX-512 registers. The caller checks `avx512f`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn block_avx512<W: Element, const N: usize>(
    rows: &[&[f32]],
    weights: &[W],
    in_dim: usize,
    out: &mut [f32],
) {
    unsafe { block_in::<Avx512, W, N>(rows, weights, in_dim, out) }
}

/// [`block_in`] on AVX2 registers. The caller checks `avx2` and `fma`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block_avx2<W: Element, const N: usize>(
    rows: &[&[f32]],
    weights: &[W],
    in_dim: usize,
    out: &mut [f32],
) {
    unsafe { block_in::<Avx2, W, N>(rows, weights, in_dim, out) }
}

/// 32 bf16 values. A function, not a closure: a closure would be compiled
/// without the caller's target features.
#[inline(always)]
unsafe fn load(p: *const u16) -> __m512bh {
    // SAFETY: the caller ensures 64 readable bytes; both types are 512 bits.
    unsafe { std::mem::transmute(_mm512_loadu_si512(p.cast())) }
}

/// `rows[r] · w` for `R` bf16 rows and one bf16 weight row `w`, with
/// `vdpbf16ps`: each instruction multiplies 32 pairs and adds them, two by
/// two, into 16 f32 sums, so no weight is widened. Four sums per row, 128
/// values a step, then 32 at a time, then the odd end one by one. Products
/// of two bf16 values are exact in f32; only the order of the additions
/// differs from the widening kernel, and a row's sums run in the same order
/// whatever `R` is.
#[inline(always)]
unsafe fn dots_bf16<const R: usize>(rows: &[&[u16]], w: &[u16]) -> [f32; R] {
    const STEP: usize = 128;
    let whole = w.len() / STEP * STEP;
    let by_32 = w.len() / 32 * 32;
    let mut out = [0f32; R];
    // SAFETY: the caller's CPU has avx512f and avx512bf16; no row is shorter
    // than `w`, and every load reads below `by_32`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let mut c = 0;
        while c < whole {
            let wp = w.as_ptr().add(c);
            prefetch_next(wp.wrapping_add(w.len()).cast(), STEP * 2);
            let weights = [
                load(wp),
                load(wp.add(32)),
                load(wp.add(64)),
                load(wp.add(96)),
            ];
            for r in 0..R {
                let xp = rows[r].as_ptr().add(c);
                for k in 0..4 {
                    acc[r][k] = _mm512_dpbf16_ps(acc[r][k], load(xp.add(32 * k)), weights[k]);
                }
            }
            c += STEP;
        }
        while c < by_32 {
            let weights = load(w.as_ptr().add(c));
            for r in 0..R {
                let x = load(rows[r].as_ptr().add(c));
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, weights);
            }
            c += 32;
        }
        let widen = |v: u16| f32::from_bits((v as u32) << 16);
        for r in 0..R {
            let tail: f32 = rows[r][by_32..w.len()]
                .iter()
                .zip(&w[by_32..])
                .map(|(&a, &b)| widen(a) * widen(b))
                .sum();
            out[r] = Avx512::total(acc[r]) + tail;
        }
    }
    out
}

/// `out[j * R + r] = rows[r] · w_j` for bf16 rows and each bf16 weight row
/// `w_j` (of `in_dim` values) of `weights`, one weight row after another.
/// (Tiles of four weight rows sharing each load of the inputs were slower
/// from memory on an AMD EPYC Zen 4: four streams at once, 73 against 98-104
/// tokens/s decoding SmolLM2 in bf16.) The caller checks `avx512f` and
/// `avx512bf16`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn block_avx512_bf16<const R: usize>(
    rows: &[&[u16]],
    weights: &[u16],
    in_dim: usize,
    out: &mut [f32],
) {
    // Checked once here, not for every weight row.
    assert!(rows.len() == R && rows.iter().all(|row| row.len() >= in_dim));
    for (w, ys) in weights.chunks_exact(in_dim).zip(out.chunks_exact_mut(R)) {
        // SAFETY: the caller checked the features; the rows were checked above.
        ys.copy_from_slice(&unsafe { dots_bf16::<R>(rows, w) });
    }
}
