//! `e^x` in plain f32 arithmetic that the compiler vectorises: libm's
//! `expf` is one call per value, and in a decoding step's softmax and
//! SwiGLU those calls took longer than the arithmetic around them.

/// `e^x` within 2 ulp of libm for `x` in [-87, 88] (clamped there: the
/// softmax and SiLU need nothing beyond). 2^n from the exponent bits times
/// a degree-6 polynomial of the remainder `|r| <= ln 2 / 2`, with ln 2
/// split in two so that `x - n ln 2` loses no bits. `n` is rounded by
/// adding and subtracting 1.5 · 2^23 rather than by `floor`, which is a
/// libm call where SSE4.1 is not enabled.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    // The rounded integer sits in the low bits of `shifted`.
    let power = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    p * f32::from_bits(((power + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_two_ulp_of_libm() {
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let (ours, libm) = (exp(x), x.exp());
            let ulp = (libm.to_bits() as i64 - ours.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}): {ours} against {libm}");
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(1000.0).is_finite());
    }
}
