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
pub fn sample_loss(decoder: &Decoder, encoded: &Encoded, mode: Mode) -> Result<(f64, usize)> {
    let (positions, targets) = trained_targets(encoded);
    if positions.is_empty() {
        return Ok((0.0, 0));
    }
    let ids = Tensor::new(encoded.ids.as_slice(), decoder.device())?.unsqueeze(0)?;
    let hidden = decoder.hidden(&ids, None, None, mode)?.squeeze(0)?;
    let sum = summed_nll(decoder, &hidden, &positions, &targets, mode.train)?.to_scalar::<f32>()?;
    Ok((sum as f64, positions.len()))
}
