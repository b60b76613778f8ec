//! Rotary embeddings in training as one op with a hand-written backward.
//!
//! candle's fused rope kernel has no backward, and its differentiable
//! version keeps four or five input-sized tensors per call (halves, the
//! rotated copy, both products, the sum) for queries and keys in every
//! layer. A rotation's gradient is the opposite rotation, so this op runs
//! the fused kernel both ways and keeps only its output.

use super::precomputed::Handoff;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape, Tensor};

struct RopeOp {
    value: Handoff,
    cos: Tensor,
    sin: Tensor,
}

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        self.value.cpu(self.name())
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        self.value.cuda(self.name())
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let _label = crate::profile::scope(crate::profile::Label::Backward);
        let back = candle_nn::rotary_emb::rope(&grad.contiguous()?, &self.cos, &self.sin.neg()?)?;
        Ok(Some(back))
    }
}

/// `x` `[b, heads, t, head_dim]` (contiguous) rotated by the tables `cos`,
/// `sin` (`[t, head_dim / 2]` or `[b, t, head_dim / 2]`), as candle's `rope`
/// computes it; differentiable with respect to `x`.
pub fn rope_train(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (cos, sin) = (cos.contiguous()?, sin.contiguous()?);
    let value = candle_nn::rotary_emb::rope(&x.detach(), &cos, &sin)?;
    x.apply_op1(RopeOp {
        value: Handoff::new(value),
        cos,
        sin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn equals_the_differentiable_rope_in_value_and_gradient() {
        let dev = Device::Cpu;
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let x = Var::from_tensor(&randn(&[2, 3, 5, 8])).unwrap();
        let angles = randn(&[5, 4]);
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let probe = randn(&[2, 3, 5, 8]);
        let ours = rope_train(&x, &cos, &sin).unwrap();
        let reference = candle_nn::rotary_emb::rope_slow(&x, &cos, &sin).unwrap();
        assert!(crate::model::max_abs_diff(&ours, &reference).unwrap() < 1e-6);
        let grad = |y: Tensor| {
            let g = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(&x).unwrap().clone()
        };
        let diff = crate::model::max_abs_diff(&grad(ours), &grad(reference)).unwrap();
        assert!(diff < 1e-5, "gradient differs by {diff}");
    }
}
