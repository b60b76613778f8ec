//! RMSNorm in training as one op with a hand-written backward.
//!
//! Built from candle's ops (square, mean, add, sqrt, divide, multiply), the
//! graph keeps three input-sized tensors per norm until the backward pass;
//! this op keeps nothing but its output: the backward pass recomputes each
//! row's `1 / rms` from the input, which the graph holds anyway. The norm's
//! weight is frozen (LoRA does not train it), so only the input's gradient
//! is computed.

use super::precomputed::Handoff;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, D, DType, Layout, Result, Shape, Tensor};

struct RmsNormOp {
    value: Handoff,
    weight: Tensor,
    eps: f64,
}

/// `1 / sqrt(mean(x²) + eps)` of each row of `x32` (f32), `[..., 1]`.
fn inverse_rms(x32: &Tensor, eps: f64) -> Result<Tensor> {
    (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()
}

impl CustomOp1 for RmsNormOp {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        self.value.cpu(self.name())
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        self.value.cuda(self.name())
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let _label = crate::profile::scope(crate::profile::Label::Backward);
        // y = x̂ ∘ w with x̂ = x · r: dx = r · (g∘w − x̂ · mean(g∘w ∘ x̂)).
        let x32 = x.to_dtype(DType::F32)?;
        let r = inverse_rms(&x32, self.eps)?;
        let normed = x32.broadcast_mul(&r)?;
        drop(x32);
        let gw = grad
            .to_dtype(DType::F32)?
            .broadcast_mul(&self.weight.to_dtype(DType::F32)?)?;
        let along = (&gw * &normed)?.mean_keepdim(D::Minus1)?;
        let dx = (gw - normed.broadcast_mul(&along)?)?.broadcast_mul(&r)?;
        Ok(Some(dx.to_dtype(x.dtype())?))
    }
}

/// RMSNorm of `x`'s last dimension with a frozen `weight`, as transformers
/// computes it (in f32, back to `x`'s dtype, then times the weight);
/// differentiable with respect to `x`.
pub fn rms_norm_train(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    // Divided by the root as transformers does (candle's fused kernel
    // rounds differently, enough to move a first AdamW step past 1e-5).
    let x32 = x.detach().to_dtype(DType::F32)?;
    let rms = (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
    let value = x32
        .broadcast_div(&rms)?
        .to_dtype(x.dtype())?
        .broadcast_mul(weight)?;
    drop(x32);
    x.apply_op1(RmsNormOp {
        value: Handoff::new(value),
        weight: weight.clone(),
        eps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The graph the op replaces.
    fn plain(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
        let variance = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let normed = x
            .broadcast_div(&(variance + eps).unwrap().sqrt().unwrap())
            .unwrap();
        normed.broadcast_mul(w).unwrap()
    }

    #[test]
    fn equals_the_plain_graph_in_value_and_gradient() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (2, 7, 12), &dev).unwrap()).unwrap();
        let w = Tensor::randn(1f32, 0.3, 12, &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 7, 12), &dev).unwrap();
        let ours = rms_norm_train(&x, &w, 1e-5).unwrap();
        let reference = plain(&x, &w, 1e-5);
        assert!(crate::model::max_abs_diff(&ours, &reference).unwrap() < 1e-5);
        let grad = |y: Tensor| {
            let g = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(&x).unwrap().clone()
        };
        let diff = crate::model::max_abs_diff(&grad(ours), &grad(reference)).unwrap();
        assert!(diff < 1e-5, "gradient differs by {diff}");
    }
}
