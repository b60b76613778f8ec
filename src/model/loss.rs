//! Masked next-token cross-entropy over trained positions only, computed in
//! chunks so the full `[seq, vocab]` logits never exist at once.

use super::decoder::{Decoder, Mode};
use super::tokenize::Encoded;
use candle_core::{D, DType, Result, Tensor};

/// Rows of logits computed at once (a 152k vocabulary makes each row 600 KB).
const CHUNK_ROWS: usize = 256;

/// Positions `p` whose next token `p + 1` is trained, and those targets.
pub fn trained_targets(encoded: &Encoded) -> (Vec<u32>, Vec<u32>) {
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for p in 0..encoded.ids.len().saturating_sub(1) {
        if encoded.trained[p + 1] {
            positions.push(p as u32);
            targets.push(encoded.ids[p + 1]);
        }
    }
    (positions, targets)
}

/// Sum of cross-entropy over the given rows of `hidden` (`[seq, hidden]`).
/// Differentiable: training uses it too.
pub fn summed_nll(
    decoder: &Decoder,
    hidden: &Tensor,
    positions: &[u32],
    targets: &[u32],
    train: bool,
) -> Result<Tensor> {
    let _label = crate::profile::scope(crate::profile::Label::Logits);
    let device = hidden.device();
    if train {
        let rows = hidden.index_select(&Tensor::new(positions, device)?, 0)?;
        return super::fused_ce::cross_entropy_rows(&rows, decoder.output_weight(), targets)?
            .sum_all();
    }
    let mut total = Tensor::zeros((), DType::F32, device)?;
    for (pos, tgt) in positions.chunks(CHUNK_ROWS).zip(targets.chunks(CHUNK_ROWS)) {
        let rows = hidden.index_select(&Tensor::new(pos, device)?, 0)?;
        let logits = decoder.logits(&rows, train)?;
        let max = logits.max_keepdim(D::Minus1)?.detach();
        let lse = (logits
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            + &max)?;
        let picked = logits.gather(&Tensor::new(tgt, device)?.unsqueeze(1)?, 1)?;
        total = (total + (lse - picked)?.sum_all()?)?;
    }
    Ok(total)
}

/// Loss of one sample: (sum of token losses, trained token count).
/// On a pool thread, as a training step runs (`crate::pool::on_pool`).
pub fn sample_loss(decoder: &Decoder, encoded: &Encoded, mode: Mode) -> Result<(f64, usize)> {
    let (positions, targets) = trained_targets(encoded);
    if positions.is_empty() {
        return Ok((0.0, 0));
    }
    crate::pool::on_pool(|| {
        let ids = Tensor::new(encoded.ids.as_slice(), decoder.device())?.unsqueeze(0)?;
        let hidden = decoder.hidden(&ids, None, None, mode)?.squeeze(0)?;
        let sum = summed_nll(decoder, &hidden, &positions, &targets, mode.train)?;
        Ok((sum.to_scalar::<f32>()? as f64, positions.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::ModelConfig;
    use crate::model::weights::RandomWeights;
    use crate::profile;
    use candle_core::Device;

    const HIDDEN: usize = 32;
    const VOCAB: usize = 3000;

    fn decoder() -> Decoder {
        let json = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
            "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": VOCAB, "tie_word_embeddings": true
        });
        let config = ModelConfig::from_json(&json).unwrap();
        let weights = RandomWeights {
            config: config.clone(),
            device: Device::Cpu,
            dtype: DType::F32,
            seed: 1,
        };
        Decoder::load(config, &weights).unwrap()
    }

    /// Bytes allocated for the loss of the last `trained` of `seq` rows.
    fn loss_bytes(decoder: &Decoder, seq: usize, trained: usize, train: bool) -> usize {
        profile::enable();
        let hidden = Tensor::randn(0f32, 1.0, (seq, HIDDEN), &Device::Cpu).unwrap();
        let positions: Vec<u32> = (seq - trained..seq).map(|p| p as u32).collect();
        let targets: Vec<u32> = positions.iter().map(|p| p % VOCAB as u32).collect();
        let before = profile::thread_allocated();
        summed_nll(decoder, &hidden, &positions, &targets, train).unwrap();
        profile::thread_allocated() - before
    }

    #[test]
    fn prompt_positions_cost_nothing_in_the_output_projection() {
        let decoder = decoder();
        // The first call allocates what is set up once.
        loss_bytes(&decoder, 64, 16, true);
        for train in [true, false] {
            // 16 trained rows after a 48- or a 4,080-token prompt.
            let short = loss_bytes(&decoder, 64, 16, train);
            let long = loss_bytes(&decoder, 4096, 16, train);
            assert!(
                long <= short + short / 10,
                "train {train}: {long} vs {short}"
            );
            // Every row trained: the output projection runs for each.
            let all = loss_bytes(&decoder, 4096, 4096, train);
            assert!(all > 100 * short, "train {train}: {all} vs {short}");
        }
    }

    #[test]
    fn training_keeps_no_vocabulary_sized_matrix_for_backward() {
        let decoder = decoder();
        profile::enable();
        let rows = 512;
        let hidden = Tensor::randn(0f32, 1.0, (rows, HIDDEN), &Device::Cpu).unwrap();
        let positions: Vec<u32> = (0..rows as u32).collect();
        let before = profile::thread_net();
        let loss = summed_nll(&decoder, &hidden, &positions, &positions, true).unwrap();
        let kept = profile::thread_net() - before;
        // One [rows, vocab] f32 matrix would be 6 MB; [rows, hidden] is 64 kB.
        let logits_bytes = (rows * VOCAB * 4) as isize;
        assert!(kept < logits_bytes / 8, "{kept} bytes kept with the loss");
        drop(loss);
    }
}
