//! `tunebench data validate|stats|split|convert`.

use super::{exit_for_errors, print_json};
use crate::data::convert::{self, Target};
use crate::data::finding::{Finding, FindingKind, Severity};
use crate::data::split::{self, EvalSize};
use crate::data::stats::{self, Percentiles, Stats};
use crate::data::validate::{self, Options, Report, TokenCounter};
use crate::data::{Format, Store};
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Findings of one kind shown before the rest are summarised.
const SHOWN_PER_KIND: usize = 10;

pub fn open(path: &Path) -> anyhow::Result<Store> {
    Store::open(path).map_err(anyhow::Error::from)
}

pub fn validate(path: &Path, options: &Options, json: bool) -> anyhow::Result<ExitCode> {
    let store = open(path)?;
    let report = validate::validate(&store, options)
        .with_context(|| format!("reading {}", path.display()))?;
    if json {
        print_json(&report)?;
    }
    eprint!("{}", human_validation(&report));
    Ok(exit_for_errors(report.has_errors()))
}

/// The human validation report: findings grouped by kind, the first few of
/// each shown, then a summary line.
pub fn human_validation(report: &Report) -> String {
    let mut out = String::new();
    let mut by_kind: BTreeMap<(Severity, FindingKind), Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        by_kind.entry((f.severity, f.kind)).or_default().push(f);
    }
    for ((severity, kind), findings) in &by_kind {
        let label = match severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "{label}[{}]: {} record(s)\n",
            kind.name(),
            findings.len()
        ));
        for f in findings.iter().take(SHOWN_PER_KIND) {
            let column = f.column.map(|c| format!(":{c}")).unwrap_or_default();
            let field = if f.field.is_empty() {
                String::new()
            } else {
                format!(" {}:", f.field)
            };
            out.push_str(&format!(
                "  {}:{}{column}:{field} {}\n",
                report.file, f.line, f.message
            ));
        }
        if findings.len() > SHOWN_PER_KIND {
            out.push_str(&format!(
                "  ... and {} more (see --json)\n",
                findings.len() - SHOWN_PER_KIND
            ));
        }
    }
    if let Some(o) = &report.overlength {
        out.push_str(&format!(
            "{} sample(s) longer than max_seq_len {}: by {:.0} tokens on average, {} at most\n",
            o.samples, o.max_seq_len, o.mean_excess, o.max_excess
        ));
    }
    let format = report
        .format
        .map_or("unknown format".to_string(), |f| f.label().to_string());
    out.push_str(&format!(
        "{}: {} records ({format}), {} usable samples, {} error(s), {} warning(s)\n",
        report.file, report.records, report.samples, report.errors, report.warnings
    ));
    out
}

pub fn stats(
    path: &Path,
    format: Option<Format>,
    counter: Option<TokenCounter>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = open(path)?;
    let stats = stats::stats(&store, format, counter)
        .with_context(|| format!("reading {}", path.display()))?;
    if json {
        print_json(&stats)?;
    } else {
        eprint!("{}", human_stats(&stats));
    }
    Ok(ExitCode::SUCCESS)
}

fn human_stats(s: &Stats) -> String {
    let mut out = format!(
        "{}\n  format: {}\n  records: {} ({} usable samples, {} unusable, {} exact duplicates)\n",
        s.file,
        s.format.map_or("unknown", |f| f.label()),
        s.records,
        s.samples,
        s.unusable,
        s.duplicates
    );
    if s.unusable > 0 {
        out.push_str(&format!(
            "  unusable: {} record(s) give no training sample; `tunebench data validate` says why\n",
            s.unusable
        ));
    }
    if s.formats.len() > 1 {
        let parts: Vec<_> = s
            .formats
            .iter()
            .map(|(f, n)| format!("{} {n}", f.name()))
            .collect();
        out.push_str(&format!("  formats: {}\n", parts.join(", ")));
    }
    if !s.messages_by_role.is_empty() {
        let parts: Vec<_> = s
            .messages_by_role
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        out.push_str(&format!("  messages by role: {}\n", parts.join(", ")));
    }
    let line = |name: &str, p: &Option<Percentiles>| {
        p.as_ref().map_or(String::new(), |p| {
            format!(
                "  {name}: min {} / p50 {} / p90 {} / p99 {} / max {} (mean {:.1})\n",
                p.min, p.p50, p.p90, p.p99, p.max, p.mean
            )
        })
    };
    out.push_str(&line("turns per conversation", &s.turns));
    out.push_str(&line("characters per sample", &s.chars));
    out.push_str(&line("tokens per sample", &s.tokens));
    if let Some(code) = &s.code {
        out.push_str(&format!("  multi-file samples: {}\n", code.samples));
        out.push_str(&line("files per sample", &code.files_per_sample));
        let tally = |name: &str, map: &BTreeMap<String, usize>| {
            let mut items: Vec<_> = map.iter().collect();
            items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let parts: Vec<_> = items.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("  {name}: {}\n", parts.join(", "))
        };
        out.push_str(&tally("languages (files)", &code.languages));
        out.push_str(&tally("context.domain", &code.domains));
        out.push_str(&tally("context.tech_stack", &code.tech_stack));
    }
    out
}

pub fn split(
    path: &Path,
    size: EvalSize,
    seed: u64,
    out_dir: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = open(path)?;
    let report = match split::split(&store, size, seed, out_dir) {
        Ok(report) => report,
        Err(split::SplitError::Size(message)) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
        Err(e @ split::SplitError::Io { .. }) => return Err(e.into()),
    };
    if json {
        print_json(&report)?;
    }
    eprintln!(
        "train: {} records -> {}",
        report.train,
        report.train_file.display()
    );
    eprintln!(
        "eval:  {} records -> {}",
        report.eval,
        report.eval_file.display()
    );
    if report.strata.len() > 1 {
        for (domain, (train, eval)) in &report.strata {
            let name = if domain.is_empty() {
                "(no domain)"
            } else {
                domain
            };
            eprintln!("  {name}: {train} train, {eval} eval");
        }
    }
    if report.invalid_json > 0 {
        eprintln!(
            "note: {} record(s) are not valid JSON; run `tunebench data validate`",
            report.invalid_json
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn convert(
    path: &Path,
    target: Target,
    format: Option<Format>,
    out: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = open(path)?;
    let report = convert::convert(&store, target, format, out)
        .with_context(|| format!("writing {}", out.display()))?;
    if json {
        print_json(&report)?;
    }
    for loss in report.lossy.iter().take(50) {
        let what = if loss.skipped { "skipped" } else { "lossy" };
        eprintln!("{}:{}: {what}: {}", path.display(), loss.line, loss.reason);
    }
    if report.lossy.len() > 50 {
        eprintln!(
            "... and {} more lossy records (see --json)",
            report.lossy.len() - 50
        );
    }
    let skipped = report.lossy.iter().filter(|l| l.skipped).count();
    if report.written == 0 {
        eprintln!(
            "error: nothing to write: {} of {} records skipped; {} was not written",
            skipped,
            store.len(),
            out.display()
        );
        return Ok(ExitCode::from(super::EXIT_INPUT_ERRORS));
    }
    eprintln!(
        "wrote {} records to {} ({} lossy, {} skipped)",
        report.written,
        out.display(),
        report.lossy.len() - skipped,
        skipped
    );
    Ok(ExitCode::SUCCESS)
}

/// `data tokens`: each sample as the trainer tokenises it, one JSON line per
/// sample on stdout (`line`, `ids`, `trained`: whether each position's
/// token is a target), cut at `max_seq_len` as training cuts it.
pub fn tokens(
    file: &Path,
    format: Option<Format>,
    tokenizer: &crate::model::ChatTokenizer,
    max_seq_len: usize,
    train_on_inputs: bool,
    limit: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let data = crate::train::config::DataSection {
        train: file.display().to_string(),
        eval: None,
        eval_split: 0.0,
        format: format.map(|f| f.to_string()),
        max_seq_len,
        train_on_inputs,
        packing: false,
    };
    let chosen = crate::train::batches::choose_samples(&data, 0).map_err(anyhow::Error::msg)?;
    for (file, line, why) in &chosen.report.skipped {
        eprintln!("{file}:{line}: skipped: {why}");
    }
    let mut out = std::io::stdout().lock();
    for (index, sample) in chosen.train.iter().take(limit.unwrap_or(usize::MAX)) {
        let mut encoded = tokenizer.encode(sample, train_on_inputs)?;
        encoded.ids.truncate(max_seq_len);
        encoded.trained.truncate(max_seq_len);
        let record = serde_json::json!({
            "line": chosen.train_store.line(*index).unwrap_or(0),
            "ids": encoded.ids,
            "trained": encoded.trained,
        });
        writeln!(out, "{record}")?;
    }
    Ok(ExitCode::SUCCESS)
}
