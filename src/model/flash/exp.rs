//! `exp` for the softmax tiles without a libm call per element, so the loop
//! over a tile's row is vectorised: Cephes' `expf` (range reduction by
//! ln 2, a degree-5 polynomial, the exponent put back through the bits),
//! accurate to about one float ulp.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 in two parts, so that `x − n·ln 2` stays exact.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// 1.5 · 2²³: adding and subtracting it rounds to the nearest integer, which
/// then sits in the low bits.
const ROUNDER: f32 = 12_582_912.0;

/// `e^x` for `x` in the range of the normal floats (clamped to it).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let power = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let poly = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 0.166_666_65)
        * r
        + 0.5;
    let mantissa = poly * r * r + r + 1.0;
    mantissa * f32::from_bits(((power + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn agrees_with_libm_to_a_few_ulp() {
        let mut worst: f32 = 0.0;
        for i in 0..=200_000 {
            let x = -87.0 + i as f32 * (95.0 / 200_000.0);
            let (ours, libm) = (super::exp(x), x.exp());
            worst = worst.max(((ours - libm) / libm).abs());
        }
        assert!(worst < 4e-7, "largest relative error {worst}");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(-1000.0) < 1e-37);
    }
}
