//! Matrix-vector products against bf16 weights for CPU decoding.
//!
//! Decoding one token reads every weight once, so its speed is memory
//! bandwidth over bytes per weight. candle's CPU bf16 matmul has no SIMD
//! kernel; this one widens bf16 to f32 in registers (a 16-bit shift) and
//! runs at memory speed, reading half the bytes of f32 weights.

use candle_core::{DType, Device, Result, Storage, Tensor};
use half::bf16;
use rayon::prelude::*;

/// Rows of `x` up to which the GEMV path is used (decode steps, short prompts).
pub const MAX_ROWS: usize = 4;

/// Whether `x @ w.T` should take this path.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
    w.dtype() == DType::BF16
        && matches!(w.device(), Device::Cpu)
        && rows <= MAX_ROWS
        && w.rank() == 2
}

/// `x @ w.T` for `x` `[..., in]` and bf16 `w` `[out, in]`; the result has x's dtype.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (out_dim, in_dim) = w.dims2()?;
    let w = w.contiguous()?;
    let (storage, layout) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("bf16 GEMV needs CPU weights");
    };
    let all: &[bf16] = cpu.as_slice::<bf16>()?;
    let weights = &all[layout.start_offset()..layout.start_offset() + out_dim * in_dim];
    let mut lead: Vec<usize> = x.dims().to_vec();
    lead.pop();
    let inputs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; inputs.len() / in_dim * out_dim];
    for (row, y) in inputs
        .chunks_exact(in_dim)
        .zip(out.chunks_exact_mut(out_dim))
    {
        y.par_chunks_mut(256).enumerate().for_each(|(block, ys)| {
            for (k, yk) in ys.iter_mut().enumerate() {
                let j = block * 256 + k;
                *yk = dot(row, bytemuck_u16(&weights[j * in_dim..(j + 1) * in_dim]));
            }
        });
    }
    lead.push(out_dim);
    Tensor::from_vec(out, lead, x.device())?.to_dtype(x.dtype())
}

fn bytemuck_u16(w: &[bf16]) -> &[u16] {
    // SAFETY: bf16 is a transparent wrapper of u16 (same size and alignment).
    unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u16>(), w.len()) }
}

fn dot(x: &[f32], w: &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { dot_avx512(x, w) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { dot_avx2(x, w) };
        }
    }
    dot_portable(x, w)
}

/// Sixteen running sums the compiler keeps in vector registers.
#[inline(always)]
fn dot_portable(x: &[f32], w: &[u16]) -> f32 {
    let mut acc = [0f32; 16];
    let (xc, xr) = x.split_at(x.len() / 16 * 16);
    let (wc, wr) = w.split_at(xc.len());
    for (xs, ws) in xc.chunks_exact(16).zip(wc.chunks_exact(16)) {
        for k in 0..16 {
            acc[k] = xs[k].mul_add(f32::from_bits((ws[k] as u32) << 16), acc[k]);
        }
    }
    let tail: f32 = xr
        .iter()
        .zip(wr)
        .map(|(a, &b)| a * f32::from_bits((b as u32) << 16))
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(x: &[f32], w: &[u16]) -> f32 {
    dot_portable(x, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(x: &[f32], w: &[u16]) -> f32 {
    dot_portable(x, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_matmul() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 2, 37), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (300, 37), &dev)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let expected = x
            .broadcast_matmul(&w.to_dtype(DType::F32).unwrap().t().unwrap())
            .unwrap();
        let got = matmul_t(&x, &w).unwrap();
        let diff = crate::model::max_abs_diff(&expected, &got).unwrap();
        assert!(diff < 1e-3, "{diff}");
    }
}
