//! `x @ W.T` for a frozen weight, with a backward pass that computes only
//! the input's gradient.
//!
//! candle's matmul backward always computes both operands' gradients, so a
//! frozen weight would cost a weight-sized gradient (time and memory) on
//! every step. Here the product is computed outside the graph and attached
//! to `x` through a custom op whose backward is `grad @ W`.

use super::base_weight::FrozenWeight;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape, Tensor};

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
        let weight = self.weight.dense()?.to_dtype(grad.dtype())?;
        Ok(Some(grad.broadcast_matmul(&weight)?))
    }
}

/// `x @ weight.T` (`x` `[..., in]`, `weight` `[out, in]`) whose gradient
/// flows to `x` only.
pub fn frozen_matmul_t(x: &Tensor, weight: &FrozenWeight) -> Result<Tensor> {
    let value = x
        .detach()
        .broadcast_matmul(&weight.dense()?.t()?)?
        .contiguous()?;
    x.apply_op1(FrozenProduct {
        value: super::precomputed::Handoff::new(value),
        weight: weight.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

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
