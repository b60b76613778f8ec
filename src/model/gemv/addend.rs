//! What a decoding step adds to a frozen product: the bias on every row and
//! the LoRA delta `scale * B (A x)` on the adapter's rows. Each task of the
//! product adds them to its own block of outputs while the block is in
//! cache, so A and B are read on every thread beside the frozen weights
//! instead of on one thread before and after them (that thread was a tenth
//! of a bf16 side-by-side step). `A x` is made once, by the first task to
//! finish its frozen block; the others are still streaming theirs.

use super::{MAX_ROWS, pairwise_sum, row_dots};
use crate::model::product::{plain, product, transposed};
use candle_core::{DType, Layout, Result, Storage, Tensor};
use std::ops::Deref;
use std::sync::OnceLock;

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
    /// A `[r, in]`, f32.
    pub a: &'a Tensor,
    /// B `[out, r]`, f32.
    pub b: &'a Tensor,
    pub scale: f32,
}

impl Addend<'_> {
    /// The addend's bias in f32 and its factors made contiguous, for
    /// [`resolve`] to read in place.
    pub(super) fn hold(&self) -> Result<Held> {
        let bias = self.bias.map(super::rows_of).transpose()?;
        let factors = match &self.low_rank {
            Some(l) if l.a.dtype() == DType::F32 && l.b.dtype() == DType::F32 => {
                Some([l.a.contiguous()?, l.b.contiguous()?])
            }
            Some(l) => candle_core::bail!("LoRA factors in {:?}, {:?}", l.a.dtype(), l.b.dtype()),
            None => None,
        };
        Ok(Held { bias, factors })
    }
}

/// An [`Addend`]'s bias in f32 and its A and B made contiguous.
pub(super) struct Held {
    bias: Option<Vec<f32>>,
    factors: Option<[Tensor; 2]>,
}

impl Held {
    /// A's and B's storages, held for reading, when there is a delta.
    pub(super) fn guards(&self) -> Option<[(impl Deref<Target = Storage> + '_, &Layout); 2]> {
        let factors = self.factors.as_ref()?;
        Some(factors.each_ref().map(|t| t.storage_and_layout()))
    }
}

/// The storages and layouts behind [`Held::guards`], for [`resolve`].
pub(super) fn factor_refs<'a, G: Deref<Target = Storage>>(
    guards: &'a Option<[(G, &'a Layout); 2]>,
) -> Option<FactorStorage<'a>> {
    guards.as_ref().map(|pair| {
        pair.each_ref()
            .map(|(storage, layout)| (&**storage, *layout))
    })
}

/// An [`Addend`] on plain slices, for one product.
pub(super) struct Resolved<'a> {
    bias: Option<&'a [f32]>,
    low_rank: Option<LowRankSlices<'a>>,
}

/// A [`LowRank`] on slices: the adapted input rows, A's and B's values,
/// the rank `r`, and `A x` once a task has made it.
struct LowRankSlices<'a> {
    first: usize,
    inputs: &'a [f32],
    a: &'a [f32],
    b: &'a [f32],
    r: usize,
    scale: f32,
    down: OnceLock<Vec<f32>>,
}

/// The storages and layouts of a held A and B.
pub(super) type FactorStorage<'a> = [(&'a Storage, &'a Layout); 2];

/// Resolves `addend` (with `held` from [`Addend::hold`] and `storage` its
/// A's and B's) against a product of `out_dim` outputs for `inputs`, rows
/// of `in_dim` values.
pub(super) fn resolve<'a>(
    addend: &'a Addend,
    held: &'a Held,
    storage: Option<FactorStorage<'a>>,
    inputs: &'a [f32],
    in_dim: usize,
    out_dim: usize,
) -> Result<Resolved<'a>> {
    let bias = held.bias.as_deref();
    if bias.is_some_and(|b| b.len() != out_dim) {
        candle_core::bail!(
            "a bias of {} for {out_dim} outputs",
            bias.map_or(0, |b| b.len())
        );
    }
    let low_rank = match (&addend.low_rank, storage) {
        (Some(low_rank), Some([a, b])) => {
            let (r, a_in) = low_rank.a.dims2()?;
            if low_rank.b.dims2()? != (out_dim, r) || a_in != in_dim || r == 0 {
                candle_core::bail!(
                    "LoRA A {:?} and B {:?} for {out_dim} x {in_dim} weights",
                    low_rank.a.dims(),
                    low_rank.b.dims()
                );
            }
            let first = low_rank.first.min(inputs.len() / in_dim);
            Some(LowRankSlices {
                first,
                inputs: &inputs[first * in_dim..],
                a: cpu_values(a, r * in_dim)?,
                b: cpu_values(b, out_dim * r)?,
                r,
                scale: low_rank.scale,
                down: OnceLock::new(),
            })
        }
        _ => None,
    };
    Ok(Resolved { bias, low_rank })
}

/// The first `len` f32 values of a contiguous CPU tensor's storage.
fn cpu_values<'a>((storage, layout): (&'a Storage, &'a Layout), len: usize) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        candle_core::bail!("GEMV needs CPU weights");
    };
    Ok(&cpu.as_slice::<f32>()?[layout.start_offset()..][..len])
}

impl LowRankSlices<'_> {
    /// `A x` of the adapted rows, `r` values per row: made by the first
    /// caller, read by the others.
    fn down(&self) -> &[f32] {
        self.down.get_or_init(|| {
            let in_dim = self.a.len() / self.r;
            let rows: Vec<&[f32]> = self.inputs.chunks_exact(in_dim).collect();
            let mut down = vec![0f32; rows.len() * self.r];
            let mut part = vec![0f32; self.r * MAX_ROWS];
            for (g, group) in rows.chunks(MAX_ROWS).enumerate() {
                let part = &mut part[..self.r * group.len()];
                row_dots(group, self.a, in_dim, part);
                // `part` is `[r, group]`; `down` is `[rows, r]`.
                for (j, values) in part.chunks_exact(group.len()).enumerate() {
                    for (k, &value) in values.iter().enumerate() {
                        down[(g * MAX_ROWS + k) * self.r + j] = value;
                    }
                }
            }
            down
        })
    }
}

/// Adds `addend` to `out`, the products of every input row with the
/// outputs `first_output..` (`[rows, outputs]`): the bias, then the delta,
/// as the general form sums them.
pub(super) fn add_to(addend: &Resolved, out: &mut [f32], rows: usize, first_output: usize) {
    add_to_rows(addend, out, (rows, 0), first_output);
}

/// Adds `addend` to `out`, every output of the input rows (a long prompt):
/// the bias shared among the threads a block of rows each, the delta as
/// two matrix products (`A x` for every adapted row, then `B` times
/// those), which the pool shares out. Made a row at a time (`A x` on one
/// thread, a short dot per output), the delta was 9% of a SmolLM2
/// evaluation at 1,024 tokens on fp16 products.
pub(super) fn add_to_all(addend: &Resolved, out: &mut [f32], rows: usize) {
    const BLOCK_ROWS: usize = 64;
    if rows == 0 {
        return;
    }
    let m = out.len() / rows;
    if addend.bias.is_some() {
        let bias = Resolved {
            bias: addend.bias,
            low_rank: None,
        };
        let blocks: Vec<&mut [f32]> = out.chunks_mut(BLOCK_ROWS * m).collect();
        crate::pool::crew::for_each_item(blocks, |block| add_to(&bias, block, block.len() / m, 0));
    }
    if let Some(low_rank) = &addend.low_rank {
        let (r, in_dim) = (low_rank.r, low_rank.a.len() / low_rank.r);
        let adapted = low_rank.inputs.len() / in_dim;
        let mut down = vec![0f32; adapted * r];
        let x = plain(low_rank.inputs, in_dim);
        product(
            &mut down,
            (adapted, r, in_dim),
            x,
            transposed(low_rank.a, in_dim),
            1.0,
            false,
            true,
        );
        let (b, out) = (transposed(low_rank.b, r), &mut out[low_rank.first * m..]);
        product(
            out,
            (adapted, m, r),
            plain(&down, r),
            b,
            low_rank.scale,
            true,
            true,
        );
    }
}

/// [`add_to`] for `out`, `rows` rows from input row `first_row`.
fn add_to_rows(
    addend: &Resolved,
    out: &mut [f32],
    (rows, first_row): (usize, usize),
    first_output: usize,
) {
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
        // The adapted rows start at `low_rank.first`; `down` has theirs.
        let skipped = low_rank.first.saturating_sub(first_row);
        let downs = low_rank.down().chunks_exact(r);
        let downs = downs.skip(first_row.saturating_sub(low_rank.first));
        let rows = out.chunks_exact_mut(m).skip(skipped);
        for (row, down) in rows.zip(downs) {
            for (v, column) in row.iter_mut().zip(b.chunks_exact(r)) {
                *v += low_rank.scale * short_dot(down, column);
            }
        }
    }
}

/// A dot product of a few dozen values (a LoRA rank): eight independent
/// sums (which vectorise), added pairwise. It inlines into the loop over
/// outputs, where a kernel call per output would cost more than the sums.
#[inline(always)]
fn short_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let whole = a.len() / 8 * 8;
    for (xs, ys) in a[..whole].chunks_exact(8).zip(b[..whole].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += xs[k] * ys[k];
        }
    }
    let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
    pairwise_sum(acc) + tail
}
