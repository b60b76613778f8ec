//! `data validate`: every problem in a dataset file, each tied to a line and
//! a field, in one sequential pass.

mod code;
mod syntax;
mod template;
mod test_config;
mod text;

pub use code::{file_field, normalise as normalise_path, unsafe_path};
pub use syntax::{SyntaxError, check as check_syntax, checked_language};
pub use template::{TemplateCheck, describe as describe_dropped};
pub use test_config::{PYTEST_CONFIGS, is_pytest_config, runs_at_test_time};

use super::finding::{Finding, FindingKind, Problem, Severity};
use super::format::Format;
use super::parse::{self, Parsed};
use super::sample::Sample;
use super::store::Store;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io;

/// Counts a sample's tokens after the chat template (supplied by the model layer).
pub type TokenCounter<'a> = &'a (dyn Fn(&Sample) -> Result<usize, String> + Sync);

pub struct Options<'a> {
    /// Read every record as this format instead of detecting it.
    pub format: Option<Format>,
    /// Answers with fewer words are reported.
    pub min_words: usize,
    /// With a token counter: samples longer than this are reported.
    pub max_seq_len: usize,
    pub token_counter: Option<TokenCounter<'a>>,
    /// With a template check: a finding for each tool call or tool schema
    /// the model's chat template would leave out.
    pub template_check: Option<TemplateCheck<'a>>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            format: None,
            min_words: 2,
            max_seq_len: 2048,
            token_counter: None,
            template_check: None,
        }
    }
}

/// How far over `max_seq_len` the samples go.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overlength {
    pub max_seq_len: usize,
    pub samples: usize,
    pub max_excess: usize,
    pub mean_excess: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub format: Option<Format>,
    pub records: usize,
    pub samples: usize,
    pub formats: BTreeMap<Format, usize>,
    pub errors: usize,
    pub warnings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlength: Option<Overlength>,
    pub findings: Vec<Finding>,
    /// (fingerprint, record) of every sample, by fingerprint: what exact
    /// duplicates were found from, so an editor can keep finding them.
    #[serde(skip)]
    pub fingerprints: Vec<(u64, u32)>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }
}

/// Validates every record of an open store.
pub fn validate(store: &Store, options: &Options) -> io::Result<Report> {
    let file_format = match options.format {
        Some(format) => Some(format),
        None => parse::detect_file_format(store)?,
    };
    let mut v = Validator::new(options, file_format);
    if store.has_bom() {
        v.findings.push(
            Problem::warning(
                FindingKind::ByteOrderMark,
                "",
                "the file starts with a UTF-8 byte-order mark; tunebench skips it, many JSON readers do not",
            )
            .at_line(1),
        );
    }
    store.visit(|record| {
        let line = record.line.unwrap_or(0);
        v.record(record.index, line, record.bytes);
        Ok(())
    })?;
    v.report_duplicates(store);
    v.report_base_projects();
    Ok(v.finish(store))
}

/// The findings of one record, as [`validate`] reports them except for
/// checks across records (duplicates); lines count from `line`.
pub fn check_record(
    bytes: &[u8],
    line: usize,
    file_format: Option<Format>,
    options: &Options,
) -> Vec<Finding> {
    let mut v = Validator::new(options, file_format);
    v.record(0, line, bytes);
    v.findings
}

struct Validator<'o, 'a> {
    options: &'o Options<'a>,
    file_format: Option<Format>,
    findings: Vec<Finding>,
    /// (fingerprint, record index) of every sample, for exact duplicates.
    fingerprints: Vec<(u64, u32)>,
    formats: BTreeMap<Format, usize>,
    samples: usize,
    excess: Vec<usize>,
    /// Test-time files of every multi-file record with an `id`, by id.
    base_projects: HashMap<String, BaseProject>,
    /// (line, `context.base_id`) of every record that refines another.
    refinements: Vec<(usize, String)>,
}

/// A project other records refine: where it is and its test-time files.
struct BaseProject {
    line: usize,
    test_time_files: Vec<String>,
}

impl<'o, 'a> Validator<'o, 'a> {
    fn new(options: &'o Options<'a>, file_format: Option<Format>) -> Self {
        Validator {
            options,
            file_format,
            findings: Vec::new(),
            fingerprints: Vec::new(),
            formats: BTreeMap::new(),
            samples: 0,
            excess: Vec::new(),
            base_projects: HashMap::new(),
            refinements: Vec::new(),
        }
    }
}

impl Validator<'_, '_> {
    fn record(&mut self, index: usize, line: usize, bytes: &[u8]) {
        let parsed = parse::parse_record(bytes, self.file_format, self.options.format);
        let Parsed {
            value,
            format,
            sample,
            syntax,
            duplicate_keys,
            mut problems,
        } = parsed;
        if let Some(s) = syntax {
            self.findings.push(Finding {
                line: line + s.line_offset,
                column: Some(s.column),
                field: String::new(),
                kind: s.kind,
                severity: Severity::Error,
                message: s.message,
            });
            return;
        }
        if let Some(format) = format {
            *self.formats.entry(format).or_default() += 1;
        }
        let multifile = format == Some(Format::MultiFile);
        // A file path given twice is the multi-file check's to report.
        let (repeated_paths, duplicate_keys): (Vec<_>, Vec<_>) = duplicate_keys
            .into_iter()
            .partition(|d| multifile && d.object == code::FILES_PATH);
        if let Some(value) = &value {
            text::check_control_characters(value, &mut problems);
            if multifile {
                code::check_files(value, &repeated_paths, &mut problems);
                self.remember_project(line, value);
            }
        }
        report_duplicate_keys(duplicate_keys, &mut problems);
        if let Some(sample) = &sample {
            self.samples += 1;
            self.fingerprints.push((sample.fingerprint(), index as u32));
            if format != Some(Format::MultiFile) {
                let field = answer_field(format, value.as_ref());
                text::check_length(sample, &field, self.options.min_words, &mut problems);
            }
            if let Some(problem) = self.check_tokens(sample) {
                problems.push(problem);
            }
            if let (Some(check), Sample::Chat(conv)) = (self.options.template_check, sample) {
                problems.extend(template::problems(&check(conv), conv, value.as_ref()));
            }
        }
        self.findings
            .extend(problems.into_iter().map(|p| p.at_line(line)));
    }

    fn check_tokens(&mut self, sample: &Sample) -> Option<Problem> {
        let count = self.options.token_counter?;
        let max = self.options.max_seq_len;
        match count(sample) {
            Ok(tokens) if tokens > max => {
                self.excess.push(tokens - max);
                Some(Problem::warning(
                    FindingKind::TooLong,
                    "",
                    format!(
                        "{tokens} tokens after the chat template, {} over max_seq_len {max}; the end would be cut off",
                        tokens - max
                    ),
                ))
            }
            Ok(_) => None,
            Err(message) => Some(Problem::error(
                FindingKind::TooLong,
                "",
                format!("could not render this sample with the model's chat template: {message}"),
            )),
        }
    }

    fn report_duplicates(&mut self, store: &Store) {
        self.fingerprints.sort_unstable();
        let order = &self.fingerprints;
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let first = group[0].1 as usize;
            let first_line = store.line(first).unwrap_or(0);
            for &(_, index) in &group[1..] {
                let line = store.line(index as usize).unwrap_or(0);
                let first = format!("the record at line {first_line}");
                self.findings.push(duplicate_of(&first).at_line(line));
            }
        }
    }

    fn remember_project(&mut self, line: usize, value: &Value) {
        if let Some(id) = value.get("id").and_then(Value::as_str) {
            let test_time_files = code::test_time_files(value);
            let project = BaseProject {
                line,
                test_time_files,
            };
            self.base_projects.insert(id.to_string(), project);
        }
        if let Some(base) = value.pointer("/context/base_id").and_then(Value::as_str) {
            self.refinements.push((line, base.to_string()));
        }
    }

    /// A refinement runs its base project's files too: each whose base
    /// carries test-time code gets a finding of its own.
    fn report_base_projects(&mut self) {
        for (line, base) in std::mem::take(&mut self.refinements) {
            let Some(project) = self.base_projects.get(&base) else {
                continue;
            };
            if project.test_time_files.is_empty() {
                continue;
            }
            self.findings.push(
                Problem::warning(
                    FindingKind::ExecutableTestConfig,
                    "context.base_id",
                    format!(
                        "base project `{base}` (line {}) carries code that runs when the tests run: {}; `eval --exec` runs it with this record's answer, in its sandbox",
                        project.line,
                        project.test_time_files.join(", ")
                    ),
                )
                .at_line(line),
            );
        }
    }

    fn finish(mut self, store: &Store) -> Report {
        self.findings.sort_by_key(|f| f.line);
        let errors = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let overlength = (!self.excess.is_empty()).then(|| Overlength {
            max_seq_len: self.options.max_seq_len,
            samples: self.excess.len(),
            max_excess: self.excess.iter().copied().max().unwrap_or(0),
            mean_excess: self.excess.iter().sum::<usize>() as f64 / self.excess.len() as f64,
        });
        Report {
            file: store.path().display().to_string(),
            format: self.file_format,
            records: store.len(),
            samples: self.samples,
            formats: self.formats,
            errors,
            warnings: self.findings.len() - errors,
            overlength,
            findings: self.findings,
            fingerprints: self.fingerprints,
        }
    }
}

/// The warning of a record that repeats an earlier one (`first` says which).
pub fn duplicate_of(first: &str) -> Problem {
    Problem::warning(
        FindingKind::Duplicate,
        "",
        format!("exact duplicate of {first}"),
    )
}

/// A warning per key given twice in one object (once however many times).
fn report_duplicate_keys(duplicates: Vec<parse::DuplicateKey>, problems: &mut Vec<Problem>) {
    let mut seen = std::collections::HashSet::new();
    for d in duplicates {
        let field = crate::data::read::join_key(&d.object, &d.key);
        if seen.insert(field.clone()) {
            let message = format!(
                "key `{}` appears more than once in one object; JSON readers keep only its last value",
                d.key
            );
            problems.push(Problem::warning(FindingKind::DuplicateKey, field, message));
        }
    }
}

/// JSON path of the field holding the (last) answer, for reports.
fn answer_field(format: Option<Format>, value: Option<&Value>) -> String {
    let last_assistant = |key: &str| {
        let turns = value?.get(key)?.as_array()?;
        let i = turns.iter().rposition(|t| {
            let role = t
                .get("role")
                .or_else(|| t.get("from"))
                .and_then(Value::as_str);
            matches!(role, Some("assistant" | "gpt" | "model" | "bot"))
        })?;
        let content = if turns[i].get("value").is_some() {
            "value"
        } else {
            "content"
        };
        Some(format!("{key}[{i}].{content}"))
    };
    match format {
        Some(Format::Text) => "text".into(),
        Some(Format::Completion) => "completion".into(),
        Some(Format::Alpaca) => "output".into(),
        Some(Format::Chat) => last_assistant("messages").unwrap_or_default(),
        Some(Format::ShareGpt) => last_assistant("conversations").unwrap_or_default(),
        _ => String::new(),
    }
}
