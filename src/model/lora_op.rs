//! An adapted projection in training, `x W^T + b + scale · (m ∘ x) A^T B^T`
//! (`m` the dropout mask), as one op with a hand-written backward.
//!
//! Built from candle's ops, the graph keeps four `[tokens, out]` tensors per
//! projection (the frozen product, `B`'s output, its scaled copy and the
//! sum) and the backward pass makes as many again; this op keeps only the
//! `[tokens, r]` down-projection, and returns the gradients of the input,
//! `A` and `B`. The dropout mask is drawn again from its seed in backward
//! rather than kept (an input-sized f32 tensor per projection: a fifth of
//! what a layer kept for backward).

use super::base_weight::FrozenWeight;
use super::precomputed::Handoff;
use super::product;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// Inverted dropout drawn from a seed, so the backward pass can draw the
/// same mask again.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub p: f32,
    pub seed: u64,
}

impl Dropout {
    /// Zeros with probability `p`, else `1 / (1 - p)`, f32; runs and
    /// resumed runs repeat it. Element `i` is dropped when a hash of `i`
    /// keyed by the seed falls below `p · 2³²`: a draw by counter rather
    /// than a sequence, so blocks of the mask fill in parallel and the
    /// loop runs in vectors (a sequential generator cost a sixth of a
    /// SmolLM2 step at 1,024 tokens).
    pub fn mask(&self, shape: &[usize], device: &candle_core::Device) -> Result<Tensor> {
        use rayon::prelude::*;
        const BLOCK: usize = 1 << 16;
        let n: usize = shape.iter().product();
        if n > u32::MAX as usize {
            candle_core::bail!("dropout mask of {n} values: more than a 32-bit counter covers");
        }
        let threshold = (self.p as f64 * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        let keep = 1.0 / (1.0 - self.p);
        let keys = [self.seed as u32, (self.seed >> 32) as u32];
        let mut values = vec![0f32; n];
        values
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, block)| fill_mask(block, (b * BLOCK) as u32, keys, threshold, keep));
        Tensor::from_vec(values, shape, device)
    }
}

/// A 32-bit integer hash with full avalanche (Wellons' "lowbias32").
#[inline(always)]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

crate::model::wide::widest! {
    /// `block[j]` is 0 where the hash of counter `first + j` falls below
    /// `threshold`, else `keep`.
    fn fill_mask(block: &mut [f32], first: u32, keys: [u32; 2], threshold: u32, keep: f32) {
        for (j, value) in block.iter_mut().enumerate() {
            let draw = mix(mix(first.wrapping_add(j as u32) ^ keys[0]) ^ keys[1]);
            *value = if draw < threshold { 0.0 } else { keep };
        }
    }
}

struct LoraLinear {
    /// The output, computed without a graph.
    value: Handoff,
    /// Frozen `[out, in]`; a quantized one is widened again for backward.
    weight: FrozenWeight,
    /// `(m ∘ x) A^T`, `[tokens, r]`, f32.
    down: Tensor,
    /// Where the dropout mask comes from, when dropout is on.
    dropout: Option<Dropout>,
    scale: f64,
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
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
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.value.cuda(self.name())
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _label = crate::profile::scope(crate::profile::Label::BackwardFrozen);
        // Widened once (a quantized base's blocks), whichever path follows.
        let weight = self.weight.dense()?;
        // An input outside the graph (the first layer's normed embeddings)
        // needs no gradient: skipping it saves a frozen-sized product.
        let input_grad = x.track_op();
        if let Some(grads) = self.backward_f32(x, a, b, grad, &weight, input_grad)? {
            return Ok(grads);
        }
        // Gradients computed from the tracked factors would record their
        // products, and candle keeps a variable's gradient as returned: each
        // `d_a` would hold this projection's scaled output gradient and
        // masked input until the step ends.
        let (x, a, b) = (&x.detach(), &a.detach(), &b.detach());
        let out = grad.dim(grad.rank() - 1)?;
        let grad = grad.reshape(((), out))?;
        let g32 = (grad.to_dtype(DType::F32)? * self.scale)?;
        // Through B: [tokens, r].
        let d_down = g32.matmul(b)?;
        let d_b = g32.t()?.matmul(&self.down)?;
        let x2 = x
            .reshape(((), x.dim(x.rank() - 1)?))?
            .to_dtype(DType::F32)?;
        let mask = match &self.dropout {
            Some(d) => Some(d.mask(x2.dims(), x2.device())?),
            None => None,
        };
        let masked = match &mask {
            Some(m) => (x2 * m)?,
            None => x2,
        };
        let d_a = d_down.t()?.matmul(&masked)?;
        drop(masked);
        if !input_grad {
            return Ok((None, Some(d_a), Some(d_b)));
        }
        let mut d_x_lora = d_down.matmul(a)?;
        if let Some(m) = &mask {
            d_x_lora = (d_x_lora * m)?;
        }
        let d_x = (frozen_input_gradient(&grad, &weight)? + d_x_lora.to_dtype(grad.dtype())?)?;
        Ok((Some(d_x.reshape(x.shape())?), Some(d_a), Some(d_b)))
    }
}

/// The three gradients of [`LoraLinear`]'s backward pass.
type Grads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

impl LoraLinear {
    /// The backward pass on f32 CPU operands (the frozen weight f32 or
    /// bf16): the scale goes into the products rather than over the output
    /// gradient, and the adapter's share of the input gradient accumulates
    /// into the frozen product's buffer (with dropout, after the mask); the
    /// input's gradient only where `input_grad`. `None` for other operands.
    fn backward_f32(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        grad: &Tensor,
        weight: &Tensor,
        input_grad: bool,
    ) -> Result<Option<Grads>> {
        let bf16_weight = weight.device().is_cpu() && weight.dtype() == DType::BF16;
        if !all_f32_on_cpu(&[x, a, b, grad]) || !(bf16_weight || all_f32_on_cpu(&[weight])) {
            return Ok(None);
        }
        let (x, a, b) = (&x.detach(), &a.detach(), &b.detach());
        let scale = self.scale as f32;
        let grad = grad.reshape(((), grad.dim(grad.rank() - 1)?))?;
        let x2 = x.reshape(((), x.dim(x.rank() - 1)?))?;
        let d_down = sum_f32(&[(scale, &grad, b)])?;
        let d_b = sum_f32(&[(scale, &grad.t()?, &self.down)])?;
        let mask = match &self.dropout {
            Some(d) => Some(d.mask(x2.dims(), x2.device())?),
            None => None,
        };
        let d_x = match (&mask, input_grad) {
            (_, false) => None,
            (None, true) => Some(frozen_gradient_plus(&grad, weight, &[(1.0, &d_down, a)])?),
            (Some(m), true) => {
                Some((frozen_gradient_plus(&grad, weight, &[])? + (d_down.matmul(a)? * m)?)?)
            }
        };
        let masked = match &mask {
            Some(m) => (x2 * m)?,
            None => x2,
        };
        let d_a = sum_f32(&[(1.0, &d_down.t()?, &masked)])?;
        let d_x = d_x.map(|d_x| d_x.reshape(x.shape())).transpose()?;
        Ok(Some((d_x, Some(d_a), Some(d_b))))
    }
}

/// `grad @ weight + Σ terms` for f32 CPU `grad` `[tokens, out]` and
/// `terms`, `weight` `[out, in]` f32 or bf16: the terms accumulate into the
/// frozen product's buffer. A bf16 weight goes on the CPU's bf16 pairs
/// where it has them ([`on_pairs`]), else it is widened for this product
/// (a thousandth of its work at 1,024 rows).
pub(super) fn frozen_gradient_plus(
    grad: &Tensor,
    weight: &Tensor,
    terms: &[(f32, &Tensor, &Tensor)],
) -> Result<Tensor> {
    if let Some(start) = on_pairs(grad, weight)? {
        if terms.is_empty() {
            return Tensor::from_vec(start, (grad.dim(0)?, weight.dim(1)?), grad.device());
        }
        return product::sum_of_products_onto(start, terms)?
            .ok_or_else(|| candle_core::Error::Msg("f32 CPU operands expected".into()));
    }
    let weight = weight.to_dtype(DType::F32)?;
    sum_f32(&[&[(1.0, grad, &weight)], terms].concat())
}

/// `grad @ weight` (`[tokens, out]` times `[out, in]`) in `grad`'s dtype
/// (bf16 activations): on the CPU's bf16 pairs where it has them
/// ([`on_pairs`]), else candle's matmul on the weight in that dtype.
pub(super) fn frozen_input_gradient(grad: &Tensor, weight: &Tensor) -> Result<Tensor> {
    match on_pairs(grad, weight)? {
        Some(d_x) => Tensor::from_vec(d_x, (grad.dim(0)?, weight.dim(1)?), grad.device())?
            .to_dtype(grad.dtype()),
        None => grad.matmul(&weight.to_dtype(grad.dtype())?),
    }
}

/// `grad @ weight`'s rows for a bf16 CPU weight on the CPU's bf16 pairs
/// (`gemv::sequence_gradient`: the gradient rounded to bf16, sums in f32),
/// reading the weight as stored; `None` where they do not apply.
fn on_pairs(grad: &Tensor, weight: &Tensor) -> Result<Option<Vec<f32>>> {
    if !grad.device().is_cpu() {
        return Ok(None);
    }
    super::gemv::sequence_gradient(grad, weight)
}

/// The fused forward of f32 activations over a bf16 weight, where the CPU
/// takes the frozen product on bf16 pairs: the bias and the low-rank
/// product `low_rank` accumulate onto that product's buffer.
fn on_bf16_pairs(
    x2: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    low_rank: (f32, &Tensor, &Tensor),
) -> Result<Option<Tensor>> {
    if !all_f32_on_cpu(&[x2]) {
        return Ok(None);
    }
    let Some(mut y) = super::gemv::sequence_product(x2, weight)? else {
        return Ok(None);
    };
    if let Some(bias) = bias {
        let bias = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        for row in y.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(&bias).for_each(|(v, b)| *v += b);
        }
    }
    product::sum_of_products_onto(y, &[low_rank])
}

fn all_f32_on_cpu(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
}

/// [`product::sum_of_products`] of operands known to be f32 CPU tensors.
fn sum_f32(terms: &[(f32, &Tensor, &Tensor)]) -> Result<Tensor> {
    product::sum_of_products(terms)?
        .ok_or_else(|| candle_core::Error::Msg("f32 CPU operands expected".into()))
}

/// The adapted projection of `x` `[..., in]`: frozen `weight` `[out, in]`
/// and `bias`, LoRA `a` `[r, in]` and `b` `[out, r]` (f32), with `dropout`
/// on the adapter's input. Differentiable with respect to `x`, `a`, `b`.
pub fn lora_linear(
    x: &Tensor,
    weight: &FrozenWeight,
    bias: Option<&Tensor>,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    dropout: Option<Dropout>,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let in_dim = dims[dims.len() - 1];
    let x2 = x.detach().reshape(((), in_dim))?;
    let x32 = x2.to_dtype(DType::F32)?;
    let lora = crate::profile::scope(crate::profile::Label::Lora);
    let input = match &dropout {
        Some(d) => (&x32 * d.mask(x32.dims(), x32.device())?)?,
        None => x32,
    };
    // Detached factors: `down` lives in the op until backward, and if it
    // recorded its product it would keep the dropped-out input (an
    // input-sized f32 copy per projection) alive with it.
    // On our own thin kernel where the operands are f32 on the CPU (candle's
    // matmul took 0.55 ms for SmolLM2's 1,024 x 576 x 16).
    let a_t = a.detach().t()?;
    let down = match product::sum_of_products(&[(1.0, &input, &a_t)])? {
        Some(down) => down,
        None => input.matmul(&a_t)?,
    };
    drop(input);
    drop(lora);
    let _frozen = crate::profile::scope(crate::profile::Label::Frozen);
    let dense = weight.dense()?;
    let b_t = b.detach().t()?;
    // The products accumulate onto the bias, the low-rank one onto the
    // frozen one, in one buffer: a bf16 weight under f32 activations on the
    // CPU's bf16 pairs where it has them, else widened for this product.
    let low_rank = (scale as f32, &down, &b_t);
    let fused = match all_f32_on_cpu(&[&x2, &b_t]) && dense.device().is_cpu() {
        true => match on_bf16_pairs(&x2, &dense, bias, low_rank)? {
            Some(value) => Some(value),
            None => product::biased_sum_of_products(
                bias,
                &[(1.0, &x2, &dense.to_dtype(DType::F32)?.t()?), low_rank],
            )?,
        },
        false => None,
    };
    let value = match (fused, bias) {
        (Some(value), _) => value,
        (None, bias) => {
            // bf16 weights, under bf16 or f32 activations: the CPU's own
            // kernels (bf16 pairs where the CPU multiplies them fast)
            // instead of candle's, which widens the whole weight to f32 on
            // every call.
            let mut y = super::frozen::training_product(&x2, &dense)?;
            if let Some(bias) = bias {
                y = y.broadcast_add(bias)?;
            }
            (y + (down.matmul(&b_t)? * scale)?.to_dtype(x2.dtype())?)?
        }
    };
    let mut shape = dims;
    let last = shape.len() - 1;
    shape[last] = weight.dims2().0;
    let value = value.reshape(shape)?.contiguous()?;
    x.apply_op3(
        a,
        b,
        LoraLinear {
            value: Handoff::new(value),
            weight: weight.clone(),
            down,
            dropout,
            scale,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn dropout_masks_repeat_per_seed_and_drop_about_p() {
        let dev = Device::Cpu;
        let draw = |p, seed| {
            Dropout { p, seed }
                .mask(&[300, 1000], &dev)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let (a, again, other) = (draw(0.1, 7), draw(0.1, 7), draw(0.1, 8));
        assert_eq!(a, again);
        assert_ne!(a, other);
        let dropped = |m: &[f32]| m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
        // 300,000 draws: the fraction's standard deviation is 0.00055.
        assert!((dropped(&a) - 0.1).abs() < 0.003, "{}", dropped(&a));
        assert!((dropped(&draw(0.5, 1 << 40)) - 0.5).abs() < 0.004);
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        // Neighbouring positions are not correlated.
        let both = a.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64
            / (a.len() - 1) as f64;
        assert!((both - 0.01).abs() < 0.002, "{both}");
    }

    #[test]
    fn equals_the_plain_graph_in_value_and_every_gradient() {
        let dev = Device::Cpu;
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let x = Var::from_tensor(&randn(&[2, 5, 6])).unwrap();
        let a = Var::from_tensor(&randn(&[3, 6])).unwrap();
        let b = Var::from_tensor(&randn(&[4, 3])).unwrap();
        let (w, bias, probe) = (randn(&[4, 6]), randn(&[4]), randn(&[2, 5, 4]));
        let half = Dropout { p: 0.5, seed: 7 };
        for dropout in [None, Some(half)] {
            let ours =
                lora_linear(&x, &w.clone().into(), Some(&bias), &a, &b, 0.7, dropout).unwrap();
            let input = match &dropout {
                // The mask the op draws for the flattened input.
                Some(d) => (x.as_tensor()
                    * d.mask(&[10, 6], &dev).unwrap().reshape((2, 5, 6)).unwrap())
                .unwrap(),
                None => x.as_tensor().clone(),
            };
            let plain = (x
                .broadcast_matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&bias))
            .unwrap()
                + (input
                    .broadcast_matmul(&a.t().unwrap())
                    .unwrap()
                    .broadcast_matmul(&b.t().unwrap())
                    .unwrap()
                    * 0.7)
                    .unwrap();
            let plain = plain.unwrap();
            assert!(crate::model::max_abs_diff(&ours, &plain).unwrap() < 1e-5);
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
            for v in [&x, &a, &b] {
                let diff =
                    crate::model::max_abs_diff(g_ours.get(v).unwrap(), g_plain.get(v).unwrap())
                        .unwrap();
                assert!(diff < 1e-4, "gradient differs by {diff}");
            }
        }
    }

    #[test]
    fn a_bf16_base_gives_the_f32_graph_within_bf16_rounding() {
        // 32 wide: the CPU's bf16 kernels where it has them, candle's
        // otherwise; both against the f32 graph on the same values.
        let dev = Device::Cpu;
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let bf16 = |t: Tensor| t.to_dtype(DType::BF16).unwrap();
        let x = Var::from_tensor(&bf16(randn(&[2, 5, 32]))).unwrap();
        let a = Var::from_tensor(&randn(&[3, 32])).unwrap();
        let b = Var::from_tensor(&randn(&[20, 3])).unwrap();
        let (w, probe) = (bf16(randn(&[20, 32])), randn(&[2, 5, 20]));
        let ours = lora_linear(&x, &w.clone().into(), None, &a, &b, 0.5, None).unwrap();
        let x32 = Var::from_tensor(&x.to_dtype(DType::F32).unwrap()).unwrap();
        let w32 = w.to_dtype(DType::F32).unwrap();
        let low_rank = x32.broadcast_matmul(&a.t().unwrap()).unwrap();
        let low_rank = (low_rank.broadcast_matmul(&b.t().unwrap()).unwrap() * 0.5).unwrap();
        let plain = (x32.broadcast_matmul(&w32.t().unwrap()).unwrap() + low_rank).unwrap();
        let ours32 = ours.to_dtype(DType::F32).unwrap();
        // A few bf16 roundings (2^-9 of a value each) of values up to the
        // largest: within 2% of it.
        let largest = |t: &Tensor| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let diff = crate::model::max_abs_diff(&ours32, &plain).unwrap();
        assert!(diff < 0.02 * largest(&plain), "value differs by {diff}");
        let gradients = |y: Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let (g_ours, g_plain) = (gradients(ours32), gradients(plain));
        let d_x = g_ours.get(&x).unwrap().to_dtype(DType::F32).unwrap();
        let want = g_plain.get(&x32).unwrap();
        let diff = crate::model::max_abs_diff(&d_x, want).unwrap();
        assert!(
            diff < 0.02 * largest(want),
            "input gradient differs by {diff}"
        );
    }

    #[test]
    fn an_input_outside_the_graph_gets_no_gradient_and_the_factors_the_same() {
        let dev = Device::Cpu;
        let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let x = randn(&[7, 6]);
        let tracked = Var::from_tensor(&x).unwrap();
        let a = Var::from_tensor(&randn(&[3, 6])).unwrap();
        let b = Var::from_tensor(&randn(&[4, 3])).unwrap();
        let (w, probe) = (randn(&[4, 6]), randn(&[7, 4]));
        for dropout in [None, Some(Dropout { p: 0.3, seed: 2 })] {
            let grads = |input: &Tensor| {
                let y = lora_linear(input, &w.clone().into(), None, &a, &b, 0.5, dropout).unwrap();
                (y * &probe).unwrap().sum_all().unwrap().backward().unwrap()
            };
            let (outside, inside) = (grads(&x), grads(tracked.as_tensor()));
            assert!(outside.get(&x).is_none());
            assert!(inside.get(tracked.as_tensor()).is_some());
            for v in [&a, &b] {
                let diff =
                    crate::model::max_abs_diff(outside.get(v).unwrap(), inside.get(v).unwrap())
                        .unwrap();
                assert_eq!(diff, 0.0);
            }
        }
    }
}
