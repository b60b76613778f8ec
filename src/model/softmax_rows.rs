//! Passes over rows of scores between matrix products (blockwise
//! attention's tiles, the cross-entropy's logits): maxima, the
//! exponentials and their sums, rescaling, the scores' gradient. Sums and
//! maxima run in `LANES` accumulators, so they are vectors rather than one
//! long chain of dependent additions, and every pass is compiled for the
//! widest vectors the CPU has.

use crate::model::exp::exp;
use crate::model::wide::widest;
use std::ops::Range;

/// Running accumulators per reduction: two AVX-512 registers, four AVX2.
const LANES: usize = 32;

widest! {
    /// The largest element of `row`; −∞ when it is empty.
    pub fn max(row: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let chunks = row.chunks_exact(LANES);
        let mut largest = f32::NEG_INFINITY;
        for &x in chunks.remainder() {
            largest = largest.max(x);
        }
        for chunk in chunks {
            for i in 0..LANES {
                acc[i] = acc[i].max(chunk[i]);
            }
        }
        for a in acc {
            largest = largest.max(a);
        }
        largest
    }
}

widest! {
    /// Zeroes `row` outside `seen` and turns the rest into
    /// `exp(x · scale − shift)`; returns their sum.
    pub fn exponentiate(row: &mut [f32], seen: Range<usize>, scale: f32, shift: f32) -> f32 {
        row[..seen.start].fill(0.0);
        row[seen.end..].fill(0.0);
        let mut acc = [0f32; LANES];
        let mut chunks = row[seen].chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for i in 0..LANES {
                let e = exp(chunk[i] * scale - shift);
                chunk[i] = e;
                acc[i] += e;
            }
        }
        let mut total = 0.0;
        for x in chunks.into_remainder() {
            *x = exp(*x * scale - shift);
            total += *x;
        }
        for a in acc {
            total += a;
        }
        total
    }
}

widest! {
    /// `row *= factor`.
    pub fn scale(row: &mut [f32], factor: f32) {
        for x in row {
            *x *= factor;
        }
    }
}

widest! {
    /// The gradient of a row of scores from that of its probabilities:
    /// `d = p ∘ (d − delta)`, with `delta = rowsum(dO ∘ O)`.
    pub fn score_gradient(d: &mut [f32], p: &[f32], delta: f32) {
        for (x, &p) in d.iter_mut().zip(p) {
            *x = p * (*x - delta);
        }
    }
}

widest! {
    /// `Σ a_i b_i`.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; LANES];
        let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let mut total = 0.0;
        for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
            total += x * y;
        }
        for (x, y) in a_chunks.zip(b_chunks) {
            for i in 0..LANES {
                acc[i] += x[i] * y[i];
            }
        }
        for a in acc {
            total += a;
        }
        total
    }
}

/// Cross-entropy of rows of `logits` (`targets.len()` rows) against
/// `targets`: each row's loss, and `logits` turned in place into the
/// loss's gradient with respect to them (`softmax − onehot`). Rows run in
/// parallel.
pub fn cross_entropy(mut logits: Vec<f32>, targets: &[u32]) -> (Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let vocab = logits.len() / targets.len().max(1);
    let mut losses = vec![0f32; targets.len()];
    logits
        .par_chunks_mut(vocab.max(1))
        .zip(losses.par_iter_mut())
        .zip(targets.par_iter())
        .for_each(|((row, loss), &target)| {
            let target = target as usize;
            let largest = max(row);
            let picked = row[target] - largest;
            let total = exponentiate(row, 0..vocab, 1.0, largest);
            *loss = total.ln() - picked;
            scale(row, 1.0 / total);
            row[target] -= 1.0;
        });
    (losses, logits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect()
    }

    #[test]
    fn reductions_agree_with_plain_loops_on_ragged_lengths() {
        for n in [0, 1, 31, 32, 33, 100, 256] {
            let (a, b) = (values(n), values(n + 5)[5..].to_vec());
            let plain_max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&a), plain_max, "max of {n}");
            let plain_dot: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
            assert!((dot(&a, &b) as f64 - plain_dot).abs() < 1e-4 * (1.0 + plain_dot.abs()));
        }
    }

    #[test]
    fn exponentiate_zeroes_unseen_and_sums_the_rest() {
        for n in [1, 40, 256] {
            let mut row = values(n);
            let seen = n / 4..n - n / 8;
            let expect: Vec<f32> = row
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    if seen.contains(&i) {
                        (x * 0.5 - 1.0).exp()
                    } else {
                        0.0
                    }
                })
                .collect();
            let total = exponentiate(&mut row, seen, 0.5, 1.0);
            for (got, want) in row.iter().zip(&expect) {
                assert!(
                    (got - want).abs() <= 2e-7 * want.abs(),
                    "{got} against {want}"
                );
            }
            let sum: f32 = expect.iter().sum();
            assert!((total - sum).abs() <= 1e-5 * sum.max(1.0));
        }
    }

    #[test]
    fn cross_entropy_and_its_gradient_per_row() {
        let logits = values(3 * 40);
        let targets = [0u32, 17, 39];
        let (losses, grads) = cross_entropy(logits.clone(), &targets);
        for (r, &t) in targets.iter().enumerate() {
            let row = &logits[r * 40..(r + 1) * 40];
            let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
            let want = lse - row[t as usize] as f64;
            assert!(
                (losses[r] as f64 - want).abs() < 1e-5,
                "row {r}: {} against {want}",
                losses[r]
            );
            for (i, &g) in grads[r * 40..(r + 1) * 40].iter().enumerate() {
                let softmax = ((row[i] as f64) - lse).exp();
                let want = softmax - if i == t as usize { 1.0 } else { 0.0 };
                assert!((g as f64 - want).abs() < 1e-6, "row {r}, logit {i}");
            }
        }
    }

    #[test]
    fn elementwise_passes() {
        let mut row = values(70);
        let p = values(71)[1..].to_vec();
        let expect: Vec<f32> = row.iter().zip(&p).map(|(d, p)| p * (d - 0.25)).collect();
        score_gradient(&mut row, &p, 0.25);
        assert_eq!(row, expect);
        scale(&mut row, 2.0);
        assert_eq!(row, expect.iter().map(|x| x * 2.0).collect::<Vec<_>>());
    }
}
