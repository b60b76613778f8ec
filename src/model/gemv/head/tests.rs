//! The output projection's kernels against plain f64 sums.

use super::*;

/// Losses and gradients in f64, row by row.
fn plain(x: &[f32], w: &[f32], in_dim: usize, targets: &[u32]) -> (Vec<f64>, Vec<f64>) {
    let vocab = w.len() / in_dim;
    let (mut losses, mut grads) = (Vec::new(), Vec::new());
    for (row, &t) in x.chunks(in_dim).zip(targets) {
        let logits: Vec<f64> = w
            .chunks(in_dim)
            .map(|wv| row.iter().zip(wv).map(|(&a, &b)| a as f64 * b as f64).sum())
            .collect();
        let max = logits.iter().copied().fold(f64::MIN, f64::max);
        let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
        losses.push(sum.ln() + max - logits[t as usize]);
        let mut grad = vec![0f64; in_dim];
        for v in 0..vocab {
            let d = (logits[v] - max).exp() / sum - if v == t as usize { 1.0 } else { 0.0 };
            for (g, &wv) in grad.iter_mut().zip(&w[v * in_dim..]) {
                *g += d * wv as f64;
            }
        }
        grads.extend(grad);
    }
    (losses, grads)
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1999) as f32 / 1999.0 - 0.5) * 0.8)
        .collect()
}

#[test]
fn bf16_pairs_match_plain_sums_within_bf16_rounding() {
    let Some(kernels) = pairs::kernels() else {
        return;
    };
    let rounded = |v: Vec<f32>| -> Vec<f32> {
        v.into_iter()
            .map(|x| half::bf16::from_f32(x).to_f32())
            .collect()
    };
    for (rows, vocab, in_dim) in [(1, 7, 16), (13, 101, 48), (70, 1601, 64), (6, 13, 96)] {
        let x = rounded(values(rows * in_dim, 1));
        let w = rounded(values(vocab * in_dim, 2));
        let bits: Vec<u16> = w
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect();
        let targets: Vec<u32> = (0..rows).map(|i| ((i * 31) % vocab) as u32).collect();
        let (losses, grads) = cross_entropy_on(kernels, &x, &bits, in_dim, &targets);
        let (want_losses, want_grads) = plain(&x, &w, in_dim, &targets);
        let shape = format!("{rows}x{vocab}x{in_dim}");
        // The products of bf16 values are exact: the losses are f32 sums.
        for (i, (&got, want)) in losses.iter().zip(&want_losses).enumerate() {
            assert!((got as f64 - want).abs() < 1e-5, "{shape}: loss {i}");
        }
        // The softmax's gradient is rounded to bf16 (2^-9 of each value,
        // whose magnitudes sum to at most 2), times weights below 0.4.
        for (i, (&got, want)) in grads.iter().zip(&want_grads).enumerate() {
            assert!((got as f64 - want).abs() < 2e-3, "{shape}: gradient {i}");
        }
    }
}

#[test]
fn matches_plain_sums_on_ragged_shapes() {
    // Rows and weight rows that leave tails in every direction.
    // On every register width this CPU has.
    for kernels in Kernels::on_cpu() {
        for (rows, vocab, in_dim) in [(1, 7, 16), (13, 101, 48), (70, 1600, 64), (6, 13, 96)] {
            let x = values(rows * in_dim, 1);
            let w = values(vocab * in_dim, 2);
            let targets: Vec<u32> = (0..rows).map(|i| ((i * 31) % vocab) as u32).collect();
            let (losses, grads) = cross_entropy_on(kernels, &x, &w, in_dim, &targets);
            let (want_losses, want_grads) = plain(&x, &w, in_dim, &targets);
            let shape = format!("{} lanes, {rows}x{vocab}x{in_dim}", kernels.lanes);
            for (i, (&got, want)) in losses.iter().zip(&want_losses).enumerate() {
                assert!((got as f64 - want).abs() < 1e-5, "{shape}: loss {i}");
            }
            for (i, (&got, want)) in grads.iter().zip(&want_grads).enumerate() {
                assert!((got as f64 - want).abs() < 1e-6, "{shape}: gradient {i}");
            }
        }
    }
}
