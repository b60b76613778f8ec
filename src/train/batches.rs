//! From dataset files to token batches: read, hold out the eval split,
//! tokenise (counting truncations), and order each epoch reproducibly.

use super::config::DataSection;
use crate::data::rng::SplitMix64;
use crate::data::split::{EvalSize, choose_eval};
use crate::data::{Format, Sample, Store, parse};
use crate::model::tokenize::{ChatTokenizer, Encoded};
use candle_core::{Device, Result as CandleResult, Tensor};
use std::path::Path;

/// A tokenised sample ready to train or evaluate on.
#[derive(Debug, Clone)]
pub struct Example {
    /// 1-based line in its file (of the first sample when packed).
    pub line: usize,
    pub encoded: Encoded,
    /// Lengths of the samples packed into this row (empty: one sample).
    pub segments: Vec<usize>,
    /// Trained tokens that predict a next token (the loss's denominator).
    pub targets: usize,
}

/// What reading the data found, for the start event and the log.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DataReport {
    pub train_samples: usize,
    pub eval_samples: usize,
    pub truncated: usize,
    /// (file, line, why) of records not used.
    pub skipped: Vec<(String, usize, String)>,
}

pub struct Prepared {
    pub train: Vec<Example>,
    pub eval: Vec<Example>,
    pub report: DataReport,
}

fn samples_of(
    store: &Store,
    format: Option<Format>,
    report: &mut DataReport,
) -> std::io::Result<Vec<(usize, Sample)>> {
    let file_format = match format {
        Some(f) => Some(f),
        None => parse::detect_file_format(store)?,
    };
    let mut out = Vec::new();
    let file = store.path().display().to_string();
    store.visit(|r| {
        let line = r.line.unwrap_or(0);
        let parsed = parse::parse_record(r.bytes, file_format, format);
        match parsed.sample {
            Some(sample) => out.push((r.index, sample)),
            None => {
                let why = parsed
                    .syntax
                    .map(|s| s.message)
                    .or_else(|| parsed.problems.first().map(|p| p.message.clone()))
                    .unwrap_or_else(|| "not a usable sample".into());
                report.skipped.push((file.clone(), line, why));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// The samples a run trains and evaluates on: the eval file's, or the
/// held-out share of the training file chosen with `seed`.
pub struct Chosen {
    pub train: Vec<(usize, Sample)>,
    pub eval: Vec<(usize, Sample)>,
    pub train_store: Store,
    pub eval_store: Option<Store>,
    pub report: DataReport,
}

/// Reads and splits the data as training does (also what `export-run`
/// hands to other engines, so they train on the same samples).
pub fn choose_samples(data: &DataSection, seed: u64) -> Result<Chosen, String> {
    let format: Option<Format> = data.format.as_deref().map(str::parse).transpose()?;
    let mut report = DataReport::default();
    let open = |p: &Path| Store::open(p).map_err(|e| e.to_string());
    let train_store = open(Path::new(&data.train))?;
    let train_samples = samples_of(&train_store, format, &mut report).map_err(|e| e.to_string())?;
    // A separate eval file, or the held-out share of the training file.
    let eval_store = data.eval.as_deref().map(Path::new).map(open).transpose()?;
    let (train, eval) = match &eval_store {
        Some(store) => {
            let eval = samples_of(store, format, &mut report).map_err(|e| e.to_string())?;
            (train_samples, eval)
        }
        None if data.eval_split > 0.0 && train_store.len() >= 2 => {
            let choice = choose_eval(&train_store, EvalSize::Ratio(data.eval_split), seed)
                .map_err(|e| e.to_string())?;
            train_samples
                .into_iter()
                .partition(|(i, _)| !choice.eval[*i])
        }
        None => (train_samples, Vec::new()),
    };
    Ok(Chosen {
        train,
        eval,
        train_store,
        eval_store,
        report,
    })
}

/// Reads, splits (with `seed`) and tokenises the training and eval data.
pub fn prepare(
    tokenizer: &ChatTokenizer,
    data: &DataSection,
    seed: u64,
) -> Result<Prepared, String> {
    let train_file = Path::new(&data.train);
    let eval_file = data.eval.as_deref().map(Path::new);
    let (max_seq_len, train_on_inputs) = (data.max_seq_len, data.train_on_inputs);
    let Chosen {
        train: train_samples,
        eval: eval_samples,
        train_store,
        eval_store,
        mut report,
    } = choose_samples(data, seed)?;
    let mut encode_all = |samples: Vec<(usize, Sample)>,
                          file: &Path,
                          store_lines: &dyn Fn(usize) -> usize|
     -> Result<Vec<Example>, String> {
        let mut out = Vec::new();
        for (index, sample) in samples {
            let mut encoded = tokenizer
                .encode(&sample, train_on_inputs)
                .map_err(|e| e.to_string())?;
            let full_len = encoded.ids.len();
            if encoded.ids.len() > max_seq_len {
                encoded.ids.truncate(max_seq_len);
                encoded.trained.truncate(max_seq_len);
            }
            let targets = encoded.trained.iter().skip(1).filter(|&&t| t).count();
            if targets == 0 {
                // Said, not dropped silently: usually a prompt longer than
                // max_seq_len.
                let why = format!(
                    "no trained token in the first {max_seq_len} of its {full_len} tokens \
                     (raise data.max_seq_len)"
                );
                report
                    .skipped
                    .push((file.display().to_string(), store_lines(index), why));
                continue;
            }
            report.truncated += usize::from(full_len > max_seq_len);
            out.push(Example {
                line: store_lines(index),
                encoded,
                segments: Vec::new(),
                targets,
            });
        }
        Ok(out)
    };
    let train_lines = |i: usize| train_store.line(i).unwrap_or(0);
    let train = encode_all(train_samples, train_file, &train_lines)?;
    let eval_lines = |i: usize| match &eval_store {
        Some(s) => s.line(i).unwrap_or(0),
        None => train_store.line(i).unwrap_or(0),
    };
    let eval = encode_all(eval_samples, eval_file.unwrap_or(train_file), &eval_lines)?;
    report.train_samples = train.len();
    let train = if data.packing {
        pack(train, max_seq_len, seed)
    } else {
        train
    };
    report.eval_samples = eval.len();
    if train.is_empty() {
        return Err(format!(
            "{}: no usable training sample",
            train_file.display()
        ));
    }
    Ok(Prepared {
        train,
        eval,
        report,
    })
}

/// Concatenates examples (in a seeded order) into rows of at most
/// `max_len` tokens. A segment's first token is never a target, so no
/// prediction crosses from one sample into the next.
pub fn pack(examples: Vec<Example>, max_len: usize, seed: u64) -> Vec<Example> {
    let order = epoch_order(examples.len(), seed ^ 0x7061_636B, 0);
    let mut rows: Vec<Example> = Vec::new();
    for i in order {
        let e = &examples[i];
        let mut trained = e.encoded.trained.clone();
        trained[0] = false;
        let fits = rows
            .last()
            .is_some_and(|r| r.encoded.ids.len() + e.encoded.ids.len() <= max_len);
        if !fits {
            rows.push(Example {
                line: e.line,
                encoded: Encoded {
                    ids: Vec::new(),
                    trained: Vec::new(),
                },
                segments: Vec::new(),
                targets: 0,
            });
        }
        let row = rows.last_mut().expect("a row was just pushed");
        row.encoded.ids.extend_from_slice(&e.encoded.ids);
        row.encoded.trained.extend(trained);
        row.segments.push(e.encoded.ids.len());
    }
    for row in &mut rows {
        row.targets = row.encoded.trained.iter().skip(1).filter(|&&t| t).count();
    }
    rows
}

/// The order samples are visited in epoch `epoch`: a seeded shuffle, the
/// same on every run and on resume.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
    order
}

/// A padded batch: ids `[batch, len]` and, per row, (position, target) pairs
/// of the trained next-token predictions, flattened to `row * len + position`.
pub struct Batch {
    pub ids: Tensor,
    /// Packed segment lengths of a single-row batch.
    pub segments: Option<Vec<usize>>,
    pub positions: Vec<u32>,
    pub targets: Vec<u32>,
}

/// Right-pads examples to the longest; padding is never a target and, being
/// after every real token, is never attended to under the causal mask.
pub fn make_batch(examples: &[&Example], pad_id: u32, device: &Device) -> CandleResult<Batch> {
    let len = examples
        .iter()
        .map(|e| e.encoded.ids.len())
        .max()
        .unwrap_or(1);
    let mut ids = Vec::with_capacity(examples.len() * len);
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (row, e) in examples.iter().enumerate() {
        let n = e.encoded.ids.len();
        ids.extend_from_slice(&e.encoded.ids);
        ids.extend(std::iter::repeat_n(pad_id, len - n));
        for p in 0..n.saturating_sub(1) {
            if e.encoded.trained[p + 1] {
                positions.push((row * len + p) as u32);
                targets.push(e.encoded.ids[p + 1]);
            }
        }
    }
    let segments = match examples {
        [one] if one.segments.len() > 1 => Some(one.segments.clone()),
        _ => None,
    };
    Ok(Batch {
        segments,
        ids: Tensor::from_vec(ids, (examples.len(), len), device)?,
        positions,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(ids: &[u32], trained: &[bool]) -> Example {
        let encoded = Encoded {
            ids: ids.to_vec(),
            trained: trained.to_vec(),
        };
        let targets = trained.iter().skip(1).filter(|&&t| t).count();
        Example {
            line: 1,
            encoded,
            segments: Vec::new(),
            targets,
        }
    }

    #[test]
    fn packing_fills_rows_and_never_trains_across_samples() {
        let samples: Vec<Example> = (0..5)
            .map(|i| example(&[i, i + 10, i + 20], &[true, true, true]))
            .collect();
        let rows = pack(samples, 7, 1);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.segments.len()).sum::<usize>(), 5);
        for r in &rows {
            assert_eq!(r.encoded.ids.len(), r.segments.iter().sum::<usize>());
            let mut start = 0;
            for &n in &r.segments {
                assert!(!r.encoded.trained[start], "a segment start is a target");
                start += n;
            }
            assert_eq!(
                r.targets,
                2 * r.segments.len(),
                "two in-sample targets per segment"
            );
        }
    }

    #[test]
    fn padding_is_never_a_target() {
        let a = example(&[1, 2, 3, 4], &[false, false, true, true]);
        let b = example(&[5, 6], &[false, true]);
        let batch = make_batch(&[&a, &b], 0, &Device::Cpu).unwrap();
        assert_eq!(batch.ids.dims(), &[2, 4]);
        assert_eq!(batch.ids.to_vec2::<u32>().unwrap()[1], vec![5, 6, 0, 0]);
        assert_eq!(batch.positions, vec![1, 2, 4]);
        assert_eq!(batch.targets, vec![3, 4, 6]);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(10, 42, 0);
        assert_eq!(a, epoch_order(10, 42, 0));
        assert_ne!(a, epoch_order(10, 42, 1));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
