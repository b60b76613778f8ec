//! Cross-entropy over the output projection for training, with a backward
//! pass that never materialises more than one `[rows, vocab]` matrix.
//!
//! Autograd through `logits -> max -> exp -> sum -> log` keeps several
//! vocabulary-sized intermediates per chunk (600 KB a row at 152k tokens).
//! Here the forward pass computes, chunk by chunk outside the graph, each
//! row's loss and its gradient with respect to the row: `(softmax - onehot)
//! @ W`, `[rows, hidden]`. Only that is kept for the backward pass (which
//! scales it by the incoming gradient), so a chunk's `[rows, vocab]` logits
//! are freed before the next chunk's are made: 200 MB kept for 1,024
//! trained rows at SmolLM2's 49k vocabulary became 2.4 MB. On the CPU in
//! f32 the softmax and its gradient are one vectorised pass over each row
//! of logits, in place (candle's ops made five more `[rows, vocab]`
//! tensors and called libm's `expf` per logit).

use super::{product, softmax_rows};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, D, DType, Layout, Result, Shape, Tensor};

/// Rows whose logits are computed at once.
const CHUNK_ROWS: usize = 64;

/// Rows whose logits are computed at once by the CPU kernels (`gemv::head`):
/// each chunk reads the whole weight from memory once.
const HEAD_CHUNK_ROWS: usize = 128;

struct CrossEntropy {
    /// Per-row loss `[rows]`, computed without a graph.
    value: super::precomputed::Handoff,
    /// Gradient of each row's loss with respect to the row, `[rows, hidden]`, f32.
    drows: Tensor,
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(&self, _x: &CpuStorage, _layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.value.cpu(self.name())
    }

    fn cuda_fwd(&self, _x: &CudaStorage, _layout: &Layout) -> Result<(CudaStorage, Shape)> {
        self.value.cuda(self.name())
    }

    fn bwd(&self, rows: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let _label = crate::profile::scope(crate::profile::Label::BackwardLogits);
        let grad = grad.to_dtype(DType::F32)?.unsqueeze(1)?;
        Ok(Some(
            self.drows.broadcast_mul(&grad)?.to_dtype(rows.dtype())?,
        ))
    }
}

/// Per-row cross-entropy `[rows]` of `rows @ weight.T` against `targets`,
/// differentiable with respect to `rows` only.
pub fn cross_entropy_rows(rows: &Tensor, weight: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let device = rows.device();
    let detached = rows.detach();
    let vocab = weight.dim(0)?;
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        candle_core::bail!("target token {bad} is outside the vocabulary of {vocab}");
    }
    if let Some((value, drows)) = through_bf16_head_kernels(&detached, weight, targets)? {
        return rows.apply_op1(CrossEntropy {
            value: super::precomputed::Handoff::new(value),
            drows,
        });
    }
    let weight32 = weight.to_dtype(DType::F32)?;
    let mut values = Vec::new();
    let mut drows = Vec::new();
    let weight32_t = weight32.t()?;
    if let Some((value, drows)) = through_head_kernels(&detached, &weight32, targets)? {
        return rows.apply_op1(CrossEntropy {
            value: super::precomputed::Handoff::new(value),
            drows,
        });
    }
    for (start, chunk) in targets
        .chunks(CHUNK_ROWS)
        .enumerate()
        .map(|(i, c)| (i * CHUNK_ROWS, c))
    {
        let x = detached.narrow(0, start, chunk.len())?;
        if let Some(logits) = product::sum_of_products_vec(&[(1.0, &x, &weight32_t)])? {
            let (losses, dlogits) = softmax_rows::cross_entropy(logits, chunk);
            values.push(Tensor::from_vec(losses, chunk.len(), device)?);
            let dlogits = Tensor::from_vec(dlogits, (chunk.len(), vocab), device)?;
            drows.push(dlogits.matmul(&weight32)?);
            continue;
        }
        let logits = x.matmul(&weight.t()?)?.to_dtype(DType::F32)?;
        let max = logits.max_keepdim(D::Minus1)?;
        let shifted = logits.broadcast_sub(&max)?;
        let exp = shifted.exp()?;
        let sum = exp.sum_keepdim(D::Minus1)?;
        let target = Tensor::new(chunk, device)?.unsqueeze(1)?;
        let picked = shifted.gather(&target, 1)?;
        values.push((sum.log()? - picked)?.squeeze(1)?);
        let softmax = exp.broadcast_div(&sum)?;
        let minus_one = Tensor::full(-1f32, (chunk.len(), 1), device)?;
        let dlogits = softmax.scatter_add(&target, &minus_one, 1)?;
        drows.push(dlogits.matmul(&weight32)?);
    }
    let value = Tensor::cat(&values, 0)?.contiguous()?;
    rows.apply_op1(CrossEntropy {
        value: super::precomputed::Handoff::new(value),
        drows: Tensor::cat(&drows, 0)?,
    })
}

/// Per-row losses and gradients with respect to the rows from the CPU's
/// f32 kernels for the output projection, where they run.
#[cfg(target_arch = "x86_64")]
fn through_head_kernels(
    rows: &Tensor,
    weight32: &Tensor,
    targets: &[u32],
) -> Result<Option<(Tensor, Tensor)>> {
    use super::gemv::head;
    let hidden = weight32.dim(1)?;
    if !rows.device().is_cpu() || !head::available(hidden) {
        return Ok(None);
    }
    on_weight_slice::<f32>(rows, weight32, targets, |xs, w, chunk| {
        head::cross_entropy(xs, w, hidden, chunk)
    })
}

/// [`through_head_kernels`] for a bf16 weight, on the CPU's bf16 pair
/// kernels where it has them: the weight is read as it is stored, never
/// widened to f32.
#[cfg(target_arch = "x86_64")]
fn through_bf16_head_kernels(
    rows: &Tensor,
    weight: &Tensor,
    targets: &[u32],
) -> Result<Option<(Tensor, Tensor)>> {
    use super::gemv::head;
    use half::slice::HalfFloatSliceExt;
    let hidden = weight.dim(1)?;
    if weight.dtype() != DType::BF16 || !rows.device().is_cpu() || !head::available_bf16(hidden) {
        return Ok(None);
    }
    on_weight_slice::<half::bf16>(rows, weight, targets, |xs, w, chunk| {
        head::cross_entropy_bf16(xs, w.reinterpret_cast(), hidden, chunk)
    })
}

/// `kernel`'s per-row losses and gradients over the rows, a chunk of
/// [`HEAD_CHUNK_ROWS`] at a time, on the values of the CPU weight.
#[cfg(target_arch = "x86_64")]
fn on_weight_slice<W: candle_core::WithDType>(
    rows: &Tensor,
    weight: &Tensor,
    targets: &[u32],
    kernel: impl Fn(&[f32], &[W], &[u32]) -> (Vec<f32>, Vec<f32>),
) -> Result<Option<(Tensor, Tensor)>> {
    use candle_core::Storage;
    let hidden = weight.dim(1)?;
    let weight = weight.contiguous()?;
    let (storage, layout) = weight.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let w = &cpu.as_slice::<W>()?[layout.start_offset()..][..weight.elem_count()];
    let x = super::gemv::rows_of(rows)?;
    let (mut losses, mut drows) = (
        Vec::with_capacity(targets.len()),
        Vec::with_capacity(x.len()),
    );
    for (chunk, xs) in targets
        .chunks(HEAD_CHUNK_ROWS)
        .zip(x.chunks(HEAD_CHUNK_ROWS * hidden))
    {
        let (chunk_losses, chunk_drows) = kernel(xs, w, chunk);
        losses.extend(chunk_losses);
        drows.extend(chunk_drows);
    }
    let device = rows.device();
    Ok(Some((
        Tensor::from_vec(losses, targets.len(), device)?,
        Tensor::from_vec(drows, (targets.len(), hidden), device)?,
    )))
}

#[cfg(not(target_arch = "x86_64"))]
fn through_head_kernels(_: &Tensor, _: &Tensor, _: &[u32]) -> Result<Option<(Tensor, Tensor)>> {
    Ok(None)
}

#[cfg(not(target_arch = "x86_64"))]
fn through_bf16_head_kernels(
    _: &Tensor,
    _: &Tensor,
    _: &[u32],
) -> Result<Option<(Tensor, Tensor)>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_autograd_cross_entropy() {
        // 8 wide: candle's ops; 32 wide: the CPU kernels where there are
        // some (`gemv::head`), over more than one chunk of rows.
        for hidden in [8, 32] {
            matches_autograd_at(hidden);
        }
    }

    fn matches_autograd_at(hidden: usize) {
        let dev = Device::Cpu;
        let rows =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (300, hidden), &dev).unwrap()).unwrap();
        let weight = Tensor::randn(0f32, 1.0, (50, hidden), &dev).unwrap();
        let targets: Vec<u32> = (0..300).map(|i| (i * 7 % 50) as u32).collect();
        let ours = cross_entropy_rows(rows.as_tensor(), &weight, &targets)
            .unwrap()
            .sum_all()
            .unwrap();
        let logits = rows.as_tensor().matmul(&weight.t().unwrap()).unwrap();
        let lse = logits.exp().unwrap().sum_keepdim(1).unwrap().log().unwrap();
        let picked = logits
            .gather(
                &Tensor::new(targets.as_slice(), &dev)
                    .unwrap()
                    .unsqueeze(1)
                    .unwrap(),
                1,
            )
            .unwrap();
        let plain = (lse - picked).unwrap().sum_all().unwrap();
        let (a, b) = (
            ours.to_scalar::<f32>().unwrap(),
            plain.to_scalar::<f32>().unwrap(),
        );
        assert!((a - b).abs() < 1e-3 * b.abs(), "{a} vs {b}");
        let ga = ours
            .backward()
            .unwrap()
            .get(rows.as_tensor())
            .unwrap()
            .clone();
        let gb = plain
            .backward()
            .unwrap()
            .get(rows.as_tensor())
            .unwrap()
            .clone();
        let diff = crate::model::max_abs_diff(&ga, &gb).unwrap();
        assert!(diff < 1e-4, "{diff}");
    }
}
