//! The MLP's gate, `silu(gate) · up`, in training as one op with a
//! hand-written backward: candle's graph would keep `silu(gate)` (an
//! intermediate-sized tensor per layer) besides the product; this op keeps
//! the product only and recomputes the sigmoid in backward.

use super::precomputed::Handoff;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor,
};

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
        if let Some(grads) = backward_f32(gate, up, grad)? {
            return Ok(grads);
        }
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

/// Values a task of the CPU's f32 passes takes.
const TASK: usize = 1 << 14;

/// The values of a contiguous f32 CPU tensor.
fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout) -> Option<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        return None;
    };
    let (start, end) = layout.contiguous_offsets()?;
    Some(&cpu.as_slice::<f32>().ok()?[start..end])
}

/// The backward pass over contiguous f32 CPU tensors of one shape: one
/// pass over the values on every thread. candle's ops made it eight
/// passes on one thread (and libm's `expf` per value): about a quarter of
/// a SmolLM2 step at 1,024 tokens. `None` for other tensors.
fn backward_f32(gate: &Tensor, up: &Tensor, grad: &Tensor) -> Result<Option<Grads>> {
    use rayon::prelude::*;
    let shape = gate.shape();
    if up.shape() != shape || grad.shape() != shape {
        return Ok(None);
    }
    let held = [gate, up, grad].map(|t| t.storage_and_layout());
    let [Some(g), Some(u), Some(d)] = held.each_ref().map(|(s, l)| cpu_f32(s, l)) else {
        return Ok(None);
    };
    let (mut d_gate, mut d_up) = (vec![0f32; g.len()], vec![0f32; g.len()]);
    d_gate
        .par_chunks_mut(TASK)
        .zip(d_up.par_chunks_mut(TASK))
        .zip(
            g.par_chunks(TASK)
                .zip(u.par_chunks(TASK))
                .zip(d.par_chunks(TASK)),
        )
        .for_each(|((d_gate, d_up), ((g, u), d))| gradients(g, u, d, d_gate, d_up));
    let device = gate.device();
    Ok(Some((
        Some(Tensor::from_vec(d_gate, shape, device)?),
        Some(Tensor::from_vec(d_up, shape, device)?),
    )))
}

type Grads = (Option<Tensor>, Option<Tensor>);

crate::model::wide::widest! {
    /// The gradients of `silu(g) · u` given the output's `d`:
    /// silu(g) = g·σ(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
    fn gradients(gate: &[f32], up: &[f32], grad: &[f32], d_gate: &mut [f32], d_up: &mut [f32]) {
        let outputs = d_gate.iter_mut().zip(d_up.iter_mut());
        for ((dg, du), ((&g, &u), &d)) in outputs.zip(gate.iter().zip(up).zip(grad)) {
            let sigmoid = 1.0 / (1.0 + crate::model::exp::exp(-g));
            *du = d * g * sigmoid;
            *dg = d * u * sigmoid * (1.0 + g * (1.0 - sigmoid));
        }
    }
}

/// `silu(gate) · up` without a graph: on every thread for contiguous f32
/// CPU tensors, else through candle's ops.
fn forward_value(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.shape() == up.shape() {
        let held = [gate, up].map(|t| t.storage_and_layout());
        if let [Some(g), Some(u)] = held.each_ref().map(|(s, l)| cpu_f32(s, l)) {
            let value = super::decoder::swiglu_f32(g, u);
            return Tensor::from_vec(value, gate.shape(), gate.device());
        }
    }
    candle_nn::ops::silu(&gate.detach())? * up.detach()
}

/// `silu(gate) · up`, differentiable with respect to both.
pub fn swiglu_train(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let value = forward_value(gate, up)?;
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
        // Values reach ~50 here, and our `exp` is within 2 ulp of libm's:
        // the sums differ in their last bits (a few 1e-6 at that size).
        assert!(crate::model::max_abs_diff(&ours, &plain).unwrap() < 1e-4);
        let grads = |y: Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let (g_ours, g_plain) = (grads(ours), grads(plain));
        for v in [&gate, &up] {
            let diff = crate::model::max_abs_diff(g_ours.get(v).unwrap(), g_plain.get(v).unwrap())
                .unwrap();
            assert!(diff < 1e-4, "gradient differs by {diff}");
        }
    }
}
