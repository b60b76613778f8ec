//! A prompt's attention tiles on bf16 pairs, for a bf16 model on a CPU that
//! multiplies bf16 pairs faster than f32 (`pairs::fast`): the scores
//! `Q Kᵀ` and the weighted sums `P V` of the blockwise kernel, each tile's
//! keys or values packed as the panel kernel packs a weight. The queries,
//! keys and values are bf16 values already, so their products are exact
//! in f32 and only the order of the sums changes; the probabilities are
//! rounded to bf16 for `P V`, as torch's CPU attention does for bf16.

use super::super::x86::Avx512;
use super::pairs::{Pairs, pack};
use super::products_in;
use super::sequence::{pack_columns_into, round_to_pairs};

/// Whether the tiles can go on pairs on this CPU.
pub(crate) fn available() -> bool {
    super::pairs::fast()
}

/// A task's buffers, kept from tile to tile.
#[derive(Default)]
pub(crate) struct Scratch {
    /// An odd count of value rows and a zero row.
    padded: Vec<u16>,
    packed: Vec<f32>,
    words: Vec<f32>,
}

/// Rows of `width` values (bf16 values held as f32, `width` even) as the
/// kernel's pair words, into `words`.
pub(crate) fn words_of(rows: &[f32], words: &mut Vec<f32>) {
    assert!(available() && rows.len().is_multiple_of(2));
    words.resize(rows.len() / 2, 0.0);
    // SAFETY: `available` checked the features; the lengths fit.
    unsafe { round_to_pairs(rows, words) };
}

/// `out = a bᵀ`: `a` as pair words (rows of `d / 2`, from [`words_of`]),
/// `b` rows of `d` bf16 bit patterns (a tile's keys), `out` `[rows, b's
/// rows]`.
pub(crate) fn times_transposed(a: &[f32], b: &[u16], d: usize, out: &mut [f32], s: &mut Scratch) {
    assert!(available() && d.is_multiple_of(2) && b.len().is_multiple_of(d));
    let rows = a.len() / (d / 2);
    assert!(a.len() == rows * d / 2 && out.len() == rows * (b.len() / d));
    // SAFETY: `available` checked the features; the lengths were checked.
    unsafe { scores(a, b, d / 2, out, s) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn scores(a: &[f32], b: &[u16], pairs: usize, out: &mut [f32], s: &mut Scratch) {
    // SAFETY: the caller's CPU has the features; `b` holds whole rows.
    unsafe {
        pack(b, pairs, &mut s.packed);
        products_in::<Avx512, Pairs>(a, &s.packed, pairs, out)
    }
}

/// `out = a b`: `a` rows of `n` f32 values (a tile's probabilities,
/// rounded to bf16 here), `b` `[n, d]` bf16 bit patterns (its values),
/// `out` `[rows, d]`. An odd `n` gets a zero pair.
pub(crate) fn times(a: &[f32], n: usize, b: &[u16], d: usize, out: &mut [f32], s: &mut Scratch) {
    assert!(available() && b.len() == n * d && a.len().is_multiple_of(n.max(1)));
    let rows = a.len() / n.max(1);
    assert!(out.len() == rows * d);
    let even = n.next_multiple_of(2);
    s.words.resize(rows * even / 2, 0.0);
    for (row, words) in a
        .chunks_exact(n.max(1))
        .zip(s.words.chunks_exact_mut(even / 2))
    {
        let whole = n / 2 * 2;
        // SAFETY: `available` checked the features; `whole` values make
        // `whole / 2` words.
        unsafe { round_to_pairs(&row[..whole], &mut words[..whole / 2]) };
        if whole < n {
            let low = half::bf16::from_f32(row[whole]).to_bits() as u32;
            words[whole / 2] = f32::from_bits(low);
        }
    }
    // The pairs run along the values' rows: an odd count gets a zero row.
    let b = if even == n {
        b
    } else {
        s.padded.clear();
        s.padded.extend_from_slice(b);
        s.padded.resize(even * d, 0);
        &s.padded
    };
    // SAFETY: as above; `b` holds `even` rows of `d`.
    unsafe { weighted(b, d, even / 2, out, (&s.words, &mut s.packed)) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn weighted(
    b: &[u16],
    d: usize,
    pairs: usize,
    out: &mut [f32],
    (words, packed): (&[f32], &mut Vec<f32>),
) {
    // SAFETY: the caller's CPU has the features; the lengths fit.
    unsafe {
        pack_columns_into(b, d, packed);
        products_in::<Avx512, Pairs>(words, packed, pairs, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::data::rng::SplitMix64::new(seed);
        let draw = |_| half::bf16::from_f32(rng.next_f64() as f32 * 2.0 - 1.0).to_f32();
        (0..n).map(draw).collect()
    }

    fn bits(values: &[f32]) -> Vec<u16> {
        crate::model::gemv::bf16_bits_if_exact(values).expect("bf16 values")
    }

    #[test]
    fn tiles_equal_exact_sums_of_the_bf16_values() {
        if !available() {
            eprintln!("skipped: this CPU does not multiply bf16 pairs fast");
            return;
        }
        let mut scratch = Scratch::default();
        // 19 query rows of d 64 against 37 keys (a partial strip); then
        // again against 50 keys with the same scratch (an odd count in the
        // weighted sums: a zero pair).
        let d = 64;
        let q = bf16_values(19 * d, 1);
        let mut words = Vec::new();
        words_of(&q, &mut words);
        for (n, seed) in [(37, 2), (50, 3), (37, 4)] {
            let k = bf16_values(n * d, seed);
            let mut scores = vec![0f32; 19 * n];
            times_transposed(&words, &bits(&k), d, &mut scores, &mut scratch);
            for (i, row) in scores.chunks_exact(n).enumerate() {
                for (j, &got) in row.iter().enumerate() {
                    let want: f64 = (0..d)
                        .map(|c| q[i * d + c] as f64 * k[j * d + c] as f64)
                        .sum();
                    assert!((got as f64 - want).abs() < 1e-5, "score {i},{j}");
                }
            }
            let p: Vec<f32> = (0..19 * n).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
            let v = bf16_values(n * d, seed + 10);
            let mut out = vec![0f32; 19 * d];
            times(&p, n, &bits(&v), d, &mut out, &mut scratch);
            for (i, row) in out.chunks_exact(d).enumerate() {
                for (c, &got) in row.iter().enumerate() {
                    let rounded = |x: f32| half::bf16::from_f32(x).to_f64();
                    let want: f64 = (0..n)
                        .map(|j| rounded(p[i * n + j]) * v[j * d + c] as f64)
                        .sum();
                    assert!((got as f64 - want).abs() < 1e-5, "{n} keys: out {i},{c}");
                }
            }
        }
    }
}
