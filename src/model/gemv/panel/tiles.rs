//! Attention tiles on bf16 pairs, for a bf16 model on a CPU that multiplies
//! bf16 pairs faster than f32 (`pairs::fast`): the blockwise kernel's
//! products `A Bᵀ` (scores), `A B` (weighted sums, the query gradients)
//! and `Aᵀ B` (the key and value gradients), each tile's `B` packed as the
//! panel kernel packs a weight. A prompt's queries, keys and values are
//! bf16 values already, so their products are exact in f32 and only the
//! order of the sums changes; a tile's probabilities or score gradients
//! are rounded to bf16 on the way in, as torch's CPU attention does for
//! bf16.

use super::super::x86::Avx512;
use super::pairs::{Pairs, pack};
use super::sequence::{pack_columns_into, round_to_pairs};
use super::{places, products_in};

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
    /// A tile turned over, for [`times_turned`].
    turned: Vec<f32>,
}

/// Rows of `width` values (bf16 values held as f32, `width` even) as the
/// kernel's pair words, into `words`.
pub(crate) fn words_of(rows: &[f32], words: &mut Vec<f32>) {
    assert!(available() && rows.len().is_multiple_of(2));
    words.resize(rows.len() / 2, 0.0);
    // SAFETY: `available` checked the features; the lengths fit.
    unsafe { round_to_pairs(rows, words) };
}

/// Pair words (from [`words_of`]) as the bf16 bit patterns they hold,
/// two to a word, the first in the low half.
pub(crate) fn bits_of_words(words: &[f32]) -> &[u16] {
    // SAFETY: a word is 4 bytes aligned to 4, so it holds two aligned
    // u16; x86 is little-endian, so the low half comes first.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u16>(), words.len() * 2) }
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
        products_in::<Avx512, Pairs>(a, &s.packed, pairs, places(out))
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

/// `out = aᵀ b`: `a` `[k, n]` f32 (a tile's probabilities or score
/// gradients, rounded to bf16 here), `b` `[k, d]` bf16 bit patterns, `out`
/// `[n, d]`. The tile is turned over in registers first.
pub(crate) fn times_turned(
    a: &[f32],
    n: usize,
    b: &[u16],
    d: usize,
    out: &mut [f32],
    s: &mut Scratch,
) {
    assert!(available() && a.len().is_multiple_of(n.max(1)));
    let k = a.len() / n.max(1);
    let mut turned = std::mem::take(&mut s.turned);
    turned.resize(a.len(), 0.0);
    // SAFETY: `available` checked the features; `turned` holds `a`'s size.
    unsafe { turn_over(a, k, n, &mut turned) };
    times(&turned, k, b, d, out, s);
    s.turned = turned;
}

/// `a` (`k` rows of `n`) as `n` rows of `k`: blocks of 16 x 16 in
/// registers, the ragged edges one value at a time.
#[target_feature(enable = "avx512f")]
unsafe fn turn_over(a: &[f32], k: usize, n: usize, turned: &mut [f32]) {
    use super::super::transpose::columns_16;
    use std::arch::x86_64::{_mm512_setzero_ps, _mm512_storeu_ps};
    let (whole_k, whole_n) = (k / 16 * 16, n / 16 * 16);
    let mut columns = [_mm512_setzero_ps(); 16];
    for r in (0..whole_k).step_by(16) {
        for j in (0..whole_n).step_by(16) {
            // SAFETY: rows r..r + 16 hold values j..j + 16; the turned rows
            // j..j + 16 hold places r..r + 16.
            unsafe {
                columns_16(a.as_ptr().add(r * n + j).cast(), n * 4, &mut columns);
                for (i, column) in columns.iter().enumerate() {
                    _mm512_storeu_ps(turned.as_mut_ptr().add((j + i) * k + r), *column);
                }
            }
        }
    }
    for r in 0..k {
        let edge = if r < whole_k { whole_n } else { 0 };
        for j in edge..n {
            turned[j * k + r] = a[r * n + j];
        }
    }
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
        products_in::<Avx512, Pairs>(words, packed, pairs, places(out))
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
    fn a_turned_tile_multiplies_as_its_transpose() {
        if !available() {
            eprintln!("skipped: this CPU does not multiply bf16 pairs fast");
            return;
        }
        let (d, mut scratch) = (64, Scratch::default());
        // Whole 16 x 16 blocks, ragged edges both ways, an odd row count
        // (a zero pair); the scratch reused between sizes.
        for (k, n) in [(32, 48), (37, 50), (16, 16), (51, 33), (3, 5)] {
            let a = bf16_values(k * n, k as u64);
            let b = bits(&bf16_values(k * d, n as u64));
            let mut turned = vec![0f32; n * k];
            for (r, row) in a.chunks_exact(n).enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    turned[j * k + r] = x;
                }
            }
            let (mut got, mut want) = (vec![0f32; n * d], vec![0f32; n * d]);
            times_turned(&a, n, &b, d, &mut got, &mut scratch);
            times(&turned, k, &b, d, &mut want, &mut Scratch::default());
            let first_difference = got.iter().zip(&want).position(|(a, b)| a != b);
            assert_eq!(first_difference, None, "{k} x {n}");
        }
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
