//! A training pass's frozen products over a bf16 weight, on bf16 pairs: a
//! whole sequence's rows times `W^T` (forward) or `W` (the input's
//! gradient); and a prompt's of `gemv::SEQUENCE_FROM` rows or more (the
//! values bf16 already). The rows are rounded to bf16 on the way in, as
//! the bf16 output projection's are; the sums are f32.
//!
//! The inference path splits the weight among tasks, each packing its own
//! block and writing its own `[rows, block]` results, which are then laid
//! out again as `[rows, out]`, after the inputs went through four
//! conversions to become pairs. At 1,024 rows of SmolLM2's shapes those
//! passes took 30% of a product. Here the weight is packed once (by all
//! threads, each its own groups of outputs) and the
//! tasks take blocks of input rows: each rounds its own rows and writes
//! its own rows of the result in place.

use super::super::x86::Avx512;
use super::pairs::{Pairs, pack_groups};
use super::{STRIPS, products_in};
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// Input rows a task takes at least.
const MIN_TASK_ROWS: usize = 32;

/// Tasks per thread: a few, so a thread slowed by the host does not hold
/// the others up for long.
const TASKS_PER_THREAD: usize = 2;

/// `x @ w.T` for rows `x` of `in_dim` f32 values and `w` `[out, in_dim]`
/// as bf16 bits: `[rows, out]`. `in_dim` is even; the CPU has avx512f and
/// avx512bf16.
pub(in crate::model::gemv) fn times_transposed(x: &[f32], w: &[u16], in_dim: usize) -> Vec<f32> {
    let pairs = in_dim / 2;
    let out = w.len() / in_dim;
    // Whole groups of rows of `w` per task: each task's part of the
    // packing is its own run of `packed`.
    let packed = packed_in_parallel(out, GROUP_WIDTH, GROUP_WIDTH * pairs, |groups, dst| {
        let rows = groups.start * GROUP_WIDTH..(groups.end * GROUP_WIDTH).min(out);
        // SAFETY: the caller checked the features; `w` holds whole rows
        // and `dst` the groups' values.
        unsafe { pack_rows(&w[rows.start * in_dim..rows.end * in_dim], pairs, dst) }
    });
    // SAFETY (both): the caller checked the features; `packed` is laid out
    // for `in_dim / 2` pairs; `block` writes all its outputs (`products_in`
    // writes each on its first block of inputs).
    unsafe { on_row_blocks(x, in_dim, out, |x, y| block(x, &packed, in_dim, y)) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_rows(w: &[u16], pairs: usize, dst: &mut [MaybeUninit<f32>]) {
    // SAFETY: the CPU has the features; `w` holds whole rows of pairs and
    // `dst` room for their groups.
    unsafe { pack_groups(w, pairs, dst.as_mut_ptr().cast()) }
}

/// Outputs per group of strips the kernel takes.
const GROUP_WIDTH: usize = STRIPS * 16;

/// A weight of `outputs` packed for a kernel (groups of `group_width`
/// outputs, `group_words` words each), `pack` writing every value of the
/// groups it is given into their run of the result: groups split among
/// the threads. On one thread the
/// packing held the other idle for 3-4% of a SmolLM2 product at 1,024
/// rows, and a quarter of one at 128, where a prompt's products come.
pub(super) fn packed_in_parallel(
    outputs: usize,
    group_width: usize,
    group_words: usize,
    pack: impl Fn(std::ops::Range<usize>, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let groups = outputs.div_ceil(group_width);
    let mut packed = unwritten(groups * group_words);
    let threads = rayon::current_num_threads().max(1);
    let per_task = groups.div_ceil(threads * TASKS_PER_THREAD).max(1);
    let tasks: Vec<(usize, &mut [MaybeUninit<f32>])> = packed
        .chunks_mut(per_task * group_words)
        .enumerate()
        .collect();
    crate::pool::crew::for_each_item(tasks, |(task, dst)| {
        let first = task * per_task;
        pack(first..first + dst.len() / group_words, dst)
    });
    // SAFETY: `pack` wrote every value of each task's groups.
    unsafe { written(packed) }
}

/// `len` places for f32 values, not initialised.
fn unwritten(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut places = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` values need no initialisation.
    unsafe { places.set_len(len) };
    places
}

/// `places` as the values written to them.
///
/// # Safety
/// Every place was written.
unsafe fn written(places: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut places = std::mem::ManuallyDrop::new(places);
    // SAFETY: every value is initialised (the caller's promise), and
    // `MaybeUninit<f32>` has f32's layout.
    unsafe { Vec::from_raw_parts(places.as_mut_ptr().cast(), places.len(), places.capacity()) }
}

/// `g @ w` for rows `g` of `out` f32 values and `w` `[out, in_dim]` as
/// bf16 bits: `[rows, in_dim]`. `out` is even; the CPU has avx512f and
/// avx512bf16.
pub(in crate::model::gemv) fn times(g: &[f32], w: &[u16], in_dim: usize) -> Vec<f32> {
    let out = w.len() / in_dim;
    let packed = packed_in_parallel(in_dim, GROUP_WIDTH, GROUP_WIDTH * out / 2, |groups, dst| {
        // SAFETY: as above; `dst` holds the groups of columns `groups`.
        unsafe { pack_columns(w, in_dim, groups, dst) }
    });
    // SAFETY (both): as above, for `out / 2` pairs.
    unsafe { on_row_blocks(g, out, in_dim, |g, y| block(g, &packed, out, y)) }
}

/// The rows (of `width` values) times a packed weight's `m` outputs,
/// blocks of rows in parallel, `block` taking a block's rows and their
/// outputs' places.
///
/// # Safety
/// `block` writes every one of the places it is given.
///
/// The result is not zeroed first: the kernels write every value (a
/// training pass's outputs and input gradients come to about a gigabyte a
/// SmolLM2 step at 1,024 tokens, zeroed on one thread before the tasks
/// started).
pub(super) unsafe fn on_row_blocks(
    rows: &[f32],
    width: usize,
    m: usize,
    block: impl Fn(&[f32], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let n = rows.len() / width;
    let mut out = unwritten(n * m);
    let threads = rayon::current_num_threads().max(1);
    let per_task = n.div_ceil(threads * TASKS_PER_THREAD).max(MIN_TASK_ROWS);
    let tasks: Vec<(&[f32], &mut [MaybeUninit<f32>])> = rows
        .chunks(per_task * width)
        .zip(out.chunks_mut(per_task * m))
        .collect();
    crate::pool::crew::for_each_item(tasks, |(x, y)| block(x, y));
    // SAFETY: every task wrote all of its outputs (the caller's promise).
    unsafe { written(out) }
}

thread_local! {
    /// A task's rows as pair words, kept for the thread's next task
    /// rather than a fresh buffer zeroed for each (1,680 tasks a SmolLM2
    /// training step at 1,024 tokens, up to 0.8 MB each).
    static WORDS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn block(x: &[f32], packed: &[f32], width: usize, out: &mut [MaybeUninit<f32>]) {
    WORDS.with_borrow_mut(|kept| {
        if kept.len() < x.len() / 2 {
            kept.resize(x.len() / 2, 0.0);
        }
        let words = &mut kept[..x.len() / 2];
        // SAFETY: the CPU has the features; `x` has an even length;
        // `packed` is laid out for `width / 2` pairs.
        unsafe {
            round_to_pairs(x, words);
            products_in::<Avx512, Pairs>(words, packed, width / 2, out)
        }
    })
}

/// `x` (an even count) rounded to bf16, to nearest with ties to even, as
/// pair words: two neighbouring values in a word, the first in the low
/// half (their order in memory).
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn round_to_pairs(x: &[f32], words: &mut [f32]) {
    let whole = x.len() / 16 * 16;
    for i in (0..whole).step_by(16) {
        // SAFETY: 16 values from `i` lie in `x`, 8 words from `i / 2` in
        // `words`.
        unsafe {
            let narrow = _mm512_cvtneps_pbh(_mm512_loadu_ps(x.as_ptr().add(i)));
            let narrow = std::mem::transmute::<__m256bh, __m256i>(narrow);
            _mm256_storeu_si256(words.as_mut_ptr().add(i / 2).cast(), narrow);
        }
    }
    for i in (whole..x.len()).step_by(2) {
        let bits = |v: f32| half::bf16::from_f32(v).to_bits() as u32;
        words[i / 2] = f32::from_bits(bits(x[i]) | bits(x[i + 1]) << 16);
    }
}

/// `w` (`[out, in_dim]` bf16, `out` even) packed as `pack` packs a weight
/// `[in_dim, out]`, i.e. `w`'s transpose, without making the transpose:
/// the outputs are `w`'s columns, and each pair word holds two
/// neighbouring rows' values of one column. The groups of columns
/// `groups`, into `dst` (from their first), every value written.
#[target_feature(enable = "avx512f")]
unsafe fn pack_columns(
    w: &[u16],
    in_dim: usize,
    groups: std::ops::Range<usize>,
    dst: &mut [MaybeUninit<f32>],
) {
    let columns = groups.start * GROUP_WIDTH..(groups.end * GROUP_WIDTH).min(in_dim);
    // SAFETY: the caller's CPU has avx512f; `dst` holds the groups.
    unsafe { pack_columns_at(w, in_dim, columns, dst.as_mut_ptr().cast()) }
}

/// `w` packed as [`pack_columns`] packs it, all its columns, into
/// `packed`, which may hold an earlier packing.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pack_columns_into(w: &[u16], in_dim: usize, packed: &mut Vec<f32>) {
    let pairs = w.len() / in_dim / 2;
    let len = in_dim.div_ceil(GROUP_WIDTH) * GROUP_WIDTH * pairs;
    // Not zeroed first: `pack_columns_at` writes every value.
    packed.clear();
    packed.reserve(len);
    // SAFETY: the caller's CPU has avx512f; the `len` values written lie
    // in the capacity just reserved.
    unsafe {
        pack_columns_at(w, in_dim, 0..in_dim, packed.as_mut_ptr());
        packed.set_len(len);
    }
}

/// The columns `columns` (from a group's first) of `w` packed from `to`:
/// rows are read in order; lanes past the last column and the strips a
/// last, narrower group lacks are written as zeros.
#[inline(always)]
unsafe fn pack_columns_at(w: &[u16], in_dim: usize, columns: std::ops::Range<usize>, to: *mut f32) {
    const LANES: usize = 16;
    let pairs = w.len() / in_dim / 2;
    for p in 0..pairs {
        let (low, high) = (
            &w[2 * p * in_dim..][..in_dim],
            &w[(2 * p + 1) * in_dim..][..in_dim],
        );
        for first in columns.clone().step_by(GROUP_WIDTH) {
            let count = (columns.end - first).min(GROUP_WIDTH);
            let strips = count.div_ceil(LANES);
            // SAFETY: the group's `GROUP_WIDTH * pairs` values from its
            // start lie in `to`.
            let group = unsafe { to.add((first - columns.start) * pairs) };
            let dst = unsafe { group.add(p * strips * LANES) };
            let whole = count / LANES * LANES;
            for c in (0..whole).step_by(LANES) {
                // SAFETY: 16 columns from `first + c` lie in both rows and
                // 16 words from `c` in the group.
                unsafe {
                    let at = first + c;
                    let low =
                        _mm512_cvtepu16_epi32(_mm256_loadu_si256(low.as_ptr().add(at).cast()));
                    let high =
                        _mm512_cvtepu16_epi32(_mm256_loadu_si256(high.as_ptr().add(at).cast()));
                    let words = _mm512_or_si512(low, _mm512_slli_epi32::<16>(high));
                    _mm512_storeu_si512(dst.add(c).cast(), words);
                }
            }
            for c in whole..strips * LANES {
                let word = match c < count {
                    true => low[first + c] as u32 | (high[first + c] as u32) << 16,
                    false => 0,
                };
                // SAFETY: within the group's strips.
                unsafe { dst.add(c).write(f32::from_bits(word)) };
            }
            if p + 1 == pairs {
                let used = strips * LANES * pairs;
                // SAFETY: the group's unused strips, within the group.
                unsafe { std::ptr::write_bytes(group.add(used), 0, GROUP_WIDTH * pairs - used) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::data::rng::SplitMix64::new(seed);
        (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect()
    }

    fn bf16_bits(values: &[f32]) -> Vec<u16> {
        values
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect()
    }

    fn widen(bits: &[u16]) -> Vec<f64> {
        bits.iter()
            .map(|&b| half::bf16::from_bits(b).to_f64())
            .collect()
    }

    /// `a` `[n, k]` times `b` `[k, m]` (given as `b_at(i, j)`) in f64.
    fn exact(a: &[f64], k: usize, m: usize, b_at: impl Fn(usize, usize) -> f64) -> Vec<f64> {
        a.chunks_exact(k)
            .flat_map(|row| (0..m).map(|j| (0..k).map(|i| row[i] * b_at(i, j)).sum::<f64>()))
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!((g as f64 - w).abs() < 1e-4, "{what}[{i}]: {g} vs {w}");
        }
    }

    fn cpu_has_pairs() -> bool {
        let has = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16");
        if !has {
            eprintln!("skipped: this CPU has no avx512_bf16");
        }
        has
    }

    /// Both products of `n` rows against exact sums of their rounded
    /// values: `x @ w.T` with `w` `[m, in_dim]`, and `g @ w` with `w`
    /// `[out, columns]`. The first's result.
    fn assert_both_exact(
        n: usize,
        (m, in_dim): (usize, usize),
        (out, columns): (usize, usize),
        seed: u64,
    ) -> Vec<f32> {
        let x = draw(n * in_dim, seed);
        let w = bf16_bits(&draw(m * in_dim, seed + 1));
        let w_values = widen(&w);
        let want = exact(&widen(&bf16_bits(&x)), in_dim, m, |i, j| {
            w_values[j * in_dim + i]
        });
        let got = times_transposed(&x, &w, in_dim);
        assert_close(&got, &want, "x @ w.T");

        let g = draw(n * out, seed + 2);
        let w = bf16_bits(&draw(out * columns, seed + 3));
        let w_values = widen(&w);
        let want = exact(&widen(&bf16_bits(&g)), out, columns, |i, j| {
            w_values[i * columns + j]
        });
        assert_close(&times(&g, &w, columns), &want, "g @ w");
        got
    }

    #[test]
    fn both_products_equal_exact_sums_of_the_rounded_values_on_ragged_shapes() {
        if !cpu_has_pairs() {
            return;
        }
        // 70 rows (tasks of at least 32 and a ragged last one), 75 outputs
        // (two whole groups of strips and a partial one), 302 inputs (151
        // pairs: a block of DEPTH and a ragged one); the gradient's weight
        // `[76, 75]` (pairs of its 76 rows), 75 outputs as above.
        let (n, m, in_dim) = (70, 75, 302);
        let got = assert_both_exact(n, (m, in_dim), (76, 75), 1);
        // A row's sums do not depend on the rows beside it.
        let x = draw(n * in_dim, 1);
        let w = bf16_bits(&draw(m * in_dim, 2));
        let alone = times_transposed(&x[40 * in_dim..41 * in_dim], &w, in_dim);
        assert_eq!(alone, got[40 * m..41 * m], "row 40 alone");
    }

    #[test]
    fn weights_packed_by_several_tasks_give_the_same_products() {
        if !cpu_has_pairs() {
            return;
        }
        // 200 outputs: four whole groups of 48 and one of 8 (a partial
        // strip, two strips missing), packed by tasks of whole groups;
        // the gradient's weight `[64, 200]`, its 200 columns as outputs.
        assert_both_exact(40, (200, 64), (64, 200), 5);
    }
}
