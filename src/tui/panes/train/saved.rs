//! The last Train form per model and dataset, kept in the runs folder
//! (`.forms/`), so edits survive a restart. A saved form is a complete
//! training config, the kind `tunebench train --config` reads; it never
//! replaces the file the user named with `--config`.

use super::TrainPane;
use super::form::Form;
use crate::data::store::atomic_write;
use crate::train::config::TrainConfig;
use crate::tui::action::{Effect, Notice};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Folder of saved forms inside the runs folder.
const FOLDER: &str = ".forms";

/// Where the form for `model` on `data` is kept: a readable name plus a
/// hash of both (two datasets of the same name in different folders).
pub fn path(runs_dir: &Path, model: &str, data: &Path) -> PathBuf {
    let data = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
    let key = format!("{model}\n{}", data.display());
    let model_name = model.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let data_name = data
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    let name = format!(
        "{}--{}-{:016x}.toml",
        clean(model_name),
        clean(&data_name),
        fnv1a(key.as_bytes())
    );
    runs_dir.join(FOLDER).join(name)
}

/// Writes `config` atomically to `file`, creating the folder.
pub fn save(file: &Path, config: &TrainConfig) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("saving the form to {}: {e}", file.display());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let text = format!(
        "# The workbench's last Train form for {} on {}.\n# Delete this file to start from the defaults again.\n\n{}",
        config.model.name,
        config.data.train,
        config.to_toml()
    );
    atomic_write(file, |out: &mut dyn Write| out.write_all(text.as_bytes())).map_err(fail)
}

impl TrainPane {
    /// Another model or dataset: the form last used with them, else the
    /// current form pointed at them.
    pub(super) fn switch_form(&mut self) {
        let last = path(&self.setup.runs_dir, &self.setup.model, &self.setup.data);
        if last.is_file() {
            let label = format!("last form ({})", last.display());
            self.form = Form::with_base(&self.setup, Some((last, label)));
        } else {
            self.form
                .set_text("data.train", &self.setup.data.to_string_lossy());
            self.form.set_text("model.name", &self.setup.model);
        }
        self.kept_form = self.form.config.as_ref().ok().map(TrainConfig::to_toml);
    }

    /// Saves the form for its model and dataset when the user changed it
    /// to a valid config (a form with an error waits until it is fixed).
    pub(super) fn keep_form(&mut self) -> Vec<Effect> {
        let Ok(config) = &self.form.config else {
            return Vec::new();
        };
        let text = config.to_toml();
        if self.kept_form.as_ref() == Some(&text) {
            return Vec::new();
        }
        self.kept_form = Some(text);
        let file = path(&self.setup.runs_dir, &self.setup.model, &self.setup.data);
        match save(&file, config) {
            Ok(()) => Vec::new(),
            Err(e) => vec![Notice::error(e)],
        }
    }
}

/// A file-name-safe version of `s`.
fn clean(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                true => c,
                false => '-',
            },
        )
        .collect();
    cleaned.trim_matches('-').to_string()
}

/// 64-bit FNV-1a: stable across Rust versions (unlike `DefaultHasher`), so
/// a saved form is found again after an upgrade.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Msg, TrainSetup, form};
    use super::*;
    use crate::tui::panes::Pane;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn setup(runs: &Path, config: Option<PathBuf>) -> TrainSetup {
        TrainSetup {
            runs_dir: runs.to_path_buf(),
            model: "HuggingFaceTB/SmolLM2-135M-Instruct".into(),
            data: PathBuf::from("sample-data/chat_small.jsonl"),
            config,
            sample_config: None,
        }
    }

    /// Types `text` into field `key` and applies it, as a user would.
    fn edit(pane: &mut TrainPane, key: &str, text: &str) {
        let index = form::FIELDS.iter().position(|f| f.key == key).unwrap();
        pane.form.select(index);
        let press = |pane: &mut TrainPane, code, modifiers| {
            pane.key(KeyEvent::new(code, modifiers));
        };
        press(pane, KeyCode::Enter, KeyModifiers::NONE);
        press(pane, KeyCode::Char('u'), KeyModifiers::CONTROL);
        for c in text.chars() {
            press(pane, KeyCode::Char(c), KeyModifiers::NONE);
        }
        press(pane, KeyCode::Enter, KeyModifiers::NONE);
    }

    #[test]
    fn a_real_model_starts_from_the_defaults_the_tiny_one_from_its_sample() {
        let runs = tempfile::tempdir().unwrap();
        let pane = TrainPane::new(setup(runs.path(), None));
        assert_eq!(pane.form.source, "defaults");
        assert_eq!(pane.form.value("training.lr"), Some("0.0002"));
        assert_eq!(pane.form.value("training.epochs"), Some("3"));
        assert_eq!(pane.form.value("lora.r"), Some("16"));

        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sample = root.join("sample-data/tiny-train.toml");
        let tiny = TrainPane::new(TrainSetup {
            sample_config: Some(sample.clone()),
            ..setup(runs.path(), None)
        });
        assert_eq!(tiny.form.source, sample.display().to_string());
        assert_eq!(tiny.form.value("lora.r"), Some("32"));
    }

    #[test]
    fn form_edits_survive_a_restart_per_model_and_dataset() {
        let runs = tempfile::tempdir().unwrap();
        let mut pane = TrainPane::new(setup(runs.path(), None));
        assert!(!runs.path().join(FOLDER).exists(), "opening writes nothing");
        edit(&mut pane, "training.lr", "5e-5");
        edit(&mut pane, "data.max_seq_len", "512");

        let lr = |pane: &TrainPane| pane.form.config.as_ref().unwrap().training.lr;
        let again = TrainPane::new(setup(runs.path(), None));
        assert_eq!(lr(&again), 5e-5);
        assert_eq!(again.form.value("data.max_seq_len"), Some("512"));
        assert!(
            again.form.source.starts_with("last form ("),
            "{}",
            again.form.source
        );
        assert_eq!(again.form.config, pane.form.config);

        // Another dataset has a form of its own; coming back restores this one.
        pane.message(Msg::Dataset(PathBuf::from("sample-data/other.jsonl")));
        assert_eq!(lr(&pane), 5e-5, "carried over");
        edit(&mut pane, "training.lr", "1e-4");
        pane.message(Msg::Dataset(PathBuf::from("sample-data/chat_small.jsonl")));
        assert_eq!(lr(&pane), 5e-5);
        assert_eq!(
            pane.form.value("data.train"),
            Some("sample-data/chat_small.jsonl")
        );
        pane.message(Msg::Dataset(PathBuf::from("sample-data/other.jsonl")));
        assert_eq!(lr(&pane), 1e-4);
    }

    #[test]
    fn the_users_config_file_is_the_base_and_never_written() {
        let runs = tempfile::tempdir().unwrap();
        let file = runs.path().join("mine.toml");
        let text = "[training]\nlr = 1e-3\n";
        std::fs::write(&file, text).unwrap();
        let mut pane = TrainPane::new(setup(runs.path(), Some(file.clone())));
        assert_eq!(pane.form.source, file.display().to_string());
        edit(&mut pane, "training.lr", "7e-4");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        // --config names the base even when a saved form exists.
        let lr = |pane: &TrainPane| pane.form.config.as_ref().unwrap().training.lr;
        let again = TrainPane::new(setup(runs.path(), Some(file.clone())));
        assert_eq!(lr(&again), 1e-3);
        let without = TrainPane::new(setup(runs.path(), None));
        assert_eq!(lr(&without), 7e-4);
    }

    #[test]
    fn one_file_per_model_and_dataset() {
        let runs = Path::new("runs");
        let a = path(
            runs,
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            Path::new("d/x.jsonl"),
        );
        assert!(a.starts_with("runs/.forms"));
        let name = a.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with("SmolLM2-135M-Instruct--x-"), "{name}");
        assert_ne!(a, path(runs, "other", Path::new("d/x.jsonl")));
        assert_ne!(
            a,
            path(
                runs,
                "HuggingFaceTB/SmolLM2-135M-Instruct",
                Path::new("e/x.jsonl")
            )
        );
        assert_eq!(
            a,
            path(
                runs,
                "HuggingFaceTB/SmolLM2-135M-Instruct",
                Path::new("d/x.jsonl")
            )
        );
    }
}
