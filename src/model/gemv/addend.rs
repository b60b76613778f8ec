//! What a decoding step adds to a frozen product: the bias on every row and
//! the LoRA delta `scale * B (A x)` on the adapter's rows. Each task of the
//! product adds them to its own block of outputs while the block is in
//! cache, so B is read on every thread beside the frozen weights instead of
//! on one thread after them (a tenth of a bf16 side-by-side step was that
//! one thread).

use super::short_dot;
use candle_core::{DType, Result, Storage, Tensor};

/// The additions to one weight's product.
#[derive(Default)]
pub struct Addend<'a> {
    /// `[out]`, any float dtype.
    pub bias: Option<&'a Tensor>,
    pub low_rank: Option<LowRank<'a>>,
}

/// A LoRA delta on the input rows from `first` on.
pub struct LowRank<'a> {
    /// The first input row that gets the delta (the rows before it are the
    /// base model's).
    pub first: usize,
    /// `A x` of each of those rows: `r` values per row.
    pub down: Vec<f32>,
    /// B `[out, r]`, f32.
    pub b: &'a Tensor,
    pub scale: f32,
}

impl Addend<'_> {
    /// The addend's tensors as tensors that can be read in place (B's
    /// storage is borrowed by [`Resolved`] while the product runs).
    pub(super) fn hold(&self) -> Result<Held> {
        let bias = self.bias.map(super::rows_of).transpose()?;
        let b = match &self.low_rank {
            Some(low_rank) if low_rank.b.dtype() == DType::F32 => Some(low_rank.b.contiguous()?),
            Some(low_rank) => candle_core::bail!("LoRA B in {:?}", low_rank.b.dtype()),
            None => None,
        };
        Ok(Held { bias, b })
    }
}

/// An [`Addend`]'s bias in f32 and its B made contiguous.
pub(super) struct Held {
    bias: Option<Vec<f32>>,
    b: Option<Tensor>,
}

/// An [`Addend`] on plain slices, for one product of `out_dim` outputs.
pub(super) struct Resolved<'a> {
    bias: Option<&'a [f32]>,
    low_rank: Option<LowRankSlices<'a>>,
}

/// A [`LowRank`] on slices: B's values and its rank `r`.
struct LowRankSlices<'a> {
    first: usize,
    down: &'a [f32],
    b: &'a [f32],
    r: usize,
    scale: f32,
}

/// Resolves `addend` (with `held` from [`Addend::hold`] and `storage` its
/// B's storage and layout) against a product of `out_dim` outputs for `n` input rows.
pub(super) fn resolve<'a>(
    addend: &'a Addend,
    held: &'a Held,
    storage: Option<(&'a Storage, &'a candle_core::Layout)>,
    out_dim: usize,
    n: usize,
) -> Result<Resolved<'a>> {
    let bias = held.bias.as_deref();
    if bias.is_some_and(|b| b.len() != out_dim) {
        candle_core::bail!(
            "a bias of {} for {out_dim} outputs",
            bias.map_or(0, |b| b.len())
        );
    }
    let low_rank = match (&addend.low_rank, storage) {
        (Some(low_rank), Some((storage, layout))) => {
            let r = low_rank.b.dim(1)?;
            let adapted = n.saturating_sub(low_rank.first);
            if low_rank.b.dim(0)? != out_dim || r == 0 || low_rank.down.len() != adapted * r {
                candle_core::bail!(
                    "LoRA B {:?} for {out_dim} outputs and {} values of A x",
                    low_rank.b.dims(),
                    low_rank.down.len()
                );
            }
            let Storage::Cpu(cpu) = storage else {
                candle_core::bail!("GEMV needs CPU weights");
            };
            let b = &cpu.as_slice::<f32>()?[layout.start_offset()..][..out_dim * r];
            Some(LowRankSlices {
                first: low_rank.first,
                down: &low_rank.down,
                b,
                r,
                scale: low_rank.scale,
            })
        }
        _ => None,
    };
    Ok(Resolved { bias, low_rank })
}

impl Held {
    pub(super) fn b(&self) -> Option<&Tensor> {
        self.b.as_ref()
    }
}

/// Adds `addend` to `out`, the products of every input row with the
/// outputs `first_output..` (`[rows, outputs]`): the bias, then the delta,
/// as the general form sums them.
pub(super) fn add_to(addend: &Resolved, out: &mut [f32], rows: usize, first_output: usize) {
    if rows == 0 {
        return;
    }
    let m = out.len() / rows;
    if let Some(bias) = addend.bias {
        let bias = &bias[first_output..first_output + m];
        for row in out.chunks_exact_mut(m) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    }
    if let Some(low_rank) = &addend.low_rank {
        let r = low_rank.r;
        let b = &low_rank.b[first_output * r..(first_output + m) * r];
        let rows = out.chunks_exact_mut(m).skip(low_rank.first);
        for (row, down) in rows.zip(low_rank.down.chunks_exact(r)) {
            for (v, column) in row.iter_mut().zip(b.chunks_exact(r)) {
                *v += low_rank.scale * short_dot(down, column);
            }
        }
    }
}
