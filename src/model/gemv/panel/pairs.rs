//! The panel kernel on bf16 pairs: weights packed as they are stored (two
//! neighbouring inputs' bf16 values in each 32-bit lane) and inputs
//! broadcast a pair at a time, multiplied with `vdpbf16ps`. Each product of
//! two bf16 values is exact in f32, so only the order of the additions
//! differs from the widening kernel.

use super::super::x86::{Avx512, Lanes};
use super::{Multiply, STRIPS, places, products_in, turn_over};
use std::arch::x86_64::*;
use std::sync::OnceLock;
use std::time::Instant;

/// Whether this CPU multiplies bf16 pairs faster than f32 (asked once:
/// a few hundred microseconds of timing). `TUNEBENCH_BF16_PAIRS=0` or `1`
/// decides instead, to compare the two on one machine.
pub(in crate::model::gemv) fn fast() -> bool {
    static FAST: OnceLock<bool> = OnceLock::new();
    *FAST.get_or_init(|| {
        let has = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16");
        match std::env::var("TUNEBENCH_BF16_PAIRS").as_deref() {
            Ok("0") => false,
            Ok("1") => has,
            // SAFETY: the CPU has the features each timing is compiled for.
            _ => has && unsafe { pair_flops() > 1.25 * fma_flops() },
        }
    })
}

/// Independent chains of sums in the timings: enough to cover either
/// instruction's latency at its throughput.
const CHAINS: usize = 12;

/// Steps of each timing; the best of [`ROUNDS`] counts.
const STEPS: usize = 2048;
const ROUNDS: usize = 5;

/// Best rate of `vdpbf16ps` on this core, in flops per second.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pair_flops() -> f64 {
    let x: __m512bh = unsafe { std::mem::transmute(_mm512_set1_ps(std::hint::black_box(0.5))) };
    best_rate(64, || {
        let mut sums = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..STEPS {
            for s in &mut sums {
                *s = _mm512_dpbf16_ps(*s, x, x);
            }
        }
        sums
    })
}

/// Best rate of f32 FMA on this core, in flops per second.
#[target_feature(enable = "avx512f")]
unsafe fn fma_flops() -> f64 {
    let x = _mm512_set1_ps(std::hint::black_box(0.5));
    best_rate(32, || {
        let mut sums = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..STEPS {
            for s in &mut sums {
                *s = _mm512_fmadd_ps(x, x, *s);
            }
        }
        sums
    })
}

/// Flops per second of `chains` (each step does `flops_per_op` per chain),
/// the best of [`ROUNDS`].
#[inline(always)]
fn best_rate(flops_per_op: usize, chains: impl Fn() -> [__m512; CHAINS]) -> f64 {
    let best = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(chains());
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    (STEPS * CHAINS * flops_per_op) as f64 / best.max(1e-9)
}

/// Input rows as bf16 pairs: each row's values two by two, the first in
/// the low half of a 32-bit word, held as f32 bit patterns for the kernel
/// (which only broadcasts them). `in_dim` is even.
pub(in crate::model::gemv) fn words(bf16_bits: &[u16]) -> Vec<f32> {
    let pair = |p: &[u16]| f32::from_bits(p[0] as u32 | (p[1] as u32) << 16);
    bf16_bits.chunks_exact(2).map(pair).collect()
}

/// `out[r * m + j] = x_r · w_j` for the input rows `x_r` of `words` (rows
/// of `in_dim / 2` pairs, from [`words`]) and the `m` bf16 weight rows
/// `w_j` of `weights`. `in_dim` is even, and the CPU has avx512f and
/// avx512bf16.
pub(in crate::model::gemv) fn products(
    words: &[f32],
    weights: &[u16],
    in_dim: usize,
    out: &mut [f32],
) {
    let pairs = in_dim / 2;
    let (n, m) = (words.len() / pairs, weights.len() / in_dim);
    assert!(in_dim.is_multiple_of(2) && words.len() == n * pairs && weights.len() == m * in_dim);
    assert!(out.len() == n * m);
    assert!(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"));
    // SAFETY: the features and lengths were checked above.
    unsafe { products_avx512_bf16(words, weights, pairs, out) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn products_avx512_bf16(words: &[f32], weights: &[u16], pairs: usize, out: &mut [f32]) {
    let mut packed = Vec::new();
    // SAFETY: the CPU has the features; the caller checked the lengths.
    unsafe {
        pack(weights, pairs, &mut packed);
        products_in::<Avx512, Pairs>(words, &packed, pairs, places(out))
    }
}

/// Broadcast input pairs times packed weight pairs.
pub(super) struct Pairs;

impl Multiply<Avx512> for Pairs {
    #[inline(always)]
    unsafe fn madd(input: __m512, weights: __m512, sums: __m512) -> __m512 {
        // SAFETY: the caller's CPU has avx512bf16; the types are 512 bits.
        unsafe {
            let (input, weights) =
                std::mem::transmute::<(__m512, __m512), (__m512bh, __m512bh)>((input, weights));
            _mm512_dpbf16_ps(sums, input, weights)
        }
    }
}

/// The weights' bf16 pairs in the layout `super::pack` gives f32 values,
/// with pairs for inputs: group `g` of [`STRIPS`] strips of 16 rows starts
/// at `g * 48 * pairs`, and its pair `p` of row `48 * g + c` is at
/// `p * strips * 16 + c` from there. Rows past the last are zero.
#[inline(always)]
pub(super) unsafe fn pack(weights: &[u16], pairs: usize, packed: &mut Vec<f32>) {
    let m = weights.len() / (2 * pairs);
    let len = m.div_ceil(STRIPS * Avx512::WIDTH) * STRIPS * Avx512::WIDTH * pairs;
    // Not zeroed first (`resize` would): `pack_groups` writes every value.
    packed.clear();
    packed.reserve(len);
    // SAFETY: as the caller's; the `len` values written lie in the
    // capacity just reserved.
    unsafe {
        pack_groups(weights, pairs, packed.as_mut_ptr());
        packed.set_len(len);
    }
}

/// [`pack`] into `to`, which has room for the weights' groups (rounded up
/// to whole ones): every value of it written, rows past the last and the
/// strips a last, narrower group lacks as zeros, so `to` may start
/// uninitialised.
#[inline(always)]
pub(super) unsafe fn pack_groups(weights: &[u16], pairs: usize, to: *mut f32) {
    let width = Avx512::WIDTH;
    let m = weights.len() / (2 * pairs);
    let group_width = STRIPS * width;
    // The pairs are read as 32-bit words at any 2-byte alignment.
    let words: *const f32 = weights.as_ptr().cast();
    for first in (0..m).step_by(group_width) {
        let strips = (m - first).min(group_width).div_ceil(width);
        // SAFETY (all below): row `top + c`'s pair `p` lies within
        // `weights` for every `c < rows` and `p < pairs`; the group's
        // `group_width * pairs` values from `dst` lie in `to`.
        let dst = unsafe { to.add(first * pairs) };
        for s in 0..strips {
            let top = first + s * width;
            let rows = (m - top).min(width);
            let at = |p: usize| (p * strips + s) * width;
            unsafe {
                let strip = words.add(top * pairs);
                if rows < width {
                    for p in 0..pairs {
                        for c in 0..width {
                            let value = match c < rows {
                                true => strip.add(c * pairs + p).read_unaligned(),
                                false => 0.0,
                            };
                            dst.add(at(p) + c).write(value);
                        }
                    }
                    continue;
                }
                turn_over::<Avx512>(strip, pairs, |p| dst.add(at(p)));
            }
        }
        let used = strips * width * pairs;
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(dst.add(used), 0, group_width * pairs - used) };
    }
}
