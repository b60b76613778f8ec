//! The run form: the main hyperparameters as editable text, on top of a base
//! configuration (the config file, or the defaults, with the workbench's
//! model and dataset). Every change is checked by the config's own
//! validator, so the form says exactly what `tunebench train` would.

use super::{TrainSetup, saved};
use crate::train::config::TrainConfig;
use crate::tui::panes::esc_guard::EscGuard;
use crate::tui::panes::line_edit::LineEdit;
use std::path::PathBuf;
use toml::{Table, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    Number,
    /// A number that may be left empty (unset).
    OptionalNumber,
    Flag,
    Choice(&'static [&'static str]),
    /// Comma-separated names.
    List,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// `section.key` in the config.
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
}

const fn field(key: &'static str, label: &'static str, kind: Kind) -> Field {
    Field { key, label, kind }
}

/// A choice that leaves its key unset.
const UNSET_CHOICE: &str = "none";

pub const FIELDS: [Field; 23] = [
    field("model.name", "model", Kind::Text),
    field("data.train", "dataset", Kind::Text),
    field("model.device", "device", Kind::Choice(&["cpu", "cuda"])),
    field("model.dtype", "dtype", Kind::Choice(&["f32", "bf16"])),
    field(
        "model.quantize",
        "base quantized",
        Kind::Choice(&[UNSET_CHOICE, "keep", "q8_0", "q4_k", "q4_0"]),
    ),
    field("lora.r", "lora r", Kind::Number),
    field("lora.alpha", "lora alpha", Kind::Number),
    field("lora.dropout", "lora dropout", Kind::Number),
    field("lora.targets", "targets", Kind::List),
    field("training.lr", "learning rate", Kind::Number),
    field(
        "training.schedule",
        "schedule",
        Kind::Choice(&["constant", "linear", "cosine"]),
    ),
    field("training.warmup_ratio", "warmup ratio", Kind::Number),
    field(
        "training.warmup_steps",
        "warmup steps",
        Kind::OptionalNumber,
    ),
    field("training.epochs", "epochs", Kind::Number),
    field("training.max_steps", "max steps", Kind::Number),
    field("training.batch_size", "batch size", Kind::Number),
    field("training.grad_accum", "grad accum", Kind::Number),
    field("data.max_seq_len", "max seq len", Kind::Number),
    field("data.eval_split", "eval split", Kind::Number),
    field("training.eval_every", "eval every", Kind::Number),
    field(
        "training.checkpoint_every",
        "checkpoint every",
        Kind::Number,
    ),
    field("data.packing", "packing", Kind::Flag),
    field("training.seed", "seed", Kind::Number),
];

/// A field being edited: the shared one-line editor, and the text it
/// started from.
#[derive(Debug, Clone, PartialEq)]
pub struct Editor {
    pub line: LineEdit,
    original: String,
    pub esc: EscGuard,
}

impl Editor {
    fn new(text: &str) -> Editor {
        Editor {
            line: LineEdit::new(text),
            original: text.to_string(),
            esc: EscGuard::default(),
        }
    }

    pub fn changed(&self) -> bool {
        self.line.text() != self.original
    }
}

pub struct Form {
    base: TrainConfig,
    /// One text per field, as shown and edited.
    pub values: Vec<String>,
    pub selected: usize,
    pub editor: Option<Editor>,
    /// Why the last edit was refused (the validator's words).
    pub error: Option<String>,
    /// Where the base configuration came from ("defaults", a file, "last
    /// form (FILE)"), and why not, if it failed.
    pub source: String,
    /// The whole form, validated after every change.
    pub config: Result<TrainConfig, String>,
}

impl Form {
    /// The form for the workbench's model and dataset, on the first base
    /// there is (see [`base_file`]).
    pub fn new(setup: &TrainSetup) -> Form {
        Form::with_base(setup, base_file(setup))
    }

    /// The form on `base` (a config file and how the form names it; None:
    /// the defaults), with the workbench's model and dataset.
    pub fn with_base(setup: &TrainSetup, base: Option<(PathBuf, String)>) -> Form {
        let pinned = vec![
            set("model.name", &Value::String(setup.model.clone())),
            set(
                "data.train",
                &Value::String(setup.data.to_string_lossy().into_owned()),
            ),
        ];
        let file = base.as_ref().map(|(file, _)| file.as_path());
        let (base, source) = match TrainConfig::load(file, &pinned) {
            Ok(config) => {
                let label = base.map_or("defaults".to_string(), |(_, label)| label);
                (config, label)
            }
            Err(error) => {
                let fallback = TrainConfig::load(None, &pinned)
                    .or_else(|_| {
                        TrainConfig::load(
                            None,
                            &["model.name=\"?\"".into(), "data.train=\"?\"".into()],
                        )
                    })
                    .expect("the built-in defaults are valid");
                let first = error.lines().next().unwrap_or("").to_string();
                (fallback, format!("defaults ({first})"))
            }
        };
        let values = values_of(&base);
        let mut form = Form {
            base,
            values,
            selected: 0,
            editor: None,
            error: None,
            source,
            config: Err(String::new()),
        };
        form.config = form.validate();
        form
    }

    pub fn field(&self) -> &'static Field {
        &FIELDS[self.selected]
    }

    /// Sets a field from outside the form and validates the whole again.
    pub fn set_text(&mut self, key: &str, text: &str) {
        if let Some(i) = FIELDS.iter().position(|f| f.key == key) {
            self.values[i] = text.to_string();
            self.config = self.validate();
        }
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        FIELDS
            .iter()
            .position(|f| f.key == key)
            .map(|i| self.values[i].as_str())
    }

    pub fn select(&mut self, index: usize) {
        self.selected = index.min(FIELDS.len() - 1);
        self.error = None;
    }

    pub fn move_by(&mut self, delta: isize) {
        let last = FIELDS.len() as isize - 1;
        self.select((self.selected as isize + delta).clamp(0, last) as usize);
    }

    /// Enter on a field: flags toggle, choices cycle, the rest open an editor.
    pub fn activate(&mut self) {
        match self.field().kind {
            Kind::Flag | Kind::Choice(_) => self.cycle(1),
            _ => {
                self.editor = Some(Editor::new(&self.values[self.selected]));
                self.error = None;
            }
        }
    }

    /// Next (or previous) value of a flag or choice.
    pub fn cycle(&mut self, step: isize) {
        let current = &self.values[self.selected];
        let next = match self.field().kind {
            Kind::Flag => flag_text(current != "on").to_string(),
            Kind::Choice(options) => {
                // Only the devices this binary reaches (cuda with a GPU).
                let options = if self.field().key == "model.device" {
                    crate::model::device::choices()
                } else {
                    options
                };
                let at = options.iter().position(|o| o == current).unwrap_or(0) as isize;
                let n = options.len() as isize;
                options[((at + step) % n + n) as usize % options.len()].to_string()
            }
            _ => return,
        };
        self.values[self.selected] = next;
        self.config = self.validate();
    }

    pub fn cancel_edit(&mut self) {
        self.editor = None;
        self.error = None;
    }

    /// Applies the editor's text if it adds no validation error; otherwise
    /// keeps editing and says why. Returns whether it was applied.
    pub fn commit_edit(&mut self) -> bool {
        let Some(editor) = self.editor.clone() else {
            return false;
        };
        let before = error_lines(&self.config);
        let old = std::mem::replace(
            &mut self.values[self.selected],
            editor.line.text().trim().into(),
        );
        let after = self.validate();
        let key = self.field().key;
        // The form's values reach the config as `--set`s, which the user
        // never typed; an error that names no key was caused by this edit.
        let new: Vec<String> = error_lines(&after)
            .into_iter()
            .filter(|line| !before.contains(line))
            .map(|line| line.trim_start_matches("--set: ").to_string())
            .map(|line| match line.contains(key) {
                true => line,
                false => format!("{key}: {}", line.trim_start_matches("configuration: ")),
            })
            .collect();
        if new.is_empty() {
            self.config = after;
            self.editor = None;
            self.error = None;
            true
        } else {
            self.values[self.selected] = old;
            self.error = Some(new.join("\n"));
            false
        }
    }

    /// The form's values as `--set` overrides.
    pub fn sets(&self) -> Vec<String> {
        FIELDS
            .iter()
            .zip(&self.values)
            .filter_map(|(field, text)| {
                let value = match field.kind {
                    Kind::Choice(_) if text == UNSET_CHOICE => return None,
                    Kind::Text | Kind::Choice(_) => Value::String(text.clone()),
                    Kind::Flag => Value::Boolean(text == "on"),
                    Kind::List => Value::Array(
                        text.split([',', ' '])
                            .filter(|s| !s.is_empty())
                            .map(|s| Value::String(s.to_string()))
                            .collect(),
                    ),
                    Kind::OptionalNumber if text.trim().is_empty() => return None,
                    Kind::Number | Kind::OptionalNumber => {
                        return Some(format!("{}={}", field.key, text.trim()));
                    }
                };
                Some(set(field.key, &value))
            })
            .collect()
    }

    /// The base configuration file a launch writes: everything the form does
    /// not show, with the form's optional keys left unset (the `--set`
    /// overrides give them when the form does).
    pub fn base_text(&self) -> String {
        let mut base = self.base.clone();
        base.training.warmup_steps = None;
        base.model.quantize = None;
        base.to_toml()
    }

    /// The configuration the form describes, or the validator's message.
    pub fn validate(&self) -> Result<TrainConfig, String> {
        let table: Table = toml::from_str(&self.base_text()).map_err(|e| e.to_string())?;
        let mut sets: Vec<String> = table
            .iter()
            .filter_map(|(section, keys)| Some((section, keys.as_table()?)))
            .flat_map(|(section, keys)| {
                keys.iter()
                    .map(move |(key, value)| set(&format!("{section}.{key}"), value))
            })
            .collect();
        sets.extend(self.sets());
        let config = TrainConfig::load(None, &sets)?;
        if config.model.device == "cuda" && !crate::model::device::cuda_available() {
            crate::model::device::parse("cuda").map_err(|e| format!("model.device {e}"))?;
        }
        Ok(config)
    }
}

/// What the form starts from, first found: the file named with `--config`;
/// the form last used with this model and dataset; the sample config of
/// the built-in model; else (None) the defaults.
fn base_file(setup: &TrainSetup) -> Option<(PathBuf, String)> {
    let named = |file: &PathBuf| (file.clone(), file.display().to_string());
    if let Some(file) = &setup.config {
        return Some(named(file));
    }
    let last = saved::path(&setup.runs_dir, &setup.model, &setup.data);
    if last.is_file() {
        let label = format!("last form ({})", last.display());
        return Some((last, label));
    }
    setup.sample_config.as_ref().map(named)
}

fn set(key: &str, value: &Value) -> String {
    format!("{key}={value}")
}

fn flag_text(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn error_lines(config: &Result<TrainConfig, String>) -> Vec<String> {
    match config {
        Ok(_) => Vec::new(),
        Err(e) => e.lines().map(str::to_string).collect(),
    }
}

/// Each field's text in `config`.
fn values_of(config: &TrainConfig) -> Vec<String> {
    let table = Table::try_from(config).unwrap_or_default();
    FIELDS
        .iter()
        .map(|field| {
            let (section, key) = field.key.split_once('.').unwrap_or(("", field.key));
            let value = table
                .get(section)
                .and_then(Value::as_table)
                .and_then(|s| s.get(key));
            match (value, field.kind) {
                (None, Kind::Choice(options)) => options[0].to_string(),
                (None, _) => String::new(),
                (Some(Value::String(s)), _) => s.clone(),
                (Some(Value::Boolean(b)), _) => flag_text(*b).to_string(),
                (Some(Value::Array(items)), _) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                (Some(other), _) => other.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn setup(config: Option<PathBuf>) -> TrainSetup {
        TrainSetup {
            runs_dir: PathBuf::from("runs"),
            model: "models/tiny".into(),
            data: PathBuf::from("sample-data/fastapi_projects.jsonl"),
            config,
            sample_config: None,
        }
    }

    fn index(key: &str) -> usize {
        FIELDS.iter().position(|f| f.key == key).unwrap()
    }

    #[test]
    fn prefilled_from_the_file_with_the_workbench_model_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[model]\nname = \"other\"\n[lora]\nr = 32\nalpha = 64\n[training]\nlr = 1e-2\nweight_decay = 0.1\nwarmup_steps = 5\n",
        )
        .unwrap();
        let form = Form::new(&setup(Some(file.clone())));
        assert_eq!(form.value("model.name"), Some("models/tiny"));
        assert_eq!(
            form.value("data.train"),
            Some("sample-data/fastapi_projects.jsonl")
        );
        assert_eq!(form.value("lora.r"), Some("32"));
        assert_eq!(form.value("lora.alpha"), Some("64.0"));
        assert_eq!(form.value("training.lr"), Some("0.01"));
        assert_eq!(form.value("training.warmup_steps"), Some("5"));
        assert_eq!(form.value("data.packing"), Some("off"));
        assert!(
            form.value("lora.targets")
                .unwrap()
                .starts_with("q_proj, k_proj")
        );
        let config = form.config.clone().unwrap();
        assert_eq!(
            config.training.weight_decay, 0.1,
            "keys the form lacks stay"
        );
        assert_eq!(config.training.warmup_steps, Some(5));
        assert!(form.source.contains("c.toml"));

        // What a launch passes (file + --set) resolves to the same config.
        let written = dir.path().join("base.toml");
        std::fs::write(&written, form.base_text()).unwrap();
        let launched = TrainConfig::load(Some(&written), &form.sets()).unwrap();
        assert_eq!(launched, config);
    }

    #[test]
    fn defaults_without_a_file_and_a_broken_file_says_so() {
        let form = Form::new(&setup(None));
        assert_eq!(form.value("lora.r"), Some("16"));
        assert_eq!(form.source, "defaults");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[training]\nlearning_rate = 1\n").unwrap();
        let form = Form::new(&setup(Some(file)));
        assert!(
            form.source.contains("unknown key training.learning_rate"),
            "{}",
            form.source
        );
        assert!(form.config.is_ok());
    }

    #[test]
    fn invalid_edits_keep_editing_with_the_validators_message() {
        let mut form = Form::new(&setup(None));
        form.select(index("lora.dropout"));
        form.activate();
        form.editor.as_mut().unwrap().line.set_text("1.5");
        assert!(!form.commit_edit());
        assert_eq!(
            form.error.as_deref(),
            Some("lora.dropout 1.5: must be in [0, 1)")
        );
        assert!(form.editor.is_some());
        assert_eq!(form.value("lora.dropout"), Some("0.05"));

        form.editor.as_mut().unwrap().line.set_text("abc");
        assert!(!form.commit_edit());
        assert_eq!(
            form.error.as_deref(),
            Some("lora.dropout: expected a number, found the string \"abc\"")
        );

        form.editor.as_mut().unwrap().line.set_text("0.1");
        assert!(form.commit_edit());
        assert_eq!(form.config.as_ref().unwrap().lora.dropout, 0.1);
        assert!(form.sets().contains(&"lora.dropout=0.1".to_string()));
    }

    #[test]
    fn choices_cycle_flags_toggle_lists_split() {
        let mut form = Form::new(&setup(None));
        form.select(index("training.schedule"));
        form.activate();
        assert_eq!(form.value("training.schedule"), Some("constant"));
        form.cycle(-1);
        assert_eq!(form.value("training.schedule"), Some("cosine"));
        form.select(index("data.packing"));
        form.activate();
        assert!(form.config.as_ref().unwrap().data.packing);
        form.select(index("lora.targets"));
        form.activate();
        form.editor.as_mut().unwrap().line.set_text("q_proj,v_proj");
        assert!(form.commit_edit());
        assert_eq!(
            form.config.as_ref().unwrap().lora.targets,
            ["q_proj", "v_proj"]
        );
        form.select(index("training.warmup_steps"));
        form.activate();
        assert!(form.commit_edit(), "empty means unset");
        assert_eq!(form.config.as_ref().unwrap().training.warmup_steps, None);
    }

    #[test]
    fn the_base_quantization_is_a_choice_whose_first_option_leaves_it_unset() {
        let mut form = Form::new(&setup(None));
        let quantize = |form: &Form| form.config.as_ref().unwrap().model.quantize.clone();
        assert_eq!(form.value("model.quantize"), Some("none"));
        assert_eq!(quantize(&form), None);
        form.select(index("model.quantize"));
        form.activate();
        assert_eq!(quantize(&form).as_deref(), Some("keep"));
        assert!(form.sets().contains(&"model.quantize=\"keep\"".to_string()));
        form.cycle(-1);
        assert_eq!(quantize(&form), None);
    }
}
