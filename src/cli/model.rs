//! `tunebench init-tiny|eval|generate|chat|merge|export`.

use super::print_json;
use crate::data::Store;
use crate::data::sample::{Message, Role};
use crate::eval::loss::evaluate;
use crate::model::decoder::Mode;
use crate::model::generate::{GenerateParams, generate};
use crate::model::{LoadOptions, Model};
use anyhow::Context;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

/// Loads a model and, if given, its adapter.
pub fn load(model: &str, adapter: Option<&Path>, options: &LoadOptions) -> anyhow::Result<Model> {
    let started = std::time::Instant::now();
    let mut loaded =
        Model::load(model, options).with_context(|| format!("loading model `{model}`"))?;
    if let Some(dir) = adapter {
        loaded
            .load_adapter(dir)
            .with_context(|| format!("loading adapter {}", dir.display()))?;
    }
    eprintln!(
        "loaded {} ({} layers, {:.1}M parameters, {}) in {:.1}s{}",
        model,
        loaded.decoder.config.num_layers,
        loaded.decoder.config.parameter_count() as f64 / 1e6,
        loaded.precision(),
        started.elapsed().as_secs_f64(),
        adapter.map_or(String::new(), |a| format!(" with adapter {}", a.display()))
    );
    Ok(loaded)
}

pub fn init_tiny(out: &Path, seed: u64) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    crate::model::tiny::init_tiny(out, seed, &Default::default())?;
    eprintln!(
        "wrote a tiny Qwen2 model to {} in {:.1}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn eval(
    model: &Model,
    data: &Path,
    max_seq_len: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = Store::open(data)?;
    let mode = if model.adapter.is_some() {
        Mode::ADAPTED
    } else {
        Mode::BASE
    };
    let show_progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = evaluate(model, &store, max_seq_len, mode, |done, total| {
        if show_progress {
            eprint!("\r{done}/{total} samples");
        }
    })?;
    for (line, why) in &report.skipped {
        eprintln!("{}:{line}: skipped: {why}", data.display());
    }
    if report.truncated > 0 {
        eprintln!(
            "{} sample(s) were cut to max_seq_len {max_seq_len}",
            report.truncated
        );
    }
    if json {
        print_json(&report)?;
    } else {
        eprintln!(
            "\r{}: {} samples, {} trained tokens, loss {:.4}, perplexity {:.2}   ",
            data.display(),
            report.samples,
            report.tokens,
            report.loss,
            report.perplexity
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `generate` and `chat` ask of the model besides the prompt.
pub struct PromptOptions {
    pub system: Option<String>,
    /// Send the prompt as raw text, without the chat template.
    pub raw: bool,
    pub params: GenerateParams,
    /// Use the base model even when an adapter is loaded.
    pub base: bool,
}

/// Where a single generation's prompt comes from.
pub enum PromptSource {
    Text(String),
    /// A dataset file and a record's 0-based position in it.
    Record(std::path::PathBuf, usize),
}

fn prompt_ids(
    model: &Model,
    source: &PromptSource,
    options: &PromptOptions,
) -> anyhow::Result<Vec<u32>> {
    match source {
        PromptSource::Text(text) if options.raw => Ok(model.tokenizer.text_ids(text)?),
        PromptSource::Text(text) => {
            let mut messages = Vec::new();
            if let Some(system) = &options.system {
                messages.push(Message::new(Role::System, system.clone()));
            }
            messages.push(Message::new(Role::User, text.clone()));
            Ok(model.tokenizer.prompt_ids(&messages, None)?)
        }
        PromptSource::Record(file, index) => {
            let store = Store::open(file)?;
            anyhow::ensure!(
                *index < store.len(),
                "{}: --index {index} but the file has {} records",
                file.display(),
                store.len()
            );
            let format = crate::data::parse::detect_file_format(&store)?;
            let parsed = crate::data::parse::parse_record(&store.raw(*index)?, format, None);
            let line = store.line(*index).unwrap_or(0);
            let Some(crate::data::Sample::Chat(conv)) = parsed.sample else {
                anyhow::bail!(
                    "{}:{line}: not a conversation with a prompt (see `tunebench data validate`)",
                    file.display()
                );
            };
            // The turns before the final answer, as `eval --generate` uses them.
            let messages = crate::eval::records::prompt_and_answer(&conv)
                .map_or_else(|| conv.with_system_message(), |(prompt, _)| prompt);
            Ok(model.tokenizer.prompt_ids(&messages, conv.tools.as_ref())?)
        }
    }
}

pub fn generate_once(
    model: &Model,
    source: &PromptSource,
    options: &PromptOptions,
    json: bool,
    profile: bool,
) -> anyhow::Result<ExitCode> {
    let ids = prompt_ids(model, source, options)?;
    let mode = mode_for(model, options);
    let cancel = AtomicBool::new(false);
    let mut stdout = std::io::stdout();
    if profile {
        crate::profile::enable();
        crate::profile::reset();
    }
    let result = generate(model, &ids, &options.params, mode, &cancel, |piece| {
        if !json {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
    })?;
    let decode_profile = profile.then(|| crate::profile::report(0));
    if json {
        print_json(&result)?;
    } else {
        println!();
    }
    eprintln!(
        "{} prompt tokens, prefill {:.2}s; {} new tokens at {:.1} tokens/s; stopped: {:?}",
        result.prompt_tokens,
        result.prefill_s,
        result.tokens.len(),
        result.tokens_per_s(),
        result.stop
    );
    if let (Some(prefill), Some(decode)) = (&result.prefill_profile, &decode_profile) {
        eprintln!(
            "prefill ({} tokens): {}",
            result.prompt_tokens,
            prefill.time_table()
        );
        let steps = result.tokens.len().saturating_sub(1).max(1);
        eprintln!(
            "decode ({steps} steps, {:.2} ms each): {}",
            1e3 * decode.seconds / steps as f64,
            decode.time_table()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn mode_for(model: &Model, options: &PromptOptions) -> Mode {
    if model.adapter.is_some() && !options.base {
        Mode::ADAPTED
    } else {
        Mode::BASE
    }
}

/// A plain REPL: each line is a user turn; `/reset` forgets the history,
/// `/exit` (or end of input) leaves.
pub fn chat(
    model: &Model,
    first: Option<&str>,
    options: &PromptOptions,
) -> anyhow::Result<ExitCode> {
    let mut history: Vec<Message> = Vec::new();
    if let Some(system) = &options.system {
        history.push(Message::new(Role::System, system.clone()));
    }
    let mode = mode_for(model, options);
    let cancel = AtomicBool::new(false);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut pending = first.map(str::to_string);
    loop {
        let line = match pending.take() {
            Some(line) => line,
            None => {
                eprint!("> ");
                match lines.next() {
                    Some(line) => line?,
                    None => break,
                }
            }
        };
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.retain(|m| m.role == Role::System);
                eprintln!("(history cleared)");
                continue;
            }
            _ => {}
        }
        history.push(Message::new(Role::User, line));
        let ids = model.tokenizer.prompt_ids(&history, None)?;
        let mut stdout = std::io::stdout();
        let result = generate(model, &ids, &options.params, mode, &cancel, |piece| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        })?;
        println!();
        history.push(Message::new(Role::Assistant, result.text));
        if first.is_some() {
            // A prompt given as an argument gets one answer.
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn merge(model: &Model, out: &Path) -> anyhow::Result<ExitCode> {
    let count = crate::model::merge::merge(model, out)?;
    eprintln!(
        "merged the adapter into {count} projections; wrote {}",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn export(
    model: &Model,
    quant: crate::model::gguf::export::ExportType,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let done = crate::model::gguf::export::export(model, quant, out)?;
    eprintln!(
        "wrote {} ({:.1} MB, {} tensors, {} with the adapter merged{}) and {}",
        out.display(),
        done.bytes as f64 / 1e6,
        done.tensors,
        done.merged,
        match done.fallbacks {
            0 => String::new(),
            n => format!(", {n} in a fallback type"),
        },
        done.modelfile.display()
    );
    Ok(ExitCode::SUCCESS)
}
