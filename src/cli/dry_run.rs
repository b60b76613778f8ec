//! `tunebench train --dry-run`: checks the configuration and the data the
//! way a run would, and says what the run would cost, without loading the
//! weights or training.

use crate::model::config::ModelConfig;
use crate::model::hub::resolve_offline;
use crate::model::loaded::shape_and_tokenizer;
use crate::model::lora::LoraSpec;
use crate::train::batches::{Example, Prepared, prepare};
use crate::train::config::TrainConfig;
use crate::train::estimate::{self, DataSize, Memory, Time};
use serde::Serialize;
use std::process::ExitCode;

/// Token counts of the training rows, as trained (after cutting).
#[derive(Debug, Serialize)]
pub struct TokenStats {
    pub samples: usize,
    pub eval_samples: usize,
    pub tokens: usize,
    pub min: usize,
    pub median: usize,
    pub max: usize,
    /// Samples longer than max_seq_len, cut to it.
    pub cut: usize,
    pub skipped: usize,
    pub max_seq_len: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    dataset: String,
    tokens: TokenStats,
    gradient_checkpointing: String,
    memory: Memory,
    memory_total: f64,
    time: Time,
}

fn token_stats(prepared: &Prepared, max_seq_len: usize) -> TokenStats {
    let mut lengths: Vec<usize> = prepared
        .train
        .iter()
        .map(|e: &Example| e.encoded.ids.len())
        .collect();
    lengths.sort_unstable();
    TokenStats {
        samples: prepared.report.train_samples,
        eval_samples: prepared.report.eval_samples,
        tokens: lengths.iter().sum(),
        min: lengths.first().copied().unwrap_or(0),
        median: lengths.get(lengths.len() / 2).copied().unwrap_or(0),
        max: lengths.last().copied().unwrap_or(0),
        cut: prepared.report.truncated,
        skipped: prepared.report.skipped.len(),
        max_seq_len,
    }
}

/// Everything a run checks before it loads the weights: the model's files
/// and shape, the LoRA targets, the tokenizer and template, the data.
fn check(config: &TrainConfig) -> Result<(ModelConfig, Prepared), String> {
    let name = &config.model.name;
    let source = resolve_offline(name).ok_or_else(|| {
        format!(
            "model.name {name}: not a local model directory, GGUF file, Ollama model \
             or a model in the Hugging Face cache"
        )
    })?;
    let (model, mut tokenizer) = shape_and_tokenizer(&source).map_err(|e| e.to_string())?;
    let positions = model.max_position_embeddings;
    if config.data.max_seq_len > positions {
        return Err(format!(
            "data.max_seq_len {} is more than the model's {positions} positions \
             (max_position_embeddings); use at most {positions}",
            config.data.max_seq_len
        ));
    }
    LoraSpec::resolve_targets(&config.lora.targets).map_err(|e| format!("lora.targets: {e}"))?;
    tokenizer.use_template_named(config.model.template.as_deref())?;
    let prepared = prepare(&tokenizer, &config.data, config.training.seed)?;
    if prepared.train.is_empty() {
        return Err(format!("{}: no sample to train on", config.data.train));
    }
    Ok((model, prepared))
}

fn mb(bytes: f64) -> String {
    format!("{:.0} MB", bytes / 1e6)
}

/// Checks `config` and prints what the run would cost; exit 1 when the
/// configuration or the data cannot train.
pub fn dry_run(config: &TrainConfig, json: bool) -> anyhow::Result<ExitCode> {
    let (model, prepared) = match check(config) {
        Ok(checked) => checked,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(super::EXIT_INPUT_ERRORS));
        }
    };
    for (file, line, why) in prepared.report.skipped.iter().take(20) {
        eprintln!("{file}:{line}: skipped: {why}");
    }
    let stats = token_stats(&prepared, config.data.max_seq_len);
    let size = DataSize {
        rows: prepared.train.len(),
        tokens: stats.tokens,
        eval_tokens: prepared.eval.iter().map(|e| e.encoded.ids.len()).sum(),
        truncated: stats.cut,
    };
    let memory = estimate::memory(&model, config);
    let report = Report {
        model: config.model.name.clone(),
        dataset: config.data.train.clone(),
        gradient_checkpointing: estimate::checkpointing_text(&model, config),
        memory_total: memory.total(),
        time: estimate::time(&size, &model, config, None),
        tokens: stats,
        memory,
    };
    if json {
        super::print_json(&report)?;
    } else {
        print_human(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(r: &Report) {
    let t = &r.tokens;
    eprintln!("config and data are valid: {} on {}", r.model, r.dataset);
    eprintln!(
        "samples: {} to train, {} to evaluate; tokens per sample min {} / median {} / max {} \
         ({} in all)",
        t.samples, t.eval_samples, t.min, t.median, t.max, t.tokens
    );
    eprintln!(
        "cut at max_seq_len {}: {} sample(s); skipped: {}",
        t.max_seq_len, t.cut, t.skipped
    );
    eprintln!("gradient checkpointing: {}", r.gradient_checkpointing);
    let m = &r.memory;
    eprintln!("peak memory ≈ {} (estimate)", mb(r.memory_total));
    eprintln!(
        "  weights {} · LoRA {} · gradients and AdamW {} · activations {} · attention {} · \
         backward and logits {} · process {}",
        mb(m.weights),
        mb(m.lora),
        mb(m.optimizer),
        mb(m.activations),
        mb(m.attention),
        mb(m.transient),
        mb(m.baseline)
    );
    let time = &r.time;
    eprintln!(
        "time ≈ {} for {} steps ({:.1} epochs, {:.0} tokens at {:.0} tok/s, estimated)",
        super::progress::duration(time.seconds),
        time.steps,
        time.epochs,
        time.tokens,
        time.tok_s
    );
    eprintln!("dry run: nothing was trained");
}
