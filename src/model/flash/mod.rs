//! Training attention in blocks of queries and keys (the FlashAttention
//! recurrence), so no `[heads, seq, seq]` score or probability matrix is
//! ever held whole: memory linear in the sequence length.
//!
//! A custom op on (q, k, v): the forward pass runs outside the autograd
//! graph and keeps only the output and each row's log-sum-exp (f32); the
//! backward pass recomputes each tile's probabilities from q, k and the
//! log-sum-exp. Whatever the input dtype, tiles are summed in f32 (their
//! inputs rounded to bf16 for a bf16 base: `tile_products`) and the
//! gradients come back in the input dtype. Key/value heads serve their
//! group of query heads without being copied per query head.

mod kernel;
#[cfg(test)]
mod tests;

pub use kernel::{Blocks, Products};

use super::attend::Visibility;
use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Storage, Tensor};
use half::bf16;
use std::sync::Mutex;

impl Blocks {
    /// Chosen by measurement on the 2-core development machine (SmolLM2's
    /// attention shape, `tests.rs` `blockwise_speed`): the least CPU time at
    /// 1k, 4k and 8k positions of 64 × 256, 128 × 512, 256 × 1024 and
    /// 128 × 2048 (a tile of 3 × 64 rows by 256 keys stays in L2).
    pub const DEFAULT: Blocks = Blocks {
        queries: 64,
        keys: 256,
    };
}

struct FlashAttention {
    /// The output, computed before the op is applied; taken by `cpu_fwd`.
    value: Mutex<Option<Tensor>>,
    /// Log-sum-exp of each score row, in the kernel's row layout.
    lse: Vec<f32>,
    shape: kernel::Shape,
    blocks: Blocks,
    products: Products,
    visibility: Visibility,
}

impl CustomOp3 for FlashAttention {
    fn name(&self) -> &'static str {
        "flash-attention"
    }

    fn cpu_fwd(
        &self,
        _q: &CpuStorage,
        _: &Layout,
        _k: &CpuStorage,
        _: &Layout,
        _v: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, candle_core::Shape)> {
        let value = self.value.lock().ok().and_then(|mut v| v.take());
        match value {
            // Handed over rather than copied and kept: the graph holds it.
            Some(value) => super::precomputed::cpu_value(&value, self.name()),
            None => candle_core::bail!("{}: the output was already taken", self.name()),
        }
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _label = crate::profile::scope(crate::profile::Label::BackwardAttention);
        let kv = self.shape.kv_heads;
        let grads = kernel::backward(
            &self.shape,
            (self.blocks, self.products),
            &self.visibility,
            (&query_rows(q, kv)?, &flat(k)?, &flat(v)?),
            &query_rows(out, kv)?,
            &query_rows(grad, kv)?,
            &self.lse,
        );
        let like = |data: Vec<f32>, t: &Tensor| {
            Tensor::from_vec(data, t.shape(), &Device::Cpu)?.to_dtype(t.dtype())
        };
        Ok((
            Some(from_query_rows(grads.q, q.dims4()?, kv, q.dtype())?),
            Some(like(grads.k, k)?),
            Some(like(grads.v, v)?),
        ))
    }
}

/// `softmax(q kᵀ / √d + mask) v` for `q [b, h, t, d]` and `k`, `v`
/// `[b, kv, T, d]` on the CPU, in blocks of `blocks` positions, with a
/// backward pass. Tiles that no query of theirs may see (above the causal
/// diagonal, or across packed samples) are never computed.
pub fn flash_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    visibility: &Visibility,
    (blocks, products): (Blocks, Products),
) -> Result<Tensor> {
    let (value, lse, shape) = forward_pass(q, k, v, visibility, (blocks, products))?;
    q.apply_op3(
        k,
        v,
        FlashAttention {
            value: Mutex::new(Some(value)),
            lse,
            shape,
            blocks,
            products,
            visibility: visibility.clone(),
        },
    )
}

/// The forward pass alone, outside any graph: a prompt's attention in
/// inference (memory linear in its length, and the causal tiles above the
/// diagonal skipped). The result has q's dtype.
pub fn attend_inference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    visibility: &Visibility,
    blocks: Blocks,
) -> Result<Tensor> {
    // A bf16 model's queries, keys and values are bf16 values already.
    let bf16 = [q, k, v].iter().all(|x| x.dtype() == DType::BF16);
    let products = tile_products(bf16, q.dim(3)?);
    Ok(forward_pass(q, k, v, visibility, (blocks, products))?.0)
}

/// How attention takes its tile products: on bf16 pairs for a bf16 model
/// (a prompt's bf16 values, or a bf16 base in training, whose projections
/// already round their inputs to bf16) where the CPU has fast ones, else
/// in f32. On pairs, the queries, keys, values and output gradients are
/// rounded to bf16 once per pass, the probabilities and score gradients
/// per tile, and every sum is f32, as torch's CPU attention does for bf16.
/// At 1,024 tokens of SmolLM2's shape a layer's training attention took
/// 57-59 ms in f32 and 47-49 on pairs (Zen 4).
pub fn tile_products(bf16: bool, head_dim: usize) -> Products {
    if bf16 && head_dim.is_multiple_of(2) && pair_tiles_available() {
        Products::Bf16Pairs
    } else {
        Products::F32
    }
}

/// Whether this CPU takes attention tiles on bf16 pairs.
fn pair_tiles_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::model::gemv::pair_tiles::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The checked shapes' output (in q's dtype), each row's log-sum-exp and
/// the problem's sizes.
fn forward_pass(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    visibility: &Visibility,
    tiles: (Blocks, Products),
) -> Result<(Tensor, Vec<f32>, kernel::Shape)> {
    let (batch, heads, queries, dim) = q.dims4()?;
    let (_, kv_heads, keys, _) = k.dims4()?;
    if k.dims4()? != v.dims4()? || k.dims4()? != (batch, kv_heads, keys, dim) {
        candle_core::bail!(
            "flash-attention: keys {:?} and values {:?} do not fit queries {:?}",
            k.dims(),
            v.dims(),
            q.dims()
        );
    }
    if kv_heads == 0 || heads % kv_heads != 0 {
        candle_core::bail!("flash-attention: {heads} query heads over {kv_heads} key/value heads");
    }
    if !q.device().is_cpu() {
        candle_core::bail!("flash-attention runs on the CPU only");
    }
    let shape = kernel::Shape {
        batch,
        kv_heads,
        group: heads / kv_heads,
        queries,
        keys,
        dim,
    };
    let (out, lse) = kernel::forward(
        &shape,
        tiles,
        visibility,
        &query_rows(q, kv_heads)?,
        &flat(k)?,
        &flat(v)?,
    );
    let value = from_query_rows(out, q.dims4()?, kv_heads, q.dtype())?;
    Ok((value, lse, shape))
}

/// `[b, h, t, d]` as f32 in the kernel's layout `[b, kv, t, h / kv, d]`.
fn query_rows(x: &Tensor, kv_heads: usize) -> Result<Vec<f32>> {
    let (b, h, t, d) = x.dims4()?;
    let x = x.contiguous()?.reshape((b, kv_heads, h / kv_heads, t, d))?;
    flat(&x.transpose(2, 3)?)
}

/// The inverse of `query_rows`, in `dtype`: each row of `d` values moved
/// (and rounded) once.
fn from_query_rows(
    data: Vec<f32>,
    (b, h, t, d): (usize, usize, usize, usize),
    kv_heads: usize,
    dtype: DType,
) -> Result<Tensor> {
    let sizes = (b, h, t, d);
    match dtype {
        DType::F32 => Tensor::from_vec(
            head_major(&data, sizes, kv_heads, |v| v),
            sizes,
            &Device::Cpu,
        ),
        DType::BF16 => {
            let values = head_major(&data, sizes, kv_heads, bf16::from_f32);
            Tensor::from_vec(values, sizes, &Device::Cpu)
        }
        _ => Tensor::from_vec(data, (b, kv_heads, t, h / kv_heads, d), &Device::Cpu)?
            .transpose(2, 3)?
            .contiguous()?
            .reshape(sizes)?
            .to_dtype(dtype),
    }
}

/// `data` in the kernel's layout `[b, kv, t, h / kv, d]` as `[b, h, t, d]`,
/// each value through `convert`.
fn head_major<T>(
    data: &[f32],
    (b, h, t, d): (usize, usize, usize, usize),
    kv_heads: usize,
    convert: impl Fn(f32) -> T,
) -> Vec<T> {
    let group = h / kv_heads;
    let mut out = Vec::with_capacity(data.len());
    for batch in 0..b {
        for head in 0..h {
            let (kv, member) = (head / group, head % group);
            for position in 0..t {
                let row = ((batch * kv_heads + kv) * t + position) * group + member;
                out.extend(data[row * d..(row + 1) * d].iter().map(|&v| convert(v)));
            }
        }
    }
    out
}

/// The elements of `x` as f32, in row-major order: an f32 or bf16 CPU
/// tensor read through its strides in one pass (a prompt's keys are a
/// view of the cache, its queries a transposed view), others through
/// candle. Each layer of a 128-token SmolLM2 prompt had spent about half
/// its attention time in candle's conversions and copies, one after the
/// other on one thread.
fn flat(x: &Tensor) -> Result<Vec<f32>> {
    let (storage, layout) = x.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(values)) => Ok(strided(values, layout, |v| v)),
        Storage::Cpu(CpuStorage::BF16(values)) => Ok(strided(values, layout, bf16::to_f32)),
        _ => {
            drop(storage);
            x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
        }
    }
}

/// The values `layout` addresses in `src`, row-major, widened to f32.
fn strided<T: Copy>(src: &[T], layout: &Layout, widen: impl Fn(T) -> f32) -> Vec<f32> {
    let (dims, stride) = (layout.dims(), layout.stride());
    let mut out = Vec::with_capacity(layout.shape().elem_count());
    let Some((&last, outer)) = dims.split_last() else {
        out.push(widen(src[layout.start_offset()]));
        return out;
    };
    let step = stride[dims.len() - 1];
    let mut index = vec![0; outer.len()];
    let mut offset = layout.start_offset();
    for _ in 0..outer.iter().product::<usize>() {
        match step {
            1 => out.extend(src[offset..offset + last].iter().map(|&v| widen(v))),
            _ => out.extend((0..last).map(|i| widen(src[offset + i * step]))),
        }
        // The next run: the last outer index that can grow does, the ones
        // after it start again.
        for axis in (0..outer.len()).rev() {
            index[axis] += 1;
            offset += stride[axis];
            if index[axis] < outer[axis] {
                break;
            }
            offset -= stride[axis] * outer[axis];
            index[axis] = 0;
        }
    }
    out
}
