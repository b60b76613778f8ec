//! Loss and perplexity of a model (with or without its adapter) on a
//! dataset, under the masking rules of DESIGN.md; `hf_loss.py` computes the
//! same on the PyTorch side.

use crate::data::parse;
use crate::data::store::Store;
use crate::model::Model;
use crate::model::decoder::Mode;
use crate::model::loss::sample_loss;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SampleLoss {
    pub index: usize,
    pub tokens: usize,
    /// `None` when the sample has no trained token (after truncation).
    pub loss: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LossReport {
    pub samples: usize,
    pub tokens: usize,
    /// Token-weighted mean cross-entropy over every trained token.
    pub loss: f64,
    pub perplexity: f64,
    /// Samples cut to `max_seq_len`.
    pub truncated: usize,
    /// Records skipped because they are not usable samples: (line, why).
    pub skipped: Vec<(usize, String)>,
    pub per_sample: Vec<SampleLoss>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("reading the data: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Model(#[from] crate::model::ModelError),
    #[error("computing: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("line {line}: {source}")]
    Record {
        line: usize,
        source: candle_core::Error,
    },
    #[error("max_seq_len {0}: a loss needs at least {MIN_SEQ_LEN} tokens per sample")]
    SeqLen(usize),
    #[error(
        "max_seq_len {0} is more than the model's {1} positions (max_position_embeddings); use at most {1}"
    )]
    PastContext(usize, usize),
}

/// The shortest sample with a next token to predict.
pub const MIN_SEQ_LEN: usize = 2;

/// Evaluates every usable record of `store`; `progress` gets (done, total).
pub fn evaluate(
    model: &Model,
    store: &Store,
    max_seq_len: usize,
    mode: Mode,
    progress: impl FnMut(usize, usize),
) -> Result<LossReport, EvalError> {
    evaluate_where(model, store, max_seq_len, mode, |_| true, progress)
}

/// Evaluates the usable records of `store` whose index `keep` accepts.
pub fn evaluate_where(
    model: &Model,
    store: &Store,
    max_seq_len: usize,
    mode: Mode,
    keep: impl Fn(usize) -> bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<LossReport, EvalError> {
    if max_seq_len < MIN_SEQ_LEN {
        return Err(EvalError::SeqLen(max_seq_len));
    }
    let positions = model.decoder.config.max_position_embeddings;
    if max_seq_len > positions {
        return Err(EvalError::PastContext(max_seq_len, positions));
    }
    let file_format = parse::detect_file_format(store)?;
    let mut records = Vec::new();
    store.visit(|r| {
        if keep(r.index) {
            records.push((
                r.index,
                r.line.unwrap_or(0),
                parse::parse_record(r.bytes, file_format, None),
            ));
        }
        Ok(())
    })?;
    let total_records = records.len();
    let (mut sum, mut tokens, mut truncated) = (0.0, 0, 0);
    let mut per_sample = Vec::new();
    let mut skipped = Vec::new();
    for (done, (index, line, parsed)) in records.into_iter().enumerate() {
        progress(done, total_records);
        let Some(sample) = parsed.sample else {
            let why = parsed
                .syntax
                .map(|s| s.message)
                .or_else(|| parsed.problems.first().map(|p| p.message.clone()))
                .unwrap_or_else(|| "not a usable sample".into());
            skipped.push((line, why));
            continue;
        };
        let mut encoded = model.tokenizer.encode(&sample, false)?;
        if encoded.ids.len() > max_seq_len {
            encoded.ids.truncate(max_seq_len);
            encoded.trained.truncate(max_seq_len);
            truncated += 1;
        }
        let (s, n) = sample_loss(&model.decoder, &encoded, mode)?;
        sum += s;
        tokens += n;
        per_sample.push(SampleLoss {
            index,
            tokens: n,
            loss: (n > 0).then(|| s / n as f64),
        });
    }
    let loss = sum / tokens.max(1) as f64;
    Ok(LossReport {
        samples: per_sample.len(),
        tokens,
        loss,
        perplexity: loss.exp(),
        truncated,
        skipped,
        per_sample,
    })
}
