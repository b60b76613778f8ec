//! Custom ops whose forward value is computed outside the autograd graph
//! (to control what the backward pass keeps and computes) hand that value
//! back to candle through these.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, Result, Shape, Storage, Tensor};
use std::sync::Mutex;

/// The storage of a precomputed CPU tensor, as a custom op's `cpu_fwd` returns it.
pub fn cpu_value(value: &Tensor, op: &str) -> Result<(CpuStorage, Shape)> {
    let (storage, layout) = value.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => Ok((s.try_clone(layout)?, layout.shape().clone())),
        _ => candle_core::bail!("{op}: the precomputed value is not on the CPU"),
    }
}

/// The storage of a precomputed GPU tensor, as a custom op's `cuda_fwd` returns it.
pub fn cuda_value(value: &Tensor, op: &str) -> Result<(CudaStorage, Shape)> {
    let (storage, layout) = value.storage_and_layout();
    match &*storage {
        Storage::Cuda(s) => Ok((s.try_clone(layout)?, layout.shape().clone())),
        _ => candle_core::bail!("{op}: the precomputed value is not on the GPU"),
    }
}

/// A precomputed value that candle takes once. The op that holds it stays
/// in the graph until the backward pass, so a plain `Tensor` field would
/// keep a second copy of every output (each frozen projection's, for one)
/// alive for the whole step; this one is dropped when candle has copied it.
pub struct Handoff(Mutex<Option<Tensor>>);

impl Handoff {
    pub fn new(value: Tensor) -> Handoff {
        Handoff(Mutex::new(Some(value)))
    }

    fn take(&self, op: &str) -> Result<Tensor> {
        let taken = self.0.lock().map(|mut v| v.take());
        match taken {
            Ok(Some(value)) => Ok(value),
            _ => candle_core::bail!("{op}: the precomputed value was already taken"),
        }
    }

    pub fn cpu(&self, op: &str) -> Result<(CpuStorage, Shape)> {
        cpu_value(&self.take(op)?, op)
    }

    pub fn cuda(&self, op: &str) -> Result<(CudaStorage, Shape)> {
        cuda_value(&self.take(op)?, op)
    }
}
