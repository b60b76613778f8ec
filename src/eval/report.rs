//! How a comparison reads to a person: the summary table for the terminal
//! and the Markdown report (`eval-report.md`).

use super::compare::Comparison;
use super::metrics::bleu::signature;
use super::metrics::classify::{Classification, NO_LABEL};
use super::results::{SampleResult, excerpt, request_words};
use super::summary::Aggregate;
use crate::model::generate::GenerateParams;
use std::fmt::Write;

/// Where the comparison came from, for the report's header.
pub struct ReportMeta {
    pub model: String,
    pub adapter: Option<String>,
    pub data: String,
    pub params: GenerateParams,
    /// What happened to `--exec` (ran with which isolation, or why not).
    pub exec_note: Option<String>,
}

/// How a row's numbers are shown.
#[derive(Clone, Copy)]
enum Shape {
    Count,
    Fraction,
    Bleu,
    Loss,
    /// Unbounded: huge values (an untrained model's) in scientific notation.
    Perplexity,
}

struct Row {
    name: &'static str,
    shape: Shape,
    base: f64,
    adapter: Option<f64>,
}

fn show(shape: Shape, v: f64) -> String {
    match shape {
        Shape::Count => format!("{v:.0}"),
        Shape::Fraction => format!("{v:.3}"),
        Shape::Bleu => format!("{v:.2}"),
        Shape::Loss => format!("{v:.4}"),
        Shape::Perplexity if v.abs() >= 1e5 => format!("{v:.3e}"),
        Shape::Perplexity => format!("{v:.2}"),
    }
}

fn delta(shape: Shape, base: f64, adapter: Option<f64>) -> String {
    adapter.map_or(String::new(), |a| {
        let d = show(shape, a - base);
        if d.starts_with('-') {
            d
        } else {
            format!("+{d}")
        }
    })
}

fn rows(c: &Comparison) -> Vec<Row> {
    let a = c.adapter.as_ref();
    let mut rows = Vec::new();
    let mut add = |name, shape, f: &dyn Fn(&Aggregate) -> Option<f64>| {
        if let Some(base) = f(&c.base) {
            rows.push(Row {
                name,
                shape,
                base,
                adapter: a.and_then(f),
            });
        }
    };
    add("samples", Shape::Count, &|g| Some(g.samples as f64));
    add("exact match", Shape::Fraction, &|g| Some(g.exact_match));
    add("token F1", Shape::Fraction, &|g| Some(g.f1));
    add("ROUGE-L F", Shape::Fraction, &|g| Some(g.rouge_l));
    add("BLEU", Shape::Bleu, &|g| Some(g.bleu.score));
    add("loss (reference)", Shape::Loss, &|g| Some(g.loss));
    add("perplexity", Shape::Perplexity, &|g| Some(g.perplexity));
    add("new tokens", Shape::Count, &|g| Some(g.new_tokens as f64));
    add("answers ended (EOS / stop)", Shape::Count, &|g| {
        Some(g.ended as f64)
    });
    add("answers cut at the token limit", Shape::Count, &|g| {
        Some(g.cut_at_limit as f64)
    });
    add("accuracy", Shape::Fraction, &|g| {
        g.classification.as_ref().map(|k| k.accuracy)
    });
    add("macro precision", Shape::Fraction, &|g| {
        g.classification.as_ref().map(|k| k.macro_precision)
    });
    add("macro recall", Shape::Fraction, &|g| {
        g.classification.as_ref().map(|k| k.macro_recall)
    });
    add("macro F1", Shape::Fraction, &|g| {
        g.classification.as_ref().map(|k| k.macro_f1)
    });
    add("code: parsed", Shape::Count, &|g| {
        g.code.as_ref().map(|k| k.parsed as f64)
    });
    add("code: files w/ syntax errors", Shape::Count, &|g| {
        g.code.as_ref().map(|k| k.syntax_errors as f64)
    });
    add("code: expected-file coverage", Shape::Fraction, &|g| {
        g.code.as_ref().map(|k| k.coverage)
    });
    add("code: answers w/ invented imports", Shape::Count, &|g| {
        g.code.as_ref().map(|k| k.samples_with_invented as f64)
    });
    add("code: tests pass rate", Shape::Fraction, &|g| {
        g.code.as_ref()?.tests.as_ref().map(|t| t.pass_rate)
    });
    add("code: score", Shape::Fraction, &|g| {
        g.code.as_ref().map(|k| k.score)
    });
    add("primary score (mean)", Shape::Fraction, &|g| Some(g.score));
    rows
}

/// The summary table for the terminal.
pub fn terminal_table(c: &Comparison) -> String {
    let mut out = format!(
        "{:<34} {:>10} {:>10} {:>10}\n",
        "metric", "base", "adapter", "delta"
    );
    for r in rows(c) {
        let adapter = r.adapter.map_or("-".to_string(), |v| show(r.shape, v));
        let _ = writeln!(
            out,
            "{:<34} {:>10} {:>10} {:>10}",
            r.name,
            show(r.shape, r.base),
            adapter,
            delta(r.shape, r.base, r.adapter)
        );
    }
    let _ = writeln!(out, "BLEU signature: {}", signature());
    out
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A fenced block that no backtick run inside `text` can close.
fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}\n{text}\n{fence}\n")
}

/// The Markdown report.
pub fn markdown(c: &Comparison, meta: &ReportMeta) -> String {
    let mut out = String::from("# tunebench evaluation\n\n");
    let _ = writeln!(out, "- model: `{}`", meta.model);
    match &meta.adapter {
        Some(a) => {
            let _ = writeln!(out, "- adapter: `{a}`");
        }
        None => out.push_str("- adapter: none (base model only)\n"),
    }
    let _ = writeln!(
        out,
        "- data: `{}` ({} samples evaluated, {} notes)",
        meta.data,
        c.samples.len(),
        c.notes.len()
    );
    let p = &meta.params;
    let _ = writeln!(
        out,
        "- generation: max_new_tokens {}, temperature {}, seed {}, repetition_penalty {}",
        p.max_new_tokens, p.sampling.temperature, p.sampling.seed, p.sampling.repetition_penalty
    );
    let _ = writeln!(
        out,
        "- BLEU signature: `{}` (computed by tunebench, checked against sacreBLEU)",
        signature()
    );
    if let Some(note) = &meta.exec_note {
        let _ = writeln!(out, "- tests: {note}");
    }
    out.push_str(
        "\n## Summary\n\n| metric | base | adapter | delta |\n| --- | ---: | ---: | ---: |\n",
    );
    for r in rows(c) {
        let adapter = r.adapter.map_or("-".to_string(), |v| show(r.shape, v));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            r.name,
            show(r.shape, r.base),
            adapter,
            delta(r.shape, r.base, r.adapter)
        );
    }
    out.push_str(
        "\nExact match and token F1 use SQuAD normalisation; ROUGE-L is rouge-score's default \
         (no stemming), averaged over samples; BLEU is corpus-level. The primary score is \
         ROUGE-L, or the code score for multi-file answers.\n",
    );
    let sides = [("base", Some(&c.base)), ("adapter", c.adapter.as_ref())];
    for (name, aggregate) in sides {
        if let Some(k) = aggregate.and_then(|a| a.classification.as_ref()) {
            let _ = writeln!(out, "\n## Labels: {name}\n");
            confusion(&mut out, k);
        }
        if let Some(code) = aggregate.and_then(|a| a.code.as_ref()) {
            let _ = writeln!(out, "\n## Code checks: {name}\n");
            let invented = if code.invented_packages.is_empty() {
                "none".to_string()
            } else {
                code.invented_packages.join(", ")
            };
            let _ = writeln!(
                out,
                "- {} of {} answers parsed; {} of {} checked files have syntax errors\n- invented or undeclared imports: {invented}",
                code.parsed, code.samples, code.syntax_errors, code.checked_files
            );
            if let Some(t) = &code.tests {
                let _ = writeln!(
                    out,
                    "- tests: {} passed, {} failed, {} errors; {} of {} projects pass; {} timed out",
                    t.passed, t.failed, t.errors, t.samples_passing, t.samples, t.timed_out
                );
            }
        }
    }
    samples_table(&mut out, &c.samples);
    changes(&mut out, &c.samples);
    if !c.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for n in &c.notes {
            let _ = writeln!(out, "- line {}: {}", n.line, n.message);
        }
    }
    out
}

fn confusion(out: &mut String, k: &Classification) {
    out.push_str(
        "An answer names a label when, trimmed, it equals the label, or else its first \
         non-empty line does (exact and case-sensitive); other answers count as `(none)`.\n\n",
    );
    let _ = writeln!(
        out,
        "accuracy {:.3}, macro precision {:.3}, recall {:.3}, F1 {:.3} (rows: label, columns: answer)\n",
        k.accuracy, k.macro_precision, k.macro_recall, k.macro_f1
    );
    let header: Vec<String> = k
        .labels
        .iter()
        .map(|l| cell(l))
        .chain([NO_LABEL.to_string()])
        .collect();
    let _ = writeln!(out, "| | {} |", header.join(" | "));
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(header.len()));
    for (label, row) in k.labels.iter().zip(&k.confusion) {
        let counts: Vec<String> = row.iter().map(usize::to_string).collect();
        let _ = writeln!(out, "| {} | {} |", cell(label), counts.join(" | "));
    }
}

fn samples_table(out: &mut String, samples: &[SampleResult]) {
    out.push_str("\n## Samples\n\n| # | line | primary | base | adapter | delta | prompt |\n| ---: | ---: | --- | ---: | ---: | ---: | --- |\n");
    for s in samples {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} | {} | {} | {} |",
            s.index + 1,
            s.line,
            s.primary,
            s.base.score,
            s.adapter
                .as_ref()
                .map_or("-".into(), |a| format!("{:.3}", a.score)),
            s.score_delta.map_or(String::new(), |d| format!("{d:+.3}")),
            cell(&excerpt(&request_words(&s.prompt), 80))
        );
    }
}

/// The samples the adapter helped and hurt most, with their answers.
fn changes(out: &mut String, samples: &[SampleResult]) {
    let mut moved: Vec<&SampleResult> = samples
        .iter()
        .filter(|s| s.score_delta.is_some_and(|d| d != 0.0))
        .collect();
    if moved.is_empty() {
        return;
    }
    moved.sort_by(|a, b| {
        b.score_delta
            .unwrap_or(0.0)
            .total_cmp(&a.score_delta.unwrap_or(0.0))
    });
    let gains = moved.iter().take(3).filter(|s| s.score_delta > Some(0.0));
    let losses = moved
        .iter()
        .rev()
        .take(3)
        .filter(|s| s.score_delta < Some(0.0));
    for (title, list) in [
        ("Largest gains", gains.collect::<Vec<_>>()),
        ("Largest losses", losses.collect()),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {title}\n");
        for s in list {
            let _ = writeln!(
                out,
                "### Record {} (line {}), {} {:+.3}\n\nPrompt:\n{}\nReference:\n{}\nBase:\n{}",
                s.index + 1,
                s.line,
                s.primary,
                s.score_delta.unwrap_or(0.0),
                fenced(&s.prompt),
                fenced(&excerpt(&s.reference, 800)),
                fenced(&excerpt(&s.base.answer, 800)),
            );
            if let Some(a) = &s.adapter {
                let _ = writeln!(out, "Adapter:\n{}", fenced(&excerpt(&a.answer, 800)));
            }
        }
    }
}
