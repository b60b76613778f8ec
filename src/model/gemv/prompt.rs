//! A long prompt's products over a bf16 model's weights on a training
//! pass's kernels: each weight packed once, the tasks over blocks of rows.

use super::{Element, Resolved, cpu_multiplies_bf16_pairs, panel_takes_pairs};
#[cfg(target_arch = "x86_64")]
use super::{addend, panel};

/// Rows of a prompt at which its products take a training pass's path on
/// bf16 pairs or fp16 (`panel/sequence.rs`, `panel/halves.rs`: each
/// weight packed once, the tasks over blocks of rows) instead of the tasks
/// over blocks of the weight, each passing every row. At 1,024 rows of SmolLM2's and Qwen2.5-0.5B's
/// shapes the first was 1.0-2.1x as fast, at 4,096 rows 1.5-2.6x. Since
/// the weight is packed by all threads, 128 rows run at 270-372 GFLOP/s
/// there against 220-311 (the 192 outputs of SmolLM2's keys and values
/// 315-330 against 128-158); at 64 rows, two tasks of 32, it won as often
/// as it lost (measured on bf16 pairs, Zen 4).
pub(super) const SEQUENCE_FROM: usize = 128;

/// `products_of` for a long prompt of a bf16 model on a training pass's
/// kernel: bf16 pairs where every input is a bf16 value (rounding them is
/// exact, so the products are those of the other path, summed in another
/// order), or fp16 where that is the fast route (`panel/halves.rs`: rows
/// scaled into fp16, sums of 64 in fp16, about 1e-3 of the root-sum-square
/// off; the bf16 output a bf16 model rounds to is 4e-3 apart). `None`
/// where neither applies.
pub(super) fn long_prompt_products<W: Element>(
    inputs: &[f32],
    weights: &[&[W]],
    addends: &[Resolved],
    in_dim: usize,
) -> Option<Vec<Vec<f32>>> {
    let n = inputs.len() / in_dim;
    let applies = n >= SEQUENCE_FROM
        && W::BF16
        && (panel_takes_halves()
            || (cpu_multiplies_bf16_pairs()
                && panel_takes_pairs(in_dim)
                && inputs.iter().all(|x| x.to_bits() & 0xffff == 0)));
    if !applies {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    return Some(
        weights
            .iter()
            .zip(addends)
            .map(|(w, addend)| {
                let bits = W::bf16_bits(w).expect("bf16 weights have bits");
                let mut out = panel::sequence_times_transposed(inputs, bits, in_dim);
                addend::add_to_all(addend, &mut out, n);
                out
            })
            .collect(),
    );
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!(
        "bf16 pairs on x86_64 only: {}",
        weights.len() + addends.len()
    )
}

/// Whether a prompt's products over a bf16 weight go on fp16 here.
pub(super) fn panel_takes_halves() -> bool {
    #[cfg(target_arch = "x86_64")]
    return panel::halves_fast();
    #[cfg(not(target_arch = "x86_64"))]
    false
}
