//! `tunebench eval --generate`: base versus adapter on generated answers,
//! printed as a table (stderr) or JSON (stdout), saved as
//! `eval-results.jsonl` and a Markdown report.

use super::print_json;
use super::progress::{Ticker, duration, is_milestone};
use crate::data::Store;
use crate::eval::code::exec::{ExecOptions, ProbeError, Runner};
use crate::eval::code::sandbox::Limits;
use crate::eval::compare::{CompareOptions, Comparison, Progress, compare};
use crate::eval::metrics::bleu::signature;
use crate::eval::records::Note;
use crate::eval::report::{ReportMeta, markdown, terminal_table};
use crate::eval::results::{RESULTS_FILE, SampleResult, write_results};
use crate::eval::summary::Aggregate;
use crate::model::Model;
use crate::model::generate::GenerateParams;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub const REPORT_FILE: &str = "eval-report.md";

#[derive(clap::Args, Debug, Clone)]
pub struct GenerateEvalArgs {
    /// Also answer each record's prompt with the base model and with the
    /// adapter (one copy of the weights) and score both against the
    /// reference answer: exact match, token F1, ROUGE-L, BLEU, label
    /// accuracy, code checks. Writes eval-results.jsonl and eval-report.md.
    #[arg(long)]
    pub generate: bool,
    #[arg(long, default_value_t = 256, requires = "generate")]
    pub max_new_tokens: usize,
    #[command(flatten)]
    pub sampling: super::sampling::SamplingArgs,
    /// Evaluate only the first N usable records.
    #[arg(long, requires = "generate")]
    pub limit: Option<usize>,
    /// Run the tests of multi-file answers with pytest (needs Python with
    /// pytest and the projects' dependencies; no network).
    #[arg(long, requires = "generate")]
    pub exec: bool,
    /// Seconds each test run may take before its processes are killed.
    #[arg(long, default_value_t = 60, requires = "exec")]
    pub exec_timeout: u64,
    /// The Python interpreter for --exec.
    #[arg(long, default_value = "python3", requires = "exec")]
    pub python: String,
    /// Run the tests even where no sandbox can be made (namespaces refused):
    /// generated code then runs with your user's rights, files and network.
    #[arg(long, requires = "exec")]
    pub exec_unsandboxed: bool,
    /// Address space each process of a sandboxed test run may use, in GiB.
    #[arg(long, default_value_t = 4, requires = "exec",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub exec_memory_gb: u64,
    /// Where eval-results.jsonl and the report go (default: beside the
    /// adapter directory, or the current directory without an adapter).
    #[arg(long, requires = "generate")]
    pub out: Option<PathBuf>,
    /// The Markdown report's path (default: <out>/eval-report.md).
    #[arg(long, requires = "generate")]
    pub report: Option<PathBuf>,
}

impl GenerateEvalArgs {
    fn params(&self) -> GenerateParams {
        GenerateParams {
            sampling: self.sampling.params(),
            max_new_tokens: self.max_new_tokens,
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }

    fn out_dir(&self, model: &Model) -> PathBuf {
        if let Some(out) = &self.out {
            return out.clone();
        }
        model
            .adapter
            .as_ref()
            .and_then(|(dir, _)| dir.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

#[derive(Serialize)]
struct GenerationSettings<'a> {
    max_new_tokens: usize,
    #[serde(flatten)]
    sampling: &'a super::sampling::SamplingArgs,
}

/// The `--json` document. `samples`, `tokens`, `loss`, `perplexity` and
/// `per_sample[].{index,tokens,loss}` keep the plain `eval --json` contract
/// (for the model as loaded: with the adapter when one is given).
#[derive(Serialize)]
struct JsonReport<'a> {
    samples: usize,
    tokens: usize,
    loss: f64,
    perplexity: f64,
    signature: String,
    generation: GenerationSettings<'a>,
    base: &'a Aggregate,
    adapter: Option<&'a Aggregate>,
    truncated: usize,
    notes: &'a [Note],
    exec: Option<&'a str>,
    results_file: String,
    report_file: String,
    per_sample: &'a [SampleResult],
}

pub fn eval_generate(
    model: &Model,
    data: &Path,
    max_seq_len: usize,
    json: bool,
    args: &GenerateEvalArgs,
    (runner, exec_note): (Option<Runner>, Option<String>),
) -> anyhow::Result<ExitCode> {
    // The store's error names the file and the cause already.
    let store = Store::open(data).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(note) = &exec_note {
        eprintln!("--exec: {note}");
    }
    let options = CompareOptions {
        params: args.params(),
        max_seq_len,
        limit: args.limit,
        runner,
    };
    // stdout carries only --json; progress goes to stderr either way.
    let mut ticker = Ticker::stderr();
    let started = std::time::Instant::now();
    let comparison = compare(
        model,
        &store,
        &options,
        &AtomicBool::new(false),
        |p| match p {
            Progress::Loss { adapter } => {
                ticker.update(
                    &format!("loss on the references ({})", side_name(adapter)),
                    true,
                );
            }
            Progress::Generating {
                done,
                total,
                new_tokens,
            } => {
                let elapsed = started.elapsed().as_secs_f64();
                let eta = match done {
                    0 => String::new(),
                    _ => format!(
                        "  eta {}",
                        duration(elapsed / done as f64 * (total - done) as f64)
                    ),
                };
                let line = format!(
                    "generated {done}/{total} samples  {:.1} tok/s{eta}",
                    new_tokens as f64 / elapsed.max(1e-9)
                );
                ticker.update(&line, is_milestone(done, total));
            }
        },
    )?;
    ticker.finish();
    for note in &comparison.notes {
        eprintln!("{}:{}: {}", data.display(), note.line, note.message);
    }
    if comparison.samples.is_empty() {
        anyhow::bail!(
            "{}: no record has a prompt and an answer to compare with (see `tunebench data validate`)",
            data.display()
        );
    }
    if comparison.truncated > 0 {
        eprintln!(
            "{} sample(s) were cut to max_seq_len {max_seq_len} for the loss",
            comparison.truncated
        );
    }
    let out_dir = args.out_dir(model);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let results_path = out_dir.join(RESULTS_FILE);
    write_results(&results_path, &comparison.samples)
        .with_context(|| format!("writing {}", results_path.display()))?;
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| out_dir.join(REPORT_FILE));
    let meta = ReportMeta {
        model: model.name.clone(),
        adapter: model.adapter.as_ref().map(|(d, _)| d.display().to_string()),
        data: data.display().to_string(),
        params: options.params.clone(),
        exec_note: exec_note.clone(),
    };
    let report = markdown(&comparison, &meta);
    crate::data::store::atomic_write(&report_path, |out| out.write_all(report.as_bytes()))
        .with_context(|| format!("writing {}", report_path.display()))?;
    eprint!("{}", terminal_table(&comparison));
    if json {
        print_json(&json_report(
            &comparison,
            args,
            &exec_note,
            &results_path,
            &report_path,
        ))?;
    }
    eprintln!(
        "wrote {} and {}",
        results_path.display(),
        report_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn side_name(adapter: bool) -> &'static str {
    if adapter { "adapter" } else { "base" }
}

/// The test runner for `--exec`, and what the user should know about it.
/// Fails when no sandbox can be made and `--exec-unsandboxed` was not given;
/// a missing interpreter or pytest only leaves the tests out.
pub fn exec_runner(args: &GenerateEvalArgs) -> anyhow::Result<(Option<Runner>, Option<String>)> {
    if !args.exec {
        return Ok((None, None));
    }
    let options = ExecOptions {
        allow_unsandboxed: args.exec_unsandboxed,
        limits: Limits {
            memory: args.exec_memory_gb.saturating_mul(1 << 30),
            ..Limits::default()
        },
        ..ExecOptions::new(args.python.clone(), Duration::from_secs(args.exec_timeout))
    };
    match Runner::probe(options) {
        Ok(runner) => {
            let note = runner.note();
            Ok((Some(runner), Some(note)))
        }
        Err(e @ ProbeError::NoSandbox(_)) => Err(e.into()),
        Err(ProbeError::Python(why)) => Ok((
            None,
            Some(format!(
                "{why}; the tests of generated projects are not run"
            )),
        )),
    }
}

fn json_report<'a>(
    c: &'a Comparison,
    args: &'a GenerateEvalArgs,
    exec_note: &'a Option<String>,
    results: &Path,
    report: &Path,
) -> JsonReport<'a> {
    let loaded = c.adapter.as_ref().unwrap_or(&c.base);
    JsonReport {
        samples: c.samples.len(),
        tokens: loaded.tokens,
        loss: loaded.loss,
        perplexity: loaded.perplexity,
        signature: signature(),
        generation: GenerationSettings {
            max_new_tokens: args.max_new_tokens,
            sampling: &args.sampling,
        },
        base: &c.base,
        adapter: c.adapter.as_ref(),
        truncated: c.truncated,
        notes: &c.notes,
        exec: exec_note.as_deref(),
        results_file: results.display().to_string(),
        report_file: report.display().to_string(),
        per_sample: &c.samples,
    }
}
