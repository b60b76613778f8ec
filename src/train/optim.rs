//! AdamW with decoupled weight decay and global-norm gradient clipping, as
//! torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ compute them. The
//! moments are f32 whatever the model's dtype.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// A trainable tensor with its name in the adapter file.
pub struct Param {
    pub name: String,
    pub var: Var,
}

pub struct AdamW {
    pub params: Vec<Param>,
    /// First and second moments, by parameter name.
    pub moments: HashMap<String, (Tensor, Tensor)>,
    pub steps: u64,
    pub hyper: AdamWParams,
}

impl AdamW {
    pub fn new(params: Vec<Param>, hyper: AdamWParams) -> Result<Self> {
        let mut moments = HashMap::new();
        for p in &params {
            let zeros = p.var.as_tensor().zeros_like()?.to_dtype(DType::F32)?;
            moments.insert(p.name.clone(), (zeros.clone(), zeros));
        }
        Ok(AdamW {
            params,
            moments,
            steps: 0,
            hyper,
        })
    }

    /// One update with learning rate `lr` from `grads` (already averaged and clipped).
    pub fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        self.steps += 1;
        let h = self.hyper;
        let t = self.steps as i32;
        let bias1 = 1.0 - h.beta1.powi(t);
        let bias2 = 1.0 - h.beta2.powi(t);
        for p in &self.params {
            let Some(g) = grads.get(&p.name) else {
                continue;
            };
            let (m, v) = self
                .moments
                .get_mut(&p.name)
                .expect("moments exist for every parameter");
            // Detached: moments live across steps, and a moment that
            // recorded its inputs would keep each step's graph alive.
            let g = g.detach().to_dtype(DType::F32)?;
            *m = ((&*m * h.beta1)? + (&g * (1.0 - h.beta1))?)?.detach();
            *v = ((&*v * h.beta2)? + (g.sqr()? * (1.0 - h.beta2))?)?.detach();
            let theta = p.var.as_tensor().to_dtype(DType::F32)?;
            let theta = (theta * (1.0 - lr * h.weight_decay))?;
            let denom = ((v.sqrt()? / bias2.sqrt())? + h.eps)?;
            let update = ((&*m / denom)? * (lr / bias1))?;
            p.var.set(&(theta - update)?.to_dtype(p.var.dtype())?)?;
        }
        Ok(())
    }
}

/// Gradients of the parameters by name (missing ones are zero), detached:
/// candle leaves a variable's gradient attached to the graph it came from
/// (a LoRA factor's gradient is computed from the layer's input), so a
/// gradient kept past the step would keep the whole step's activations.
pub fn collect(params: &[Param], store: &GradStore) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for p in params {
        let g = match store.get(p.var.as_tensor()) {
            Some(g) => g.detach().to_dtype(DType::F32)?,
            None => p.var.as_tensor().zeros_like()?.to_dtype(DType::F32)?,
        };
        out.insert(p.name.clone(), g);
    }
    Ok(out)
}

/// Adds `more` into `sum` (gradient accumulation).
pub fn accumulate(sum: &mut HashMap<String, Tensor>, more: HashMap<String, Tensor>) -> Result<()> {
    for (name, g) in more {
        match sum.remove(&name) {
            Some(s) => sum.insert(name, (s + g)?),
            None => sum.insert(name, g),
        };
    }
    Ok(())
}

/// The global L2 norm of all gradients; scales them down to `max_norm`
/// when above it (0 disables clipping). Returns the norm before clipping.
pub fn clip_global_norm(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let mut total = 0.0f64;
    for g in grads.values() {
        total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let norm = total.sqrt();
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.values_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn adamw_matches_the_closed_form_first_step() {
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let hyper = AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(
            vec![Param {
                name: "w".into(),
                var: var.clone(),
            }],
            hyper,
        )
        .unwrap();
        let grads = HashMap::from([(
            "w".to_string(),
            Tensor::new(&[0.5f32, -0.25], &Device::Cpu).unwrap(),
        )]);
        opt.step(&grads, 0.01).unwrap();
        // Step 1: m_hat = g, v_hat = g^2, so the update is lr * sign(g) (eps aside).
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        let expected = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut grads = HashMap::from([
            (
                "a".to_string(),
                Tensor::new(&[3.0f32], &Device::Cpu).unwrap(),
            ),
            (
                "b".to_string(),
                Tensor::new(&[4.0f32], &Device::Cpu).unwrap(),
            ),
        ]);
        let norm = clip_global_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        let a = grads["a"].to_vec1::<f32>().unwrap()[0];
        assert!((a - 0.6).abs() < 1e-5);
    }
}
