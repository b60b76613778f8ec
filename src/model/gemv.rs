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
    let rows: Vec<&[f32]> = inputs.chunks_exact(in_dim).collect();
    // Each weight row is read once for every input row: `by_output` holds
    // the results output-major, `[out, rows]`.
    let mut by_output = vec![0f32; rows.len() * out_dim];
    by_output
        .par_chunks_mut(256 * rows.len().max(1))
        .enumerate()
        .for_each(|(block, ys)| {
            for (k, yk) in ys.chunks_exact_mut(rows.len()).enumerate() {
                let j = block * 256 + k;
                dots(
                    &rows,
                    bytemuck_u16(&weights[j * in_dim..(j + 1) * in_dim]),
                    yk,
                );
            }
        });
    let mut out = vec![0f32; by_output.len()];
    for (j, ys) in by_output.chunks_exact(rows.len().max(1)).enumerate() {
        for (r, &y) in ys.iter().enumerate() {
            out[r * out_dim + j] = y;
        }
    }
    lead.push(out_dim);
    Tensor::from_vec(out, lead, x.device())?.to_dtype(x.dtype())
}

fn bytemuck_u16(w: &[bf16]) -> &[u16] {
    // SAFETY: bf16 is a transparent wrapper of u16 (same size and alignment).
    unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u16>(), w.len()) }
}

/// `out[r] = rows[r] · w` for every input row, widening `w` once for all of
/// them; the row count is made a constant so the sums stay in registers.
fn dots(rows: &[&[f32]], w: &[u16], out: &mut [f32]) {
    match rows.len() {
        1 => out.copy_from_slice(&dots_n::<1>(rows, w)),
        2 => out.copy_from_slice(&dots_n::<2>(rows, w)),
        3 => out.copy_from_slice(&dots_n::<3>(rows, w)),
        _ => {
            for (chunk, ys) in rows.chunks(4).zip(out.chunks_mut(4)) {
                if chunk.len() == 4 {
                    ys.copy_from_slice(&dots_n::<4>(chunk, w));
                } else {
                    dots(chunk, w, ys);
                }
            }
        }
    }
}

fn dots_n<const N: usize>(rows: &[&[f32]], w: &[u16]) -> [f32; N] {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { dots_avx512::<N>(rows, w) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { dots_avx2::<N>(rows, w) };
        }
    }
    dots_portable::<N>(rows, w)
}

/// Sixteen running sums per input row that the compiler keeps in vector
/// registers; each row's sums run in the same order whatever `N` is, so a
/// row's result does not depend on the rows beside it.
#[inline(always)]
fn dots_portable<const N: usize>(rows: &[&[f32]], w: &[u16]) -> [f32; N] {
    let mut acc = [[0f32; 16]; N];
    let whole = w.len() / 16 * 16;
    for (c, ws) in w[..whole].chunks_exact(16).enumerate() {
        let mut wide = [0f32; 16];
        for k in 0..16 {
            wide[k] = f32::from_bits((ws[k] as u32) << 16);
        }
        for r in 0..N {
            let xs = &rows[r][c * 16..c * 16 + 16];
            for k in 0..16 {
                acc[r][k] = xs[k].mul_add(wide[k], acc[r][k]);
            }
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = rows[r][whole..]
            .iter()
            .zip(&w[whole..])
            .map(|(a, &b)| a * f32::from_bits((b as u32) << 16))
            .sum();
        acc[r].iter().sum::<f32>() + tail
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512<const N: usize>(rows: &[&[f32]], w: &[u16]) -> [f32; N] {
    dots_portable::<N>(rows, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2<const N: usize>(rows: &[&[f32]], w: &[u16]) -> [f32; N] {
    dots_portable::<N>(rows, w)
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

    #[test]
    fn each_row_gets_what_it_gets_alone() {
        let dev = Device::Cpu;
        // Five rows: a group of four and one more; 37 leaves a tail past 16s.
        let x = Tensor::randn(0f32, 1.0, (5, 37), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (300, 37), &dev)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let together = matmul_t(&x, &w).unwrap();
        for r in 0..5 {
            let alone = matmul_t(&x.narrow(0, r, 1).unwrap(), &w).unwrap();
            let diff =
                crate::model::max_abs_diff(&together.narrow(0, r, 1).unwrap(), &alone).unwrap();
            assert_eq!(diff, 0.0, "row {r}");
        }
    }
}
