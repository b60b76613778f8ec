//! The training configuration: a TOML file with `[model]`, `[lora]`,
//! `[data]` and `[training]` sections, plus `--set section.key=value`
//! overrides. Everything is checked before any model is loaded.

use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::{Table, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A model directory or Hugging Face repo id.
    pub name: String,
    pub dtype: String,
    pub device: String,
    /// A built-in prompt layout for models without a chat template.
    pub template: Option<String>,
    /// Keep the base's projections quantized while training (QLoRA):
    /// `keep` a GGUF file's own types, or a type to quantize to on load.
    pub quantize: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<String>,
    pub use_rslora: bool,
    /// Start from this PEFT adapter instead of a fresh one (its r, alpha
    /// and targets then apply).
    pub init_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub train: String,
    /// A separate eval file; without it `eval_split` of the training file is held out.
    pub eval: Option<String>,
    pub eval_split: f64,
    pub format: Option<String>,
    pub max_seq_len: usize,
    pub train_on_inputs: bool,
    /// Concatenate samples into rows of up to max_seq_len tokens (no
    /// attention across samples).
    pub packing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    pub epochs: usize,
    /// Stop after this many optimizer steps (0: run all epochs).
    pub max_steps: usize,
    pub lr: f64,
    /// constant, linear or cosine.
    pub schedule: String,
    pub warmup_ratio: f64,
    /// Overrides `warmup_ratio` when set.
    pub warmup_steps: Option<usize>,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub eval_every: usize,
    /// Evaluate once before the first step, so every eval curve starts at the base.
    pub eval_at_start: bool,
    pub checkpoint_every: usize,
    pub keep_checkpoints: usize,
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Evaluations without improvement before stopping (0: never stop early).
    pub early_stopping_patience: usize,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    /// Recompute each decoder layer in backward instead of keeping its
    /// activations. Unset: the memory estimate decides
    /// (`train::estimate::checkpointing`).
    pub gradient_checkpointing: Option<bool>,
}

impl TrainingSection {
    /// Whether the config itself turns recomputation on (unset counts as
    /// off here; the trainer asks `train::estimate::checkpointing`).
    pub fn checkpointing(&self) -> bool {
        self.gradient_checkpointing.unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub lora: LoraSection,
    pub data: DataSection,
    pub training: TrainingSection,
}

/// Whether a config table sets `model.dtype`.
fn sets_dtype(table: &Table) -> bool {
    table
        .get("model")
        .and_then(Value::as_table)
        .is_some_and(|m| m.contains_key("dtype"))
}

/// The defaults, as TOML: what a missing key means (but `model.dtype`,
/// bf16 when `model.device` is cuda).
const DEFAULTS: &str = r#"
[model]
name = ""
dtype = "f32"
device = "cpu"

[lora]
r = 16
alpha = 32.0
dropout = 0.05
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
use_rslora = false

[data]
train = ""
eval_split = 0.1
max_seq_len = 2048
train_on_inputs = false
packing = false

[training]
epochs = 3
max_steps = 0
lr = 2e-4
schedule = "cosine"
warmup_ratio = 0.03
batch_size = 1
grad_accum = 4
eval_every = 50
eval_at_start = true
checkpoint_every = 100
keep_checkpoints = 3
max_grad_norm = 1.0
weight_decay = 0.0
seed = 42
early_stopping_patience = 0
adam_beta1 = 0.9
adam_beta2 = 0.999
adam_eps = 1e-8
"#;

/// Keys that may be absent from the defaults (optional values), with the
/// TOML type each takes.
const OPTIONAL_KEYS: [(&str, &str, &str); 7] = [
    ("model", "template", "string"),
    ("model", "quantize", "string"),
    ("lora", "init_from", "string"),
    ("data", "eval", "string"),
    ("data", "format", "string"),
    ("training", "warmup_steps", "integer"),
    ("training", "gradient_checkpointing", "boolean"),
];

/// Where settings come from, for messages: a file (with its text, to find
/// the line of a key) or `--set`.
enum Origin<'a> {
    File { path: &'a Path, text: &'a str },
    Set,
}

impl Origin<'_> {
    /// "config.toml:7" for a key set in a file; the file or "--set" otherwise.
    fn at(&self, section: &str, key: Option<&str>) -> String {
        match self {
            Origin::Set => "--set".into(),
            Origin::File { path, text } => {
                let line = key.and_then(|key| line_of(text, section, key));
                match line {
                    Some(line) => format!("{}:{line}", path.display()),
                    None => path.display().to_string(),
                }
            }
        }
    }
}

/// The 1-based line where `section.key` gets its value in a TOML text.
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let table = toml::de::DeValue::Table(doc.into_inner());
    let value = table.get(section)?.get_ref().get(key)?;
    Some(text[..value.span().start].matches('\n').count() + 1)
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

impl TrainConfig {
    /// Reads `path` (if any), applies `--set` overrides, fills defaults and checks it all.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<TrainConfig, String> {
        let mut table: Table = DEFAULTS
            .parse()
            .map_err(|e| format!("built-in defaults: {e}"))?;
        let mut dtype_given = false;
        if let Some(path) = path {
            let text = if is_yaml(path) {
                // Axolotl, LLaMA-Factory or a plain PEFT script's config.
                let (text, notes) = super::handoff::import::to_toml(path)?;
                for note in notes {
                    eprintln!("{}: {note}", path.display());
                }
                text
            } else {
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
            };
            let user: Table = text.parse().map_err(|e: toml::de::Error| {
                let line = e.span().map_or(String::new(), |span| {
                    format!(":{}", text[..span.start].matches('\n').count() + 1)
                });
                format!("{}{line}: {}", path.display(), e.message())
            })?;
            dtype_given |= sets_dtype(&user);
            merge_checked(&mut table, user, &Origin::File { path, text: &text })?;
        }
        for item in overrides {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("--set {item}: expected section.key=value"))?;
            let (section, name) = key.trim().split_once('.').ok_or_else(|| {
                format!("--set {item}: the key needs its section, e.g. training.lr")
            })?;
            let value = parse_value(value.trim());
            let mut one = Table::new();
            one.insert(
                section.to_string(),
                Value::Table(Table::from_iter([(name.to_string(), value)])),
            );
            dtype_given |= sets_dtype(&one);
            merge_checked(&mut table, one, &Origin::Set)?;
        }
        let mut config: TrainConfig = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("configuration: {}", e.message()))?;
        // On a GPU the base is bf16 unless the config says otherwise (LoRA
        // weights, optimizer state and the loss stay f32 either way).
        if config.model.device == "cuda" && !dtype_given {
            config.model.dtype = "bf16".into();
        }
        config.check()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Ranges and choices, each error naming the key and what is allowed.
    fn check(&self) -> Result<(), String> {
        let (m, l, d, t) = (&self.model, &self.lora, &self.data, &self.training);
        let mut errors = Vec::new();
        let mut need = |ok: bool, message: String| {
            if !ok {
                errors.push(message);
            }
        };
        need(
            !m.name.is_empty(),
            "model.name is required (a model directory or repo id)".into(),
        );
        need(
            matches!(m.dtype.as_str(), "f32" | "bf16"),
            format!("model.dtype `{}`: expected f32 or bf16", m.dtype),
        );
        need(
            matches!(m.device.as_str(), "cpu" | "cuda"),
            format!("model.device `{}`: expected cpu or cuda", m.device),
        );
        if let Some(t) = &m.template {
            need(
                t.parse::<crate::model::BuiltinTemplate>().is_ok(),
                format!("model.template `{t}`: expected chatml, alpaca or plain"),
            );
        }
        if let Some(q) = &m.quantize {
            let parsed = q.parse::<crate::model::base_weight::Quantize>();
            need(
                parsed.is_ok(),
                format!("model.{}", parsed.err().unwrap_or_default()),
            );
        }
        need(
            (1..=1024).contains(&l.r),
            format!("lora.r {}: must be between 1 and 1024", l.r),
        );
        need(
            l.alpha > 0.0,
            format!("lora.alpha {}: must be positive", l.alpha),
        );
        need(
            (0.0..1.0).contains(&l.dropout),
            format!("lora.dropout {}: must be in [0, 1)", l.dropout),
        );
        if let Err(e) = crate::model::lora::LoraSpec::resolve_targets(&l.targets) {
            need(false, format!("lora.targets: {e}"));
        }
        need(
            !l.targets.is_empty(),
            "lora.targets: name at least one projection".into(),
        );
        need(
            !d.train.is_empty(),
            "data.train is required (a .jsonl or .json dataset)".into(),
        );
        need(
            d.eval.is_some() || (0.0..0.9).contains(&d.eval_split),
            format!("data.eval_split {}: must be in [0, 0.9)", d.eval_split),
        );
        need(
            (16..=1 << 20).contains(&d.max_seq_len),
            format!(
                "data.max_seq_len {}: must be between 16 and 1048576",
                d.max_seq_len
            ),
        );
        if let Some(f) = &d.format {
            need(
                f.parse::<crate::data::Format>().is_ok(),
                format!("data.format `{f}`: unknown format"),
            );
        }
        need(
            t.epochs >= 1 || t.max_steps >= 1,
            "training.epochs or training.max_steps must be at least 1".into(),
        );
        need(
            t.lr > 0.0 && t.lr < 1.0,
            format!("training.lr {}: must be in (0, 1)", t.lr),
        );
        need(
            matches!(t.schedule.as_str(), "constant" | "linear" | "cosine"),
            format!(
                "training.schedule `{}`: expected constant, linear or cosine",
                t.schedule
            ),
        );
        need(
            (0.0..1.0).contains(&t.warmup_ratio),
            format!(
                "training.warmup_ratio {}: must be in [0, 1)",
                t.warmup_ratio
            ),
        );
        need(
            t.batch_size >= 1,
            "training.batch_size must be at least 1".into(),
        );
        need(
            t.grad_accum >= 1,
            "training.grad_accum must be at least 1".into(),
        );
        need(
            t.eval_every >= 1,
            "training.eval_every must be at least 1".into(),
        );
        need(
            t.checkpoint_every >= 1,
            "training.checkpoint_every must be at least 1".into(),
        );
        need(
            t.keep_checkpoints >= 1,
            "training.keep_checkpoints must be at least 1".into(),
        );
        need(
            t.max_grad_norm >= 0.0,
            format!(
                "training.max_grad_norm {}: must be 0 (off) or positive",
                t.max_grad_norm
            ),
        );
        need(
            (0.0..1.0).contains(&t.weight_decay),
            format!(
                "training.weight_decay {}: must be in [0, 1)",
                t.weight_decay
            ),
        );
        need(
            (0.0..1.0).contains(&t.adam_beta1),
            format!("training.adam_beta1 {}: must be in [0, 1)", t.adam_beta1),
        );
        need(
            (0.0..1.0).contains(&t.adam_beta2),
            format!("training.adam_beta2 {}: must be in [0, 1)", t.adam_beta2),
        );
        need(
            t.adam_eps > 0.0,
            format!("training.adam_eps {}: must be positive", t.adam_eps),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

/// A `--set` value: TOML when it parses as TOML, else a plain string.
fn parse_value(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_string()))
}

/// Copies `user` over `base`, refusing keys the defaults do not know and
/// values of the wrong type.
fn merge_checked(base: &mut Table, user: Table, origin: &Origin) -> Result<(), String> {
    for (section, value) in user {
        let Some(Value::Table(known)) = base.get_mut(&section) else {
            let names: Vec<&str> = vec!["model", "lora", "data", "training"];
            return Err(format!(
                "{}: unknown section [{section}]{}",
                origin.at(&section, None),
                did_you_mean(&section, &names)
            ));
        };
        let Value::Table(entries) = value else {
            return Err(format!(
                "{}: `{section}` must be a section ([{section}])",
                origin.at(&section, None)
            ));
        };
        for (key, value) in entries {
            let optional_type = OPTIONAL_KEYS
                .iter()
                .find(|(s, k, _)| *s == section && *k == key)
                .map(|(_, _, kind)| *kind);
            if !known.contains_key(&key) && optional_type.is_none() {
                let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
                names.extend(
                    OPTIONAL_KEYS
                        .iter()
                        .filter(|(s, _, _)| *s == section)
                        .map(|(_, k, _)| *k),
                );
                return Err(format!(
                    "{}: unknown key {section}.{key}{}",
                    origin.at(&section, Some(&key)),
                    did_you_mean(&key, &names)
                ));
            }
            let value = coerce(known.get(&key), value);
            let expected = known
                .get(&key)
                .map_or(optional_type, |v| Some(v.type_str()));
            if let Some(problem) = expected.and_then(|expected| wrong_type(expected, &value)) {
                return Err(format!(
                    "{}: {section}.{key}: {problem}",
                    origin.at(&section, Some(&key))
                ));
            }
            known.insert(key, value);
        }
    }
    Ok(())
}

/// Integers where floats are expected (`alpha = 32`) become floats.
fn coerce(default: Option<&Value>, value: Value) -> Value {
    match (default, value) {
        (Some(Value::Float(_)), Value::Integer(i)) => Value::Float(i as f64),
        (_, value) => value,
    }
}

/// What is wrong with `value` where a value of TOML type `expected` goes
/// (every integer setting counts something, so none is negative).
fn wrong_type(expected: &str, value: &Value) -> Option<String> {
    let found = match value {
        Value::String(s) => format!("the string {s:?}"),
        other => format!("{} {other}", other.type_str()),
    };
    match (expected, value) {
        ("integer", Value::Integer(i)) if *i < 0 => {
            Some(format!("expected a whole number, 0 or more; found {i}"))
        }
        (expected, value) if value.type_str() != expected => {
            let wanted = match expected {
                "integer" => "a whole number",
                "float" => "a number",
                "boolean" => "true or false",
                "string" => "a string (in quotes)",
                "array" => "a list ([...])",
                other => other,
            };
            Some(format!("expected {wanted}, found {found}"))
        }
        _ => None,
    }
}

fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map_or(String::new(), |(_, c)| format!("; did you mean `{c}`?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_and_overrides() {
        let f = write("[model]\nname = \"m\"\n[data]\ntrain = \"d.jsonl\"\n[lora]\nalpha = 16\n");
        let c = TrainConfig::load(
            Some(f.path()),
            &[
                "training.lr=1e-4".into(),
                "data.train_on_inputs=true".into(),
            ],
        )
        .unwrap();
        assert_eq!((c.lora.r, c.lora.alpha, c.lora.dropout), (16, 16.0, 0.05));
        assert_eq!(c.lora.targets.len(), 7);
        assert_eq!(
            (c.training.lr, c.training.epochs, c.training.grad_accum),
            (1e-4, 3, 4)
        );
        assert_eq!(
            (
                c.training.eval_every,
                c.training.checkpoint_every,
                c.training.keep_checkpoints
            ),
            (50, 100, 3)
        );
        assert!(c.data.train_on_inputs);
        assert_eq!(c.training.schedule, "cosine");
        let again = TrainConfig::load(Some(write(&c.to_toml()).path()), &[]).unwrap();
        assert_eq!(again, c, "the resolved config reads back the same");
    }

    #[test]
    fn a_gpu_run_is_bf16_unless_the_config_says_otherwise() {
        let load = |sets: &[&str]| {
            let mut sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            sets.extend(["model.name=m".into(), "data.train=d.jsonl".into()]);
            TrainConfig::load(None, &sets).unwrap().model.dtype
        };
        assert_eq!(load(&[]), "f32");
        assert_eq!(load(&["model.device=cuda"]), "bf16");
        assert_eq!(load(&["model.device=cuda", "model.dtype=f32"]), "f32");
        let f = write(
            "[model]\nname = \"m\"\ndevice = \"cuda\"\ndtype = \"f32\"\n[data]\ntrain = \"d.jsonl\"\n",
        );
        assert_eq!(
            TrainConfig::load(Some(f.path()), &[]).unwrap().model.dtype,
            "f32"
        );
    }

    #[test]
    fn unknown_keys_suggest_and_bad_values_name_the_key() {
        let f =
            write("[model]\nname = \"m\"\n[data]\ntrain = \"d\"\n[training]\nlearning_rat = 1\n");
        let e = TrainConfig::load(Some(f.path()), &[]).unwrap_err();
        assert!(e.contains("unknown key training.learning_rat"), "{e}");
        let e = TrainConfig::load(Some(f.path()), &[]).unwrap_err();
        assert!(!e.is_empty());
        let ok = write("[model]\nname = \"m\"\n[data]\ntrain = \"d\"\n");
        let e = TrainConfig::load(Some(ok.path()), &["training.epoch=2".into()]).unwrap_err();
        assert!(e.contains("did you mean `epochs`"), "{e}");
        let e = TrainConfig::load(
            Some(ok.path()),
            &["lora.dropout=1.5".into(), "training.schedule=step".into()],
        )
        .unwrap_err();
        assert!(
            e.contains("lora.dropout 1.5: must be in [0, 1)")
                && e.contains("training.schedule `step`"),
            "{e}"
        );
        let e =
            TrainConfig::load(Some(ok.path()), &["lora.targets=[\"qproj\"]".into()]).unwrap_err();
        assert!(e.contains("unknown LoRA target `qproj`"), "{e}");
    }

    #[test]
    fn wrong_types_name_file_line_key_and_type() {
        let f = write(
            "[model]\nname = \"m\"\n[data]\ntrain = \"d\"\n[training]\nepochs = 2\nlr = \"fast\"\n",
        );
        let e = TrainConfig::load(Some(f.path()), &[]).unwrap_err();
        let expected = format!(
            "{}:7: training.lr: expected a number, found the string \"fast\"",
            f.path().display()
        );
        assert_eq!(e, expected);
        let ok = write("[model]\nname = \"m\"\n[data]\ntrain = \"d\"\n");
        let e = TrainConfig::load(Some(ok.path()), &["lora.r=-4".into()]).unwrap_err();
        assert_eq!(
            e,
            "--set: lora.r: expected a whole number, 0 or more; found -4"
        );
        let e = TrainConfig::load(Some(ok.path()), &["data.packing=yes".into()]).unwrap_err();
        assert!(
            e.contains("data.packing: expected true or false, found the string \"yes\""),
            "{e}"
        );
        let e =
            TrainConfig::load(Some(ok.path()), &["training.warmup_steps=1.5".into()]).unwrap_err();
        assert!(
            e.contains("training.warmup_steps: expected a whole number, found float 1.5"),
            "{e}"
        );
    }

    #[test]
    fn gradient_checkpointing_is_off_unless_set_and_takes_a_flag() {
        let ok = write("[model]\nname = \"m\"\n[data]\ntrain = \"d\"\n");
        let load = |set: &str| TrainConfig::load(Some(ok.path()), &[set.into()]);
        assert!(!load("training.lr=1e-3").unwrap().training.checkpointing());
        let on = load("training.gradient_checkpointing=true").unwrap();
        assert!(on.training.checkpointing());
        let again = TrainConfig::load(Some(write(&on.to_toml()).path()), &[]).unwrap();
        assert_eq!(again, on, "the setting reads back from a run's config");
        let e = load("training.gradient_checkpointing=1").unwrap_err();
        assert_eq!(
            e,
            "--set: training.gradient_checkpointing: expected true or false, found integer 1"
        );
    }
}
