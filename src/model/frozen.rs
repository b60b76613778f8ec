//! `x @ W.T` for a frozen weight, with a backward pass that computes only
//! the input's gradient.
//!
//! candle's matmul backward always computes both operands' gradients, so a
//! frozen weight would cost a weight-sized gradient (time and memory) on
//! every step. Here the product is computed outside the graph and attached
//! to `x` through a custom op whose backward is `grad @ W`.

use super::base_weight::FrozenWeight;
use super::gemv::{self, with_last};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

struct FrozenProduct {
    /// The product, computed without a graph.
    value: super::precomputed::Handoff,
    /// `[out, in]`; a quantized one is widened again for backward.
    weight: FrozenWeight,
}

impl CustomOp1 for FrozenProduct {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, _x: &CpuStorage, _layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.value.cpu(self.name())
    }

    fn cuda_fwd(&self, _x: &CudaStorage, _layout: &Layout) -> Result<(CudaStorage, Shape)> {
        self.value.cuda(self.name())
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let _label = crate::profile::scope(crate::profile::Label::BackwardFrozen);
        let weight = self.weight.dense()?;
        if weight.dtype() == DType::BF16 && grad.device().is_cpu() {
            // On the bf16 kernels where the CPU has them.
            let rows = grad.reshape(((), grad.dim(grad.rank() - 1)?))?;
            let d_x = match grad.dtype() {
                DType::F32 => super::lora_op::frozen_gradient_plus(&rows, &weight, &[])?,
                _ => super::lora_op::frozen_input_gradient(&rows, &weight)?,
            };
            return Ok(Some(d_x.reshape(with_last(grad, weight.dim(1)?))?));
        }
        Ok(Some(
            grad.broadcast_matmul(&weight.to_dtype(grad.dtype())?)?,
        ))
    }
}

/// `x @ weight.T` (`x` `[..., in]`, `weight` `[out, in]`) whose gradient
/// flows to `x` only.
pub fn frozen_matmul_t(x: &Tensor, weight: &FrozenWeight) -> Result<Tensor> {
    let value = training_product(&x.detach(), &weight.dense()?)?.contiguous()?;
    x.apply_op1(FrozenProduct {
        value: super::precomputed::Handoff::new(value),
        weight: weight.clone(),
    })
}

/// The frozen product `x @ w.T` of a training pass, outside the graph: a
/// bf16 weight on the CPU's bf16 pairs where it has them (f32 activations
/// rounded to bf16 on the way in), candle's matmul otherwise.
pub(super) fn training_product(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F32
        && x.device().is_cpu()
        && let Some(y) = gemv::sequence_product(x, w)?
    {
        return Tensor::from_vec(y, with_last(x, w.dim(0)?), x.device());
    }
    if x.dtype() == DType::BF16 && w.dtype() == DType::BF16 && gemv::applies(x, w) {
        return gemv::matmul_t(x, w);
    }
    // f32 activations elsewhere: the weight widened for this product (a
    // thousandth of its work at 1,024 rows) and candle's f32 matmul.
    x.broadcast_matmul(&w.to_dtype(x.dtype())?.t()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn same_values_and_input_gradient_as_matmul() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 5), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (4, 5), &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 3, 4), &dev).unwrap();

        let ours = frozen_matmul_t(x.as_tensor(), &w.clone().into()).unwrap();
        let plain = x.as_tensor().broadcast_matmul(&w.t().unwrap()).unwrap();
        assert!(crate::model::max_abs_diff(&ours, &plain).unwrap() < 1e-6);

        let g_ours = (ours * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_plain = (plain * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            crate::model::max_abs_diff(g_ours.get(&x).unwrap(), g_plain.get(&x).unwrap()).unwrap()
                < 1e-5
        );
        // The frozen weight gets no gradient.
        assert!(g_ours.get(&w).is_none());
        assert_eq!(g_ours.get(&x).unwrap().dtype(), DType::F32);
    }
}
