//! Square blocks of 32-bit values turned over in registers: the panel
//! kernels' packing reads a strip of weight rows a register per row and
//! stores it a register per input. Gathering a register of one input from
//! 16 rows instead took ~65 cycles per gather on a Zen 5 EPYC: packing was
//! half of a prompt's product time.

use std::arch::x86_64::*;

/// Rows `c` of 16 values at `p + c * row_bytes` (any alignment) as
/// columns: lane `c` of `out[i]` is row `c`'s value `i`. The caller's CPU
/// has avx512f. (No closures over registers here: a closure is compiled
/// without the caller's target features.)
#[inline(always)]
pub(super) unsafe fn columns_16(p: *const u8, row_bytes: usize, out: &mut [__m512; 16]) {
    // SAFETY: the caller ensures 16 rows of 64 readable bytes.
    unsafe {
        // Pairs of rows interleaved a value, then a pair of values, at a
        // time: `by_four[4 * j + e]` holds, in each 128-bit chunk `l`,
        // value `4 * l + e` of rows `4 * j` to `4 * j + 3`.
        let mut by_four = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            let row = |c: usize| p.add((4 * j + c) * row_bytes).cast::<f32>();
            let [a, b, c, d] = [0, 1, 2, 3].map(row);
            let [a, b, c, d] = [
                _mm512_loadu_ps(a),
                _mm512_loadu_ps(b),
                _mm512_loadu_ps(c),
                _mm512_loadu_ps(d),
            ];
            let (ab_low, ab_high) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
            let (cd_low, cd_high) = (_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
            (by_four[4 * j], by_four[4 * j + 1]) = pairs_16(ab_low, cd_low);
            (by_four[4 * j + 2], by_four[4 * j + 3]) = pairs_16(ab_high, cd_high);
        }
        // Then the 4 x 4 chunks of each `e`: column `4 * l + e` takes chunk
        // `l` of `by_four[e]`, `by_four[4 + e]`, `by_four[8 + e]` and
        // `by_four[12 + e]`.
        for e in 0..4 {
            let [b0, b1, b2, b3] = [by_four[e], by_four[4 + e], by_four[8 + e], by_four[12 + e]];
            let (low01, high01) = (
                _mm512_shuffle_f32x4::<0x44>(b0, b1),
                _mm512_shuffle_f32x4::<0xee>(b0, b1),
            );
            let (low23, high23) = (
                _mm512_shuffle_f32x4::<0x44>(b2, b3),
                _mm512_shuffle_f32x4::<0xee>(b2, b3),
            );
            out[e] = _mm512_shuffle_f32x4::<0x88>(low01, low23);
            out[4 + e] = _mm512_shuffle_f32x4::<0xdd>(low01, low23);
            out[8 + e] = _mm512_shuffle_f32x4::<0x88>(high01, high23);
            out[12 + e] = _mm512_shuffle_f32x4::<0xdd>(high01, high23);
        }
    }
}

/// The low and the high 64-bit halves of each 128-bit chunk of `x` and
/// `y`, interleaved.
#[inline(always)]
unsafe fn pairs_16(x: __m512, y: __m512) -> (__m512, __m512) {
    // SAFETY: the caller's CPU has avx512f.
    unsafe {
        let (x, y) = (_mm512_castps_pd(x), _mm512_castps_pd(y));
        (
            _mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)),
        )
    }
}

/// [`columns_16`] for 8 rows of 8 values. The caller's CPU has avx.
#[inline(always)]
pub(super) unsafe fn columns_8(p: *const u8, row_bytes: usize, out: &mut [__m256; 8]) {
    // SAFETY: the caller ensures 8 rows of 32 readable bytes.
    unsafe {
        let mut by_four = [_mm256_setzero_ps(); 8];
        for j in 0..2 {
            let row = |c: usize| p.add((4 * j + c) * row_bytes).cast::<f32>();
            let [a, b, c, d] = [0, 1, 2, 3].map(row);
            let [a, b, c, d] = [
                _mm256_loadu_ps(a),
                _mm256_loadu_ps(b),
                _mm256_loadu_ps(c),
                _mm256_loadu_ps(d),
            ];
            let (ab_low, ab_high) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
            let (cd_low, cd_high) = (_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
            (by_four[4 * j], by_four[4 * j + 1]) = pairs_8(ab_low, cd_low);
            (by_four[4 * j + 2], by_four[4 * j + 3]) = pairs_8(ab_high, cd_high);
        }
        for e in 0..4 {
            let (b0, b1) = (by_four[e], by_four[4 + e]);
            out[e] = _mm256_permute2f128_ps::<0x20>(b0, b1);
            out[4 + e] = _mm256_permute2f128_ps::<0x31>(b0, b1);
        }
    }
}

/// [`pairs_16`] for 256-bit registers.
#[inline(always)]
unsafe fn pairs_8(x: __m256, y: __m256) -> (__m256, __m256) {
    // SAFETY: the caller's CPU has avx.
    unsafe {
        let (x, y) = (_mm256_castps_pd(x), _mm256_castps_pd(y));
        (
            _mm256_castpd_ps(_mm256_unpacklo_pd(x, y)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row stride in values: rows start at odd multiples of 4 bytes.
    const STRIDE_PAST: usize = 3;

    /// `width` rows of `width + STRIDE_PAST` values.
    fn rows(width: usize) -> Vec<f32> {
        (0..width * (width + STRIDE_PAST))
            .map(|i| i as f32)
            .collect()
    }

    /// Column `i` lane `c` must be row `c`'s value `i`.
    fn check(width: usize, values: &[f32], columns: &[Vec<f32>]) {
        let stride = width + STRIDE_PAST;
        for (i, column) in columns.iter().enumerate() {
            let want: Vec<f32> = (0..width).map(|c| values[c * stride + i]).collect();
            assert_eq!(column, &want, "column {i} of {width}");
        }
    }

    #[target_feature(enable = "avx512f")]
    fn turned_16(values: &[f32]) -> Vec<Vec<f32>> {
        let mut out = [_mm512_setzero_ps(); 16];
        // SAFETY: 16 rows of 16 readable values `16 + STRIDE_PAST` apart.
        unsafe { columns_16(values.as_ptr().cast(), (16 + STRIDE_PAST) * 4, &mut out) };
        let lanes = |v: __m512| {
            let mut lanes = [0f32; 16];
            // SAFETY: 16 values' room.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
            lanes.to_vec()
        };
        out.into_iter().map(lanes).collect()
    }

    #[target_feature(enable = "avx")]
    fn turned_8(values: &[f32]) -> Vec<Vec<f32>> {
        let mut out = [_mm256_setzero_ps(); 8];
        // SAFETY: 8 rows of 8 readable values `8 + STRIDE_PAST` apart.
        unsafe { columns_8(values.as_ptr().cast(), (8 + STRIDE_PAST) * 4, &mut out) };
        let lanes = |v: __m256| {
            let mut lanes = [0f32; 8];
            // SAFETY: 8 values' room.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            lanes.to_vec()
        };
        out.into_iter().map(lanes).collect()
    }

    #[test]
    fn blocks_turn_over() {
        if is_x86_feature_detected!("avx512f") {
            let values = rows(16);
            // SAFETY: the CPU has avx512f.
            check(16, &values, &unsafe { turned_16(&values) });
        }
        if is_x86_feature_detected!("avx") {
            let values = rows(8);
            // SAFETY: the CPU has avx.
            check(8, &values, &unsafe { turned_8(&values) });
        }
    }
}
