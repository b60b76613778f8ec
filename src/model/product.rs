//! Matrix products on f32 slices through `gemm` (candle's own backend),
//! written into a buffer the caller owns, scaled and accumulated there:
//! the blockwise attention's tiles, and the training projections' sums of
//! a frozen product and a low-rank one, which candle's ops would make as
//! separate tensors and then add.

#[cfg(target_arch = "x86_64")]
mod thin;

use candle_core::{DType, Result, Storage, Tensor};
use gemm::{Parallelism, gemm};

/// A matrix laid over a slice with explicit strides.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// The row-major matrix `data` with `cols` columns.
pub fn plain(data: &[f32], cols: usize) -> View<'_> {
    View {
        data,
        row_stride: cols,
        col_stride: 1,
    }
}

/// The transpose of the row-major matrix `data` with `cols` columns.
pub fn transposed(data: &[f32], cols: usize) -> View<'_> {
    View {
        data,
        row_stride: 1,
        col_stride: cols,
    }
}

impl View<'_> {
    fn check(&self, rows: usize, cols: usize) {
        let last = (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
        assert!(last < self.data.len(), "matrix view out of its slice");
    }
}

/// `dst (m × n, row-major) = [dst +] factor · lhs (m × k) · rhs (k × n)`,
/// on the calling thread or, with `parallel`, on rayon's.
pub fn product(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: View,
    rhs: View,
    factor: f32,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n, "product destination too small");
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    lhs.check(m, k);
    rhs.check(k, n);
    let threads = rayon::current_num_threads();
    let sizes = (m, n, k);
    let dst = Destination {
        first: dst.as_mut_ptr(),
        row_stride: n,
    };
    let shared = parallel && m * n * k >= SHARED_FROM;
    #[cfg(target_arch = "x86_64")]
    if shared && thin::takes(m, n, &lhs) {
        // SAFETY: as for `gemm_into` below.
        return unsafe { thin::product(dst, sizes, (lhs, rhs), factor, accumulate) };
    }
    if shared && threads > 1 && m.min(n).min(k) <= THIN {
        return split(dst, sizes, (lhs, rhs), factor, accumulate, threads);
    }
    let parallelism = match parallel && threads > 1 {
        true => Parallelism::Rayon(threads),
        false => Parallelism::None,
    };
    // SAFETY: the views hold their matrices (checked above) and `dst` its
    // `m × n` places; `dst` is borrowed mutably while the operands are
    // borrowed shared, so they do not overlap.
    unsafe { gemm_into(dst, sizes, (lhs, rhs), factor, accumulate, parallelism) }
}

/// A side at most this long (a LoRA rank) marks a thin product, which
/// gemm's own threads did not speed up: a SmolLM2 adapter's `x @ A^T`
/// (1,024 x 576 x 16) took 0.31 ms on two threads and 0.33 ms on one
/// (Intel Xeon, 2026-12-07). [`split`] shares those out instead.
const THIN: usize = 64;

/// Multiply-adds from which a thin product goes to [`split`] or the thin
/// kernel: SmolLM2's adapter at 1,024 tokens (9.4 million for `x @ A^T`)
/// gained; Qwen2.5-0.5B's layer shape at 256 tokens (3.7 million) read
/// 3-4% slower there than on gemm alone in two alternating pairs, inside
/// the host's noise (Intel Xeon, 2026-12-07), so smaller ones stay as
/// they were.
const SHARED_FROM: usize = 8 << 20;

/// Rows (or columns) a thread's part of a thin product takes at least.
const MIN_PART: usize = 32;

/// Where a product's result goes: its first place and its row stride.
#[derive(Clone, Copy)]
struct Destination {
    first: *mut f32,
    row_stride: usize,
}

// SAFETY: a `Destination` is shared only between the parts of one
// product, which write disjoint places (see `split`).
unsafe impl Send for Destination {}
unsafe impl Sync for Destination {}

/// A thin product cut along its longer output side into a few parts per
/// thread, each one single-threaded gemm, on the pool.
fn split(
    dst: Destination,
    (m, n, k): (usize, usize, usize),
    (lhs, rhs): (View, View),
    factor: f32,
    accumulate: bool,
    threads: usize,
) {
    let along_rows = m >= n;
    let long = if along_rows { m } else { n };
    let part = long.div_ceil(2 * threads).max(MIN_PART);
    let task = |i: usize| {
        let start = i * part;
        let len = part.min(long - start);
        let (dst, sizes, lhs, rhs) = match along_rows {
            true => (
                dst.offset(start * dst.row_stride),
                (len, n, k),
                lhs.from(start * lhs.row_stride),
                rhs,
            ),
            false => (
                dst.offset(start),
                (m, len, k),
                lhs,
                rhs.from(start * rhs.col_stride),
            ),
        };
        // SAFETY: the part's rows (or columns) of `dst` are its own, and
        // its operands' views lie within theirs (cut from checked views).
        unsafe {
            gemm_into(
                dst,
                sizes,
                (lhs, rhs),
                factor,
                accumulate,
                Parallelism::None,
            )
        }
    };
    crate::pool::crew::for_each(long.div_ceil(part), &task);
}

impl Destination {
    fn offset(self, places: usize) -> Destination {
        Destination {
            // SAFETY: the caller's offset stays within the product's places.
            first: unsafe { self.first.add(places) },
            ..self
        }
    }
}

impl<'a> View<'a> {
    /// The view starting `offset` values into this one.
    fn from(self, offset: usize) -> View<'a> {
        View {
            data: &self.data[offset..],
            ..self
        }
    }
}

/// gemm's `dst = [dst +] factor · lhs · rhs`.
///
/// # Safety
/// The views hold `m × k` and `k × n` matrices, `dst` has `m × n` places
/// at its row stride that nothing else touches meanwhile.
unsafe fn gemm_into(
    dst: Destination,
    (m, n, k): (usize, usize, usize),
    (lhs, rhs): (View, View),
    factor: f32,
    accumulate: bool,
    parallelism: Parallelism,
) {
    // SAFETY: the caller's promise.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.first,
            1,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            factor,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `Σ factor · lhs · rhs` over `terms` of 2-D f32 CPU tensors (`lhs`
/// `[m, k]`, `rhs` `[k, n]`, any strides, transposed views included), as
/// one `[m, n]` tensor: each product accumulates into the first's buffer.
/// `None` when an operand is not an f32 CPU matrix.
pub fn sum_of_products(terms: &[(f32, &Tensor, &Tensor)]) -> Result<Option<Tensor>> {
    biased_sum_of_products(None, terms)
}

/// [`sum_of_products`] plus `bias` (`[n]`, f32) on every row, which the
/// products accumulate onto, as torch's `addmm` does for a biased linear
/// layer.
pub fn biased_sum_of_products(
    bias: Option<&Tensor>,
    terms: &[(f32, &Tensor, &Tensor)],
) -> Result<Option<Tensor>> {
    let start = match bias {
        Some(bias) => Start::Bias(bias),
        None => Start::Zero,
    };
    let Some(sum) = sum_into(start, terms)? else {
        return Ok(None);
    };
    let (m, n) = (terms[0].1.dim(0)?, terms[0].2.dim(1)?);
    Ok(Some(Tensor::from_vec(sum, (m, n), terms[0].1.device())?))
}

/// [`sum_of_products`] as the row-major values of the `[m, n]` result.
pub fn sum_of_products_vec(terms: &[(f32, &Tensor, &Tensor)]) -> Result<Option<Vec<f32>>> {
    sum_into(Start::Zero, terms)
}

/// [`sum_of_products`] added onto `start`, the row-major values of an
/// `[m, n]` matrix made elsewhere (a product on the CPU's bf16 kernels),
/// in its own buffer. `None` when an operand is not an f32 CPU matrix.
pub fn sum_of_products_onto(
    start: Vec<f32>,
    terms: &[(f32, &Tensor, &Tensor)],
) -> Result<Option<Tensor>> {
    let Some(sum) = sum_into(Start::Values(start), terms)? else {
        return Ok(None);
    };
    let (m, n) = (terms[0].1.dim(0)?, terms[0].2.dim(1)?);
    Ok(Some(Tensor::from_vec(sum, (m, n), terms[0].1.device())?))
}

/// What the products of [`sum_into`] accumulate onto.
enum Start<'a> {
    Zero,
    /// `[n]`, on every row.
    Bias(&'a Tensor),
    /// `[m, n]`, row-major.
    Values(Vec<f32>),
}

fn sum_into(start: Start, terms: &[(f32, &Tensor, &Tensor)]) -> Result<Option<Vec<f32>>> {
    let matrices = terms.iter().flat_map(|(_, lhs, rhs)| [*lhs, *rhs]);
    if terms.is_empty()
        || !matrices
            .clone()
            .all(|t| t.rank() == 2 && t.dtype() == DType::F32 && t.device().is_cpu())
    {
        return Ok(None);
    }
    let (m, n) = (terms[0].1.dim(0)?, terms[0].2.dim(1)?);
    for (_, lhs, rhs) in terms {
        if lhs.dim(0)? != m || rhs.dim(1)? != n || lhs.dim(1)? != rhs.dim(0)? {
            candle_core::bail!(
                "sum of products: {:?} × {:?} does not give [{m}, {n}]",
                lhs.dims(),
                rhs.dims()
            );
        }
    }
    let held: Vec<_> = matrices.map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(held.len());
    for (storage, layout) in &held {
        let Storage::Cpu(cpu) = &**storage else {
            return Ok(None);
        };
        let stride = layout.stride();
        views.push(View {
            data: &cpu.as_slice::<f32>()?[layout.start_offset()..],
            row_stride: stride[0],
            col_stride: stride[1],
        });
    }
    let (mut dst, started) = match start {
        Start::Zero => (vec![0f32; m * n], false),
        Start::Bias(bias) if bias.dtype() != DType::F32 || bias.dims() != [n] => return Ok(None),
        Start::Bias(bias) => {
            let bias = bias.to_vec1::<f32>()?;
            let mut dst = vec![0f32; m * n];
            dst.chunks_exact_mut(n)
                .for_each(|row| row.copy_from_slice(&bias));
            (dst, true)
        }
        Start::Values(values) if values.len() != m * n => {
            candle_core::bail!(
                "sum of products onto {} values, not [{m}, {n}]",
                values.len()
            )
        }
        Start::Values(values) => (values, true),
    };
    for (i, (factor, lhs, _)) in terms.iter().enumerate() {
        let k = lhs.dim(1)?;
        let (l, r) = (views[2 * i], views[2 * i + 1]);
        product(&mut dst, (m, n, k), l, r, *factor, started || i > 0, true);
    }
    Ok(Some(dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn sums_products_of_plain_and_transposed_views() {
        let dev = Device::Cpu;
        let randn = |r, c| Tensor::randn(0f32, 1.0, (r, c), &dev).unwrap();
        let (x, w) = (randn(5, 7), randn(3, 7));
        let (down, b) = (randn(5, 2), randn(3, 2));
        let ours = sum_of_products(&[(1.0, &x, &w.t().unwrap()), (0.5, &down, &b.t().unwrap())])
            .unwrap()
            .unwrap();
        let plain = (x.matmul(&w.t().unwrap()).unwrap()
            + (down.matmul(&b.t().unwrap()).unwrap() * 0.5).unwrap())
        .unwrap();
        assert!(crate::model::max_abs_diff(&ours, &plain).unwrap() < 1e-5);
        // A view that starts inside its storage.
        let wide = randn(5, 9);
        let inner = wide.narrow(1, 2, 7).unwrap();
        let ours = sum_of_products(&[(2.0, &inner, &w.t().unwrap())])
            .unwrap()
            .unwrap();
        let plain = (inner.matmul(&w.t().unwrap()).unwrap() * 2.0).unwrap();
        assert!(crate::model::max_abs_diff(&ours, &plain).unwrap() < 1e-5);
    }

    /// Thin products (a LoRA rank on one side) on every route: ranks of
    /// one and two registers and a ragged one on the thin kernel, a wider
    /// one split into gemm calls, rank 1 (below `SHARED_FROM`) in one gemm
    /// call; the narrow side on the columns or the rows, transposed views,
    /// accumulation onto a start.
    #[test]
    fn thin_products_match_candle() {
        let dev = Device::Cpu;
        let randn = |r, c| Tensor::randn(0f32, 1.0, (r, c), &dev).unwrap();
        let close = |ours: &Tensor, plain: &Tensor| {
            let diff = crate::model::max_abs_diff(ours, plain).unwrap();
            assert!(diff < 1e-3, "{diff}");
        };
        let x = randn(1100, 1000);
        let g = randn(1100, 600);
        for rank in [1, 8, 16, 20, 32, 40] {
            // x @ A^T: [1100, rank], A transposed.
            let a = randn(rank, 1000);
            let ours = sum_of_products(&[(0.5, &x, &a.t().unwrap())]);
            let plain = (x.matmul(&a.t().unwrap()).unwrap() * 0.5).unwrap();
            close(&ours.unwrap().unwrap(), &plain);
            // down^T @ x: [rank, 1000] over 1100 tokens, onto a start.
            let (down, start) = (randn(1100, rank), randn(rank, 1000));
            let terms = [(2.0, &down.t().unwrap(), &x)];
            let values = start.flatten_all().unwrap().to_vec1().unwrap();
            let ours = sum_of_products_onto(values, &terms).unwrap().unwrap();
            let product = down.t().unwrap().matmul(&x).unwrap();
            close(&ours, &(start + (product * 2.0).unwrap()).unwrap());
            // g^T @ down: [600, rank], g transposed.
            let ours = sum_of_products(&[(1.0, &g.t().unwrap(), &down)]);
            let plain = g.t().unwrap().matmul(&down).unwrap();
            close(&ours.unwrap().unwrap(), &plain);
        }
    }

    #[test]
    fn other_dtypes_are_left_to_candle_and_bad_shapes_refused() {
        let dev = Device::Cpu;
        let x = Tensor::ones((2, 3), DType::BF16, &dev).unwrap();
        assert!(
            sum_of_products(&[(1.0, &x, &x.t().unwrap())])
                .unwrap()
                .is_none()
        );
        let (a, b) = (
            Tensor::ones((2, 3), DType::F32, &dev).unwrap(),
            Tensor::ones((4, 2), DType::F32, &dev).unwrap(),
        );
        assert!(sum_of_products(&[(1.0, &a, &b)]).is_err());
    }
}
