//! Custom ops whose forward value is computed outside the autograd graph
//! (to control what the backward pass keeps and computes) hand that value
//! back to candle through these.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, Result, Shape, Storage, Tensor};

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
