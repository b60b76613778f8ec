//! `eval --generate`: every record's prompt answered greedily (or as the
//! sampling settings say) by the base model and by the adapter, from one
//! loaded copy of the weights, each answer scored against the reference.

use super::code::check_answer;
use super::code::exec::Runner;
use super::loss::{EvalError, LossReport, SampleLoss, evaluate_where};
use super::metrics::{f1, rouge};
use super::records::{EvalRecord, Note, read_records};
use super::results::{PROMPT_EXCERPT, SampleResult, SideResult, excerpt};
use super::summary::{Aggregate, aggregate};
use crate::data::store::Store;
use crate::eval::code::answer::parse_files;
use crate::eval::metrics::classify::predicted_label;
use crate::model::Model;
use crate::model::decoder::Mode;
use crate::model::generate::{GenerateParams, Generation, Request, generate_together};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;

pub struct CompareOptions {
    pub params: GenerateParams,
    /// Loss is computed on at most this many tokens per sample.
    pub max_seq_len: usize,
    /// Evaluate only the first N usable records.
    pub limit: Option<usize>,
    /// Runs the tests of multi-file answers (`--exec`).
    pub runner: Option<Runner>,
}

pub struct Comparison {
    pub samples: Vec<SampleResult>,
    pub base: Aggregate,
    /// `None` when the model has no adapter.
    pub adapter: Option<Aggregate>,
    /// Records skipped, fields ignored.
    pub notes: Vec<Note>,
    /// Samples cut to `max_seq_len` for the loss.
    pub truncated: usize,
}

/// What [`compare`] reports while it works.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Computing the loss of one side.
    Loss { adapter: bool },
    /// `done` of `total` records answered so far, with `new_tokens`
    /// generated in all (both sides).
    Generating {
        done: usize,
        total: usize,
        new_tokens: usize,
    },
}

/// Runs the comparison on `store`. `cancel` stops generation early (the
/// answers so far are kept and scored).
pub fn compare(
    model: &Model,
    store: &Store,
    options: &CompareOptions,
    cancel: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> Result<Comparison, EvalError> {
    let (mut records, notes) = read_records(store)?;
    if let Some(limit) = options.limit {
        records.truncate(limit);
    }
    let wanted: BTreeSet<usize> = records.iter().map(|r| r.index).collect();
    let has_adapter = model.adapter.is_some();
    let loss_of = |mode: Mode| {
        evaluate_where(
            model,
            store,
            options.max_seq_len,
            mode,
            |i| wanted.contains(&i),
            |_, _| {},
        )
    };
    progress(Progress::Loss { adapter: false });
    let base_loss = loss_of(Mode::BASE)?;
    let adapter_loss = if has_adapter {
        progress(Progress::Loss { adapter: true });
        Some(loss_of(Mode::ADAPTED)?)
    } else {
        None
    };
    let labels: Vec<String> = records
        .iter()
        .filter_map(|r| r.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let scorer = Scorer {
        labels: &labels,
        runner: options.runner.as_ref(),
    };
    let base_losses = by_index(&base_loss);
    let adapter_losses = adapter_loss.as_ref().map(by_index);
    let mut samples = Vec::with_capacity(records.len());
    let mut new_tokens = 0;
    for (done, record) in records.iter().enumerate() {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let ids = model
            .tokenizer
            .prompt_ids(&record.prompt, record.tools.as_ref())?;
        let (base, adapter) = answer_both(model, &ids, &options.params, has_adapter, cancel)
            .map_err(|source| EvalError::Record {
                line: record.line,
                source,
            })?;
        let base = scorer.side(record, base, base_losses.get(&record.index));
        let adapter = match (&adapter_losses, adapter) {
            (Some(losses), Some(answer)) => {
                Some(scorer.side(record, answer, losses.get(&record.index)))
            }
            _ => None,
        };
        new_tokens += base.new_tokens + adapter.as_ref().map_or(0, |a| a.new_tokens);
        progress(Progress::Generating {
            done: done + 1,
            total: records.len(),
            new_tokens,
        });
        let loaded = adapter.as_ref().unwrap_or(&base);
        samples.push(SampleResult {
            index: record.index,
            line: record.line,
            prompt: excerpt(record.user_text(), PROMPT_EXCERPT),
            reference: record.reference.clone(),
            label: record.label.clone(),
            primary: if base.code.is_some() {
                "code_score"
            } else {
                "rouge_l"
            }
            .to_string(),
            tokens: loaded.tokens,
            loss: loaded.loss,
            score_delta: adapter.as_ref().map(|a| a.score - base.score),
            base,
            adapter,
        });
    }
    Ok(Comparison {
        base: aggregate(&samples, |s| Some(&s.base), &base_loss),
        adapter: adapter_loss
            .as_ref()
            .map(|loss| aggregate(&samples, |s| s.adapter.as_ref(), loss)),
        samples,
        notes,
        truncated: base_loss.truncated,
    })
}

/// The base's answer to `ids` and, with an adapter, the adapter's, decoded
/// side by side from the one copy of the weights.
fn answer_both(
    model: &Model,
    ids: &[u32],
    params: &GenerateParams,
    has_adapter: bool,
    cancel: &AtomicBool,
) -> candle_core::Result<(Generation, Option<Generation>)> {
    let modes: &[Mode] = if has_adapter {
        &[Mode::BASE, Mode::ADAPTED]
    } else {
        &[Mode::BASE]
    };
    let mut ignore = [|_: &str| {}, |_: &str| {}];
    let requests = modes
        .iter()
        .zip(ignore.iter_mut())
        .map(|(&mode, on_text)| Request {
            prompt: ids,
            params,
            mode,
            on_text,
            on_end: None,
        })
        .collect();
    let mut answers = generate_together(model, requests, cancel)?.into_iter();
    let base = answers.next().expect("one answer per request");
    Ok((base, answers.next()))
}

fn by_index(report: &LossReport) -> HashMap<usize, SampleLoss> {
    report
        .per_sample
        .iter()
        .map(|s| (s.index, s.clone()))
        .collect()
}

struct Scorer<'a> {
    /// Every gold label of the evaluated records, sorted.
    labels: &'a [String],
    runner: Option<&'a Runner>,
}

impl Scorer<'_> {
    fn side(
        &self,
        record: &EvalRecord,
        generation: Generation,
        loss: Option<&SampleLoss>,
    ) -> SideResult {
        let answer = generation.text;
        let reference = record.reference.as_str();
        let rouge_l = rouge::rouge_l(&answer, reference).fmeasure;
        let code = parse_files(reference).ok().map(|files| {
            let expected = record
                .expected_files
                .clone()
                .unwrap_or_else(|| files.into_iter().map(|(path, _)| path).collect());
            check_answer(&answer, &expected, &record.base_files, self.runner)
        });
        let predicted = record
            .label
            .as_ref()
            .map(|_| predicted_label(&answer, self.labels).cloned());
        SideResult {
            stop: serde_json::to_value(generation.stop)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            new_tokens: generation.tokens.len(),
            seconds: generation.prefill_s + generation.decode_s,
            exact_match: f1::exact_match(&answer, reference),
            f1: f1::token_f1(&answer, reference),
            rouge_l,
            score: code.as_ref().map_or(rouge_l, |c| c.score),
            loss: loss.and_then(|l| l.loss),
            tokens: loss.map_or(0, |l| l.tokens),
            label_correct: predicted
                .as_ref()
                .map(|p| p.as_ref() == record.label.as_ref()),
            predicted_label: predicted.flatten(),
            code,
            answer,
        }
    }
}
