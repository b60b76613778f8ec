//! Gradient (activation) checkpointing: a decoder layer in training keeps
//! only its input for backward, and recomputes itself there.
//!
//! candle has no built-in for it. Each layer runs as a custom op on its
//! input `x`: the forward computes the layer on `x.detach()` and keeps only
//! the (detached) output, so none of the layer's activations stay in the
//! graph. The op's backward re-runs the layer under a fresh graph with `x`
//! as a new variable, backpropagates the incoming gradient through it, and
//! returns `x`'s gradient. The LoRA parameters are not in the outer graph,
//! so their gradients go to a [`RecomputedGrads`] the trainer drains into
//! the backward's store. The recompute draws the same dropout masks: they
//! are seeded from the pass's mode and the projection, not drawn in order.

use super::decoder::{Layer, Mode, PROJECTIONS, Positions};
use candle_core::TensorId;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, Var};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// LoRA gradients computed by checkpointed layers during backward, by
/// parameter (each with the parameter itself, to key the store by).
#[derive(Clone, Default)]
pub struct RecomputedGrads(Arc<Mutex<HashMap<TensorId, (Tensor, Tensor)>>>);

impl RecomputedGrads {
    fn lock(&self) -> MutexGuard<'_, HashMap<TensorId, (Tensor, Tensor)>> {
        // A panic elsewhere cannot leave the map half-updated: every change
        // is one insert.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `grad` to what `param` has collected so far.
    fn add(&self, param: &Tensor, grad: Tensor) -> Result<()> {
        let mut map = self.lock();
        let sum = match map.remove(&param.id()) {
            Some((_, so_far)) => (so_far + grad)?,
            None => grad,
        };
        map.insert(param.id(), (param.clone(), sum));
        Ok(())
    }

    /// Moves the collected gradients into `store`, adding to any it holds.
    pub fn drain_into(&self, store: &mut GradStore) -> Result<()> {
        for (_, (param, grad)) in self.lock().drain() {
            let sum = match store.remove(&param) {
                Some(existing) => (existing + grad)?,
                None => grad,
            };
            store.insert(&param, sum);
        }
        Ok(())
    }
}

/// One layer of one pass, as its checkpointing op.
struct CheckpointedLayer {
    layer: Layer,
    positions: Arc<Positions>,
    mode: Mode,
    /// The forward's output until candle takes it (then `None`: the graph
    /// keeps the op, and the output must not live on in it).
    output: Mutex<Option<Tensor>>,
    grads: RecomputedGrads,
}

impl CheckpointedLayer {
    fn take_output(&self) -> Result<Tensor> {
        self.output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or_else(|| candle_core::Error::Msg("checkpointed layer: forward ran twice".into()))
    }
}

impl CustomOp1 for CheckpointedLayer {
    fn name(&self) -> &'static str {
        "checkpointed-layer"
    }

    fn cpu_fwd(&self, _x: &CpuStorage, _layout: &Layout) -> Result<(CpuStorage, Shape)> {
        super::precomputed::cpu_value(&self.take_output()?, self.name())
    }

    fn cuda_fwd(&self, _x: &CudaStorage, _layout: &Layout) -> Result<(CudaStorage, Shape)> {
        super::precomputed::cuda_value(&self.take_output()?, self.name())
    }

    fn bwd(&self, x: &Tensor, _out: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let input = Var::from_tensor(&x.detach())?;
        let out = self
            .layer
            .forward(input.as_tensor(), &self.positions, None, self.mode)?;
        // d(sum(out * grad))/dθ is the vector-Jacobian product backward needs.
        let surrogate = (out.to_dtype(DType::F32)? * grad.to_dtype(DType::F32)?)?.sum_all()?;
        let store = surrogate.backward()?;
        for projection in &PROJECTIONS {
            if let Some(lora) = &(projection.get)(&self.layer).lora {
                for param in [lora.a.as_tensor(), lora.b.as_tensor()] {
                    if let Some(g) = store.get(param) {
                        self.grads.add(param, g.detach())?;
                    }
                }
            }
        }
        match store.get(input.as_tensor()) {
            Some(g) => Ok(Some(g.detach())),
            None => Ok(None),
        }
    }
}

/// `layer.forward(x)` in training, keeping only `x` for backward (see the
/// module's comment); the layer's LoRA gradients go to `grads`.
pub fn checkpointed(
    layer: &Layer,
    x: &Tensor,
    positions: &Arc<Positions>,
    mode: Mode,
    grads: &RecomputedGrads,
) -> Result<Tensor> {
    // Dropping this output (after candle copies it into the op's result)
    // frees the graph the forward built through the LoRA variables.
    let output = layer
        .forward(&x.detach(), positions, None, mode)?
        .contiguous()?
        .detach();
    x.apply_op1(CheckpointedLayer {
        layer: layer.clone(),
        positions: positions.clone(),
        mode,
        output: Mutex::new(Some(output)),
        grads: grads.clone(),
    })
}
