//! Products of input rows with frozen bf16 or f32 weights on the CPU: a
//! decoding step's few rows, and prompts.
//!
//! A decoding step reads every weight once, so its speed is memory
//! bandwidth over bytes per weight. These kernels read each weight row once
//! for all the input rows (one token of each sequence decoded side by
//! side), widening bf16 to f32 in registers (a 16-bit shift). candle has no
//! SIMD kernel for CPU bf16, and for f32 its matmul packs the whole weight
//! into a scratch buffer on every call with more than one input row, which
//! made two rows slower than two single-row products.
//!
//! On AVX2 without AVX-512, bf16 weights go through `paired.rs`, which
//! widens 16 at a time as even and odd pairs.
//!
//! Longer inputs (a prompt) go through `panel.rs` where the CPU has AVX2 or
//! AVX-512: the same tasks over blocks of weights, each block widened once
//! and multiplied by every row as outer products.

mod addend;
#[cfg(target_arch = "x86_64")]
pub mod head;
#[cfg(target_arch = "x86_64")]
mod paired;
#[cfg(target_arch = "x86_64")]
mod panel;
#[cfg(target_arch = "x86_64")]
pub(crate) use panel::tiles as pair_tiles;
pub(crate) mod prefetch;
mod prompt;
#[cfg(target_arch = "x86_64")]
mod transpose;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use addend::Resolved;
pub use addend::{Addend, LowRank};

use candle_core::{DType, Device, Result, Storage, Tensor};
use half::bf16;

/// Rows of `x` up to which the GEMV path is used (decode steps, short prompts).
pub const MAX_ROWS: usize = 4;

/// Tasks per thread a product is split into: equal shares keep every core
/// streaming weights to the end (a 192-row key projection was one task,
/// on one core, when tasks were a fixed 256 rows).
const TASKS_PER_THREAD: usize = 4;

/// Fewest output rows a task takes (a task costs a few microseconds to hand
/// out).
const MIN_BLOCK: usize = 16;

/// Weights (outputs times inputs) below which one thread does the whole
/// product: splitting a LoRA factor's few thousand weights costs more than
/// it saves.
const PARALLEL_FROM: usize = 1 << 17;

/// Weight bytes a task keeps in cache while it takes the input rows a
/// group at a time (prompts longer than [`MAX_ROWS`]): a few hundred KB,
/// within a core's L2.
const BLOCK_BYTES: usize = 256 << 10;

/// Whether `x @ w.T` should take this path: a few rows, or any number of
/// rows on a CPU with the panel kernel (a prompt; for bf16 weights candle
/// would widen the whole weight to f32 on every call).
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
    applies_to(rows, x.dtype(), w)
}

/// [`applies`] for `rows` input rows of `dtype`.
pub fn applies_to(rows: usize, dtype: DType, w: &Tensor) -> bool {
    matches!(w.dtype(), DType::BF16 | DType::F32)
        && matches!(dtype, DType::BF16 | DType::F32)
        && matches!(w.device(), Device::Cpu)
        && (rows <= MAX_ROWS || has_panel_kernel())
        && w.rank() == 2
}

/// `x @ w.T` for `x` `[..., in]` and `w` `[out, in]` (bf16 or f32); the
/// result has x's dtype.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let out = products(&rows_of(x)?, w)?;
    Tensor::from_vec(out, with_last(x, w.dim(0)?), x.device())?.to_dtype(x.dtype())
}

/// A training pass's frozen product over a bf16 CPU weight `w` `[out,
/// in]`: `x @ w.T` for f32 rows `x` `[.., in]`, the rows of the result, on
/// bf16 pairs (`panel/sequence.rs`) or fp16 (`panel/halves.rs`). `None`
/// where neither is faster than f32 here (or pairs meet an odd `in`).
pub fn sequence_product(x: &Tensor, w: &Tensor) -> Result<Option<Vec<f32>>> {
    on_pairs(w, true, |bits, in_dim| {
        on_values(x, |x| {
            #[cfg(target_arch = "x86_64")]
            return panel::sequence_times_transposed(x, bits, in_dim);
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("pairs on x86_64 only: {}", x.len() + bits.len() + in_dim)
        })
    })
}

/// [`sequence_product`] for the input's gradient: `g @ w` for f32 rows
/// `g` `[.., out]`.
pub fn sequence_gradient(g: &Tensor, w: &Tensor) -> Result<Option<Vec<f32>>> {
    on_pairs(w, false, |bits, in_dim| {
        on_values(g, |g| {
            #[cfg(target_arch = "x86_64")]
            return panel::sequence_times(g, bits, in_dim);
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("pairs on x86_64 only: {}", g.len() + bits.len() + in_dim)
        })
    })
}

/// `product` of `w`'s bf16 bits and its input width, where a sequence
/// kernel takes `w` (pairs along its rows, `along_rows`, or columns).
fn on_pairs(
    w: &Tensor,
    along_rows: bool,
    product: impl FnOnce(&[u16], usize) -> Result<Vec<f32>>,
) -> Result<Option<Vec<f32>>> {
    let Ok((out_dim, in_dim)) = w.dims2() else {
        return Ok(None);
    };
    #[cfg(target_arch = "x86_64")]
    let takes = panel::sequence_takes(if along_rows { in_dim } else { out_dim });
    #[cfg(not(target_arch = "x86_64"))]
    let takes = along_rows && false;
    if w.dtype() != DType::BF16 || !takes {
        return Ok(None);
    }
    let w = w.contiguous()?;
    let (storage, layout) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let values = &cpu.as_slice::<bf16>()?[layout.start_offset()..][..out_dim * in_dim];
    let bits = Element::bf16_bits(values).unwrap_or_default();
    product(bits, in_dim).map(Some)
}

/// `f` of `x`'s values in f32, row after row: read in place from a
/// contiguous f32 CPU tensor (a training pass's activations, megabytes
/// each), copied otherwise.
fn on_values<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if x.dtype() == DType::F32 && x.is_contiguous() {
        let (storage, layout) = x.storage_and_layout();
        if let Storage::Cpu(cpu) = &*storage {
            let values = &cpu.as_slice::<f32>()?[layout.start_offset()..][..x.elem_count()];
            return Ok(f(values));
        }
    }
    Ok(f(&rows_of(x)?))
}

/// The values of `x` in f32, row after row.
pub fn rows_of(x: &Tensor) -> Result<Vec<f32>> {
    x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// The dims of `x` with the last one replaced by `last`.
pub fn with_last(x: &Tensor, last: usize) -> Vec<usize> {
    let mut dims = x.dims().to_vec();
    match dims.last_mut() {
        Some(d) => *d = last,
        None => dims.push(last),
    }
    dims
}

/// `inputs` (rows of `in` values, one after another) times `w.T` for a
/// bf16 or f32 CPU weight `w` `[out, in]`: rows of `out` values.
pub fn products(inputs: &[f32], w: &Tensor) -> Result<Vec<f32>> {
    products_with(inputs, w, &Addend::default())
}

/// [`products`] plus `addend`.
pub fn products_with(inputs: &[f32], w: &Tensor, addend: &Addend) -> Result<Vec<f32>> {
    let together = products_together(inputs, &[w], std::slice::from_ref(addend))?;
    Ok(together.into_iter().next().unwrap_or_default())
}

/// [`products`] of the same inputs with several weights of one dtype and
/// input width, each plus its addend, in one parallel section.
pub fn products_together(
    inputs: &[f32],
    weights: &[&Tensor],
    addends: &[Addend],
) -> Result<Vec<Vec<f32>>> {
    let Some(first) = weights.first() else {
        return Ok(Vec::new());
    };
    let (dtype, in_dim) = (first.dtype(), first.dim(1)?);
    if in_dim == 0 || !inputs.len().is_multiple_of(in_dim) || addends.len() != weights.len() {
        candle_core::bail!("GEMV: {} inputs for rows of {in_dim}", inputs.len());
    }
    let weights = weights
        .iter()
        .map(|w| w.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let held: Vec<_> = weights.iter().map(|w| w.storage_and_layout()).collect();
    let addends_held = addends
        .iter()
        .map(|a| a.hold())
        .collect::<Result<Vec<_>>>()?;
    let factor_guards: Vec<_> = addends_held.iter().map(|h| h.guards()).collect();
    let mut spans = Vec::with_capacity(held.len());
    let mut resolved = Vec::with_capacity(held.len());
    for (i, (w, (storage, layout))) in weights.iter().zip(&held).enumerate() {
        let (out_dim, width) = w.dims2()?;
        if w.dtype() != dtype || width != in_dim {
            candle_core::bail!("GEMV: weights of different dtypes or widths in one product");
        }
        let Storage::Cpu(cpu) = &**storage else {
            candle_core::bail!("GEMV needs CPU weights");
        };
        spans.push((
            cpu,
            layout.start_offset()..layout.start_offset() + out_dim * in_dim,
        ));
        resolved.push(addend::resolve(
            &addends[i],
            &addends_held[i],
            addend::factor_refs(&factor_guards[i]),
            inputs,
            in_dim,
            out_dim,
        )?);
    }
    match dtype {
        DType::BF16 => products_on::<bf16>(inputs, &spans, &resolved, in_dim),
        DType::F32 => products_on::<f32>(inputs, &spans, &resolved, in_dim),
        other => candle_core::bail!("GEMV for {other:?} weights"),
    }
}

/// Adds `addend` to `out`, the products of `inputs` (rows of `in` values)
/// with a weight of `out_dim` outputs made elsewhere (a quantized weight).
pub fn add_to_products(
    out: &mut [f32],
    inputs: &[f32],
    in_dim: usize,
    out_dim: usize,
    addend: &Addend,
) -> Result<()> {
    let rows = out.len() / out_dim.max(1);
    let held = addend.hold()?;
    let guards = held.guards();
    let factors = addend::factor_refs(&guards);
    let resolved = addend::resolve(addend, &held, factors, inputs, in_dim, out_dim)?;
    addend::add_to(&resolved, out, rows, 0);
    Ok(())
}

/// [`products_of`] on the weights' values, each a span of a CPU storage
/// holding `W`.
fn products_on<W: Element + candle_core::WithDType>(
    inputs: &[f32],
    spans: &[(&candle_core::CpuStorage, std::ops::Range<usize>)],
    addends: &[Resolved],
    in_dim: usize,
) -> Result<Vec<Vec<f32>>> {
    let slices = spans
        .iter()
        .map(|(cpu, span)| Ok(&cpu.as_slice::<W>()?[span.clone()]))
        .collect::<Result<Vec<_>>>()?;
    Ok(products_of(inputs, &slices, addends, in_dim))
}

/// A weight type the kernels read, widened to f32 in registers.
pub(crate) trait Element: Copy + Send + Sync {
    /// Whether the value is bf16 (the top half of an f32), else f32.
    const BF16: bool;
    fn widen(self) -> f32;
    /// The values' bit patterns when they are bf16.
    fn bf16_bits(values: &[Self]) -> Option<&[u16]>;
}

impl Element for f32 {
    const BF16: bool = false;
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
    fn bf16_bits(_: &[f32]) -> Option<&[u16]> {
        None
    }
}

impl Element for bf16 {
    const BF16: bool = true;
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    fn bf16_bits(values: &[bf16]) -> Option<&[u16]> {
        use half::slice::HalfFloatSliceExt;
        Some(values.reinterpret_cast())
    }
}

/// The input rows as bf16 bit patterns, when the weights are bf16, the CPU
/// multiplies bf16 pairs (`avx512_bf16`) and every input already is a bf16
/// value (a bf16 model's activations): the products are then those of the
/// widening kernel, without widening a weight.
fn narrow_inputs<W: Element>(inputs: &[f32]) -> Option<Vec<u16>> {
    if !W::BF16 || !cpu_multiplies_bf16_pairs() {
        return None;
    }
    bf16_bits_if_exact(inputs)
}

/// The bit patterns of `values` as bf16, when every one is a bf16 value
/// (its low 16 bits zero), else `None`. Checked first, then narrowed into
/// a vector of the exact size: an `Option` collect cannot know the length
/// and grew by reallocation (1% of a SmolLM2 bf16 decoding step's samples
/// in `perf`, on the thread the other one waits for).
pub(crate) fn bf16_bits_if_exact(values: &[f32]) -> Option<Vec<u16>> {
    if values.iter().any(|x| x.to_bits() & 0xffff != 0) {
        return None;
    }
    Some(values.iter().map(|x| (x.to_bits() >> 16) as u16).collect())
}

/// The input rows laid out for the AVX2 kernel that widens bf16 weights as
/// pairs, when the weights are bf16 and the CPU takes that kernel.
fn arranged_inputs<W: Element>(inputs: &[f32], in_dim: usize) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    return (W::BF16 && paired::available()).then(|| paired::arrange(inputs, in_dim));
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `rows` weight rows rounded down to whole groups of the panel kernel's
/// strips (3 registers of 16 or 8 outputs), at least one: a narrower group
/// multiplies fewer outputs per broadcast input.
fn whole_panel_groups(rows: usize) -> usize {
    const GROUP: usize = 48;
    (rows / GROUP * GROUP).max(GROUP)
}

/// Whether the CPU has the panel kernel for many rows (AVX-512, or AVX2
/// with FMA).
fn has_panel_kernel() -> bool {
    #[cfg(target_arch = "x86_64")]
    return panel::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the panel kernel multiplies bf16 inputs and weights as pairs
/// (the CPU does that faster than f32 and the rows have whole pairs).
fn panel_takes_pairs(in_dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return in_dim.is_multiple_of(2) && panel::bf16_pairs_fast();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Input rows of bf16 bit patterns as the panel kernel's pairs.
fn pair_words(bits: &[u16]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    return panel::pair_words(bits);
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("pairs are taken on x86_64 only: {}", bits.len())
}

/// Whether the CPU has `vdpbf16ps` (AVX-512 with the bf16 extension).
fn cpu_multiplies_bf16_pairs() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `inputs` times each of `weights` (`[out_i, in]` each), in one parallel
/// section: the products of a layer that share their input (q, k, v; gate,
/// up) hand their work to the threads once instead of once each, which
/// costs a wake-up of every thread per section.
fn products_of<W: Element>(
    inputs: &[f32],
    weights: &[&[W]],
    addends: &[Resolved],
    in_dim: usize,
) -> Vec<Vec<f32>> {
    let rows: Vec<&[f32]> = inputs.chunks_exact(in_dim).collect();
    let n = rows.len();
    if let Some(long) = prompt::long_prompt_products(inputs, weights, addends, in_dim) {
        return long;
    }
    // Each task's results are its own `[rows, task's outputs]`, one after
    // the other.
    let mut by_task: Vec<Vec<f32>> = weights
        .iter()
        .map(|w| vec![0f32; n * (w.len() / in_dim)])
        .collect();
    if n == 0 {
        return by_task;
    }
    let total: usize = weights.iter().map(|w| w.len()).sum();
    let parallel = total >= PARALLEL_FROM;
    let mut rows_per_task = if parallel {
        (total / in_dim)
            .div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD)
            .max(MIN_BLOCK)
    } else {
        total / in_dim
    };
    let panel = n > MAX_ROWS && has_panel_kernel();
    if panel {
        // The task's block, widened to f32, stays in cache while every
        // input row passes over it; whole groups of strips.
        rows_per_task = whole_panel_groups(rows_per_task.min(BLOCK_BYTES / (in_dim * 4)));
    } else if n > MAX_ROWS {
        // Each group of rows reads the task's weights again: from cache.
        rows_per_task = rows_per_task.min(BLOCK_BYTES / (in_dim * size_of::<W>()));
    }
    let rows_per_task = rows_per_task.max(1);
    // (weight, first output, the weight rows, the results)
    let mut tasks: Vec<(usize, usize, &[W], &mut [f32])> = Vec::new();
    for (i, (w, out)) in weights.iter().zip(&mut by_task).enumerate() {
        let pieces = w.chunks(rows_per_task * in_dim);
        let pieces = pieces.zip(out.chunks_mut(rows_per_task * n)).enumerate();
        tasks.extend(pieces.map(|(t, (w, ys))| (i, t * rows_per_task, w, ys)));
    }
    let narrow = (!panel || panel_takes_pairs(in_dim))
        .then(|| narrow_inputs::<W>(inputs))
        .flatten();
    let arranged = (!panel && narrow.is_none())
        .then(|| arranged_inputs::<W>(inputs, in_dim))
        .flatten();
    let inputs = Inputs {
        wide: rows,
        narrow: narrow
            .as_ref()
            .filter(|_| !panel)
            .map(|v| v.chunks_exact(in_dim).collect()),
        arranged: arranged.as_ref().map(|v| v.chunks_exact(in_dim).collect()),
        pair_words: narrow.as_deref().filter(|_| panel).map(pair_words),
        all: inputs,
        panel,
    };
    let task = |(i, first_output, w, ys): (usize, usize, &[W], &mut [f32])| {
        block_products(&inputs, w, in_dim, ys);
        addend::add_to(&addends[i], ys, n, first_output);
    };
    if parallel {
        crate::pool::crew::for_each_item(tasks, task);
    } else {
        tasks.into_iter().for_each(task);
    }
    by_task
        .into_iter()
        .map(|ys| input_major(ys, n, rows_per_task))
        .collect()
}

/// The results of the tasks, each `[rows, up to rows_per_task outputs]`,
/// as rows of all outputs `[rows, out]`.
fn input_major(by_task: Vec<f32>, n: usize, rows_per_task: usize) -> Vec<f32> {
    if n == 1 {
        return by_task;
    }
    let out_dim = by_task.len() / n;
    let mut out = vec![0f32; by_task.len()];
    for (t, task) in by_task.chunks(rows_per_task * n).enumerate() {
        let m = task.len() / n;
        for (r, got) in task.chunks_exact(m).enumerate() {
            let first = r * out_dim + t * rows_per_task;
            out[first..first + m].copy_from_slice(got);
        }
    }
    out
}

/// The input rows of a product, in f32 and, when [`narrow_inputs`] allows,
/// as bf16 bit patterns.
struct Inputs<'a> {
    wide: Vec<&'a [f32]>,
    narrow: Option<Vec<&'a [u16]>>,
    /// For the AVX2 kernel on bf16 weights: the rows laid out to match the
    /// weights widened as pairs (`paired::arrange`).
    arranged: Option<Vec<&'a [f32]>>,
    /// For the panel kernel on bf16 pairs: the rows as pairs of bf16 values.
    pair_words: Option<Vec<f32>>,
    /// `wide`'s rows, one after the other.
    all: &'a [f32],
    /// Whether the rows go through the panel kernel.
    panel: bool,
}

/// `out[r * m + j] = rows[r] · w_j` for each of the `m` weight rows `w_j`
/// (of `in_dim` values) of `weights` and each of the `n` input rows, taken
/// up to [`MAX_ROWS`] at a time; the weights stay in cache from one group
/// to the next.
fn block_products<W: Element>(inputs: &Inputs, weights: &[W], in_dim: usize, out: &mut [f32]) {
    let n = inputs.wide.len();
    if n == 1 {
        return group_products(inputs, 0..1, weights, in_dim, out);
    }
    #[cfg(target_arch = "x86_64")]
    if inputs.panel {
        if let (Some(words), Some(bits)) = (&inputs.pair_words, W::bf16_bits(weights)) {
            return panel::products_of_bf16_pairs(words, bits, in_dim, out);
        }
        return panel::products(inputs.all, weights, in_dim, out);
    }
    let m = weights.len() / in_dim;
    // The kernels write a group's results output-major: `[m, group]`.
    let mut part = vec![0f32; m * n.min(MAX_ROWS)];
    for first in (0..n).step_by(MAX_ROWS) {
        let k = (n - first).min(MAX_ROWS);
        let part = &mut part[..m * k];
        group_products(inputs, first..first + k, weights, in_dim, part);
        for (j, got) in part.chunks_exact(k).enumerate() {
            for (r, &value) in got.iter().enumerate() {
                out[(first + r) * m + j] = value;
            }
        }
    }
}

/// [`block_products`] of the input rows `group` (1 to [`MAX_ROWS`]): the
/// CPU's features are asked once per block, and the loop over weight rows
/// runs inside the vector kernel.
fn group_products<W: Element>(
    inputs: &Inputs,
    group: std::ops::Range<usize>,
    weights: &[W],
    in_dim: usize,
    out: &mut [f32],
) {
    if let (Some(narrow), Some(weights)) = (&inputs.narrow, W::bf16_bits(weights)) {
        return bf16_block(&narrow[group], weights, in_dim, out);
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(arranged), Some(weights)) = (&inputs.arranged, W::bf16_bits(weights)) {
        let rows = &arranged[group];
        // SAFETY: `arranged_inputs` checked the features.
        unsafe {
            return match rows.len() {
                1 => paired::block::<1>(rows, weights, in_dim, out),
                2 => paired::block::<2>(rows, weights, in_dim, out),
                3 => paired::block::<3>(rows, weights, in_dim, out),
                _ => paired::block::<4>(rows, weights, in_dim, out),
            };
        }
    }
    row_dots(&inputs.wide[group], weights, in_dim, out)
}

/// [`group_products`] of bf16 rows and weights, on a CPU that
/// [`narrow_inputs`] found to multiply bf16 pairs.
fn bf16_block(rows: &[&[u16]], weights: &[u16], in_dim: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `narrow_inputs` checked avx512f and avx512bf16.
    unsafe {
        match rows.len() {
            1 => x86::block_avx512_bf16::<1>(rows, weights, in_dim, out),
            2 => x86::block_avx512_bf16::<2>(rows, weights, in_dim, out),
            3 => x86::block_avx512_bf16::<3>(rows, weights, in_dim, out),
            _ => x86::block_avx512_bf16::<4>(rows, weights, in_dim, out),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!(
        "bf16 rows come from x86_64 only: {}",
        rows.len() + weights.len() + in_dim + out.len()
    );
}

/// `out[j * rows.len() + r] = rows[r] · w_j` for each weight row `w_j` (of
/// `in_dim` values) of `weights` and each of up to [`MAX_ROWS`] `rows`, on
/// one thread: the product kernels for other callers (the scores of a few
/// query heads against the cached keys).
pub(crate) fn row_dots<W: Element>(rows: &[&[f32]], weights: &[W], in_dim: usize, out: &mut [f32]) {
    match rows.len() {
        1 => block_n::<W, 1>(rows, weights, in_dim, out),
        2 => block_n::<W, 2>(rows, weights, in_dim, out),
        3 => block_n::<W, 3>(rows, weights, in_dim, out),
        _ => block_n::<W, 4>(rows, weights, in_dim, out),
    }
}

fn block_n<W: Element, const N: usize>(
    rows: &[&[f32]],
    weights: &[W],
    in_dim: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { x86::block_avx512::<W, N>(rows, weights, in_dim, out) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { x86::block_avx2::<W, N>(rows, weights, in_dim, out) };
        }
    }
    for (w, ys) in weights.chunks_exact(in_dim).zip(out.chunks_exact_mut(N)) {
        ys.copy_from_slice(&dots_lanes::<W, N, 16>(rows, w));
    }
}

/// `L` running sums per input row that the compiler keeps in vector
/// registers (several registers' worth, so consecutive multiply-adds do
/// not wait on each other), added up pairwise at the end. Each row's sums
/// run in the same order whatever `N` is, so a row's result does not depend
/// on the rows beside it.
#[inline(always)]
fn dots_lanes<W: Element, const N: usize, const L: usize>(rows: &[&[f32]], w: &[W]) -> [f32; N] {
    let mut acc = [[0f32; L]; N];
    let whole = w.len() / L * L;
    for c in (0..whole).step_by(L) {
        let ws = &w[c..c + L];
        let wide: [f32; L] = std::array::from_fn(|k| ws[k].widen());
        for r in 0..N {
            let xs = &rows[r][c..c + L];
            for k in 0..L {
                acc[r][k] = xs[k].mul_add(wide[k], acc[r][k]);
            }
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = rows[r][whole..w.len()]
            .iter()
            .zip(&w[whole..])
            .map(|(a, b)| a * b.widen())
            .sum();
        pairwise_sum(acc[r]) + tail
    })
}

/// The sum of `L` (a power of two) values as a tree: halves added lane by
/// lane, which vectorises, instead of one long chain of additions.
#[inline(always)]
fn pairwise_sum<const L: usize>(mut v: [f32; L]) -> f32 {
    let mut width = L;
    while width > 1 {
        width /= 2;
        for k in 0..width {
            v[k] += v[k + width];
        }
    }
    v[0]
}

#[cfg(test)]
mod tests;
