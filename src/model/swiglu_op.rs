//! The MLP's gate, `silu(gate) · up`, in training as one op with a
//! hand-written backward: candle's graph would keep `silu(gate)` (an
//! intermediate-sized tensor per layer) besides the product; this op keeps
//! the product only and recomputes the sigmoid in backward.

use super::precomputed::Handoff;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

struct SwiGlu {
    value: Handoff,
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.value.cpu(self.name())
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.value.cuda(self.name())
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _label = crate::profile::scope(crate::profile::Label::Backward);
        // silu(g) = g·σ(g); silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
        let dtype = gate.dtype();
        let g32 = gate.to_dtype(DType::F32)?;
        let grad32 = grad.to_dtype(DType::F32)?;
        let sigmoid = candle_nn::ops::sigmoid(&g32)?;
        let d_up = (&grad32 * (&g32 * &sigmoid)?)?;
        let slope = (&sigmoid * ((&g32 * (1.0 - &sigmoid)?)? + 1.0)?)?;
        let d_gate = ((grad32 * up.to_dtype(DType::F32)?)? * slope)?;
        Ok((Some(d_gate.to_dtype(dtype)?), Some(d_up.to_dtype(dtype)?)))
    }
}

/// `silu(gate) · up`, differentiable with respect to both.
pub fn swiglu_train(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let value = (candle_nn::ops::silu(&gate.detach())? * up.detach())?;
    gate.apply_op2(
        up,
        SwiGlu {
            value: Handoff::new(value),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn equals_the_plain_graph_in_value_and_gradients() {
        let dev = Device::Cpu;
        let randn = |shape: &[usize]| Tensor::randn(0f32, 2.0, shape, &dev).unwrap();
        let gate = Var::from_tensor(&randn(&[3, 4, 10])).unwrap();
        let up = Var::from_tensor(&randn(&[3, 4, 10])).unwrap();
        let probe = randn(&[3, 4, 10]);
        let ours = swiglu_train(&gate, &up).unwrap();
        let plain = (candle_nn::ops::silu(&gate).unwrap() * up.as_tensor()).unwrap();
        assert!(crate::model::max_abs_diff(&ours, &plain).unwrap() < 1e-6);
        let grads = |y: Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let (g_ours, g_plain) = (grads(ours), grads(plain));
        for v in [&gate, &up] {
            let diff = crate::model::max_abs_diff(g_ours.get(v).unwrap(), g_plain.get(v).unwrap())
                .unwrap();
            assert!(diff < 1e-5, "gradient differs by {diff}");
        }
    }
}
