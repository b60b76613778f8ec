//! What the workbench opens with: the dataset, model, adapter and runs
//! directory the user named, or the shipped sample data and the built-in tiny
//! model (written once into the user's cache directory).

use super::action::ModelStatus;
use super::app::App;
use super::highlight::Highlighter;
use super::panes::chat::ChatPane;
use super::panes::data::DataPane;
use super::panes::eval::EvalPane;
use super::panes::train::{TrainPane, TrainSetup};
use super::services::Services;
use super::theme::Theme;
use crate::model::LoadOptions;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// `tunebench ui` arguments; every one has a default.
#[derive(Debug, Default, Clone)]
pub struct UiOptions {
    /// A dataset file, or a folder to open its first dataset from.
    pub data: Option<PathBuf>,
    pub model: Option<String>,
    pub adapter: Option<PathBuf>,
    pub runs: Option<PathBuf>,
    /// Training config the Train form starts from.
    pub config: Option<PathBuf>,
    pub theme: Option<String>,
    pub load: LoadOptions,
}

pub struct Start {
    pub app: App,
    pub services: Services,
    pub adapter: Option<PathBuf>,
}

pub fn prepare(options: UiOptions) -> anyhow::Result<Start> {
    let data = resolve_data(options.data.as_deref())?;
    // The shipped config is tuned for the tiny random model (lr 3e-3, 20
    // epochs); a real model starts from the documented defaults instead.
    let (model_name, sample_config) = match options.model {
        Some(name) => (name, None),
        None => (
            builtin_tiny_model()?.to_string_lossy().into_owned(),
            tiny_model_config(),
        ),
    };
    let runs_dir = options.runs.unwrap_or_else(|| PathBuf::from("runs"));
    let themes = Theme::builtin();
    let (themes, theme) = match options.theme {
        None => (themes, 0),
        Some(name) => {
            let chosen = Theme::find(&name)?;
            let index = themes.iter().position(|t| t.name == chosen.name);
            match index {
                Some(i) => (themes, i),
                None => {
                    let mut all = themes;
                    all.push(chosen);
                    let last = all.len() - 1;
                    (all, last)
                }
            }
        }
    };
    let highlighter = Arc::new(Highlighter::default());
    let data_pane = DataPane::open(&data, highlighter, themes[theme].syntax.clone())
        .map_err(anyhow::Error::msg)?;
    let train = TrainPane::new(TrainSetup {
        runs_dir: runs_dir.clone(),
        model: model_name.clone(),
        data: data.clone(),
        config: options.config,
        sample_config,
    });
    let chat = ChatPane::new(runs_dir.clone());
    let eval = EvalPane::new(runs_dir.clone());
    let app = App::new(
        data_pane,
        train,
        chat,
        eval,
        ModelStatus::Loading {
            name: model_name.clone(),
        },
        themes,
        theme,
    );
    let services = Services {
        model: RwLock::new(None),
        model_name: RwLock::new(model_name),
        load_options: options.load,
        exe: std::env::current_exe().context("finding the tunebench executable")?,
        runs_dir,
    };
    Ok(Start {
        app,
        services,
        adapter: options.adapter,
    })
}

/// The dataset to open: the named file, the first dataset in a named
/// folder, ./sample-data's multi-file set, or the shipped copy of it.
fn resolve_data(data: Option<&Path>) -> anyhow::Result<PathBuf> {
    match data {
        Some(path) if path.is_dir() => first_dataset(path),
        Some(path) => {
            anyhow::ensure!(path.exists(), "--data {}: no such file", path.display());
            Ok(path.to_path_buf())
        }
        None => {
            let local = Path::new("sample-data/fastapi_projects.jsonl");
            if local.exists() {
                return Ok(local.to_path_buf());
            }
            let dir = cache_dir()?.join("sample-data");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, bytes) in crate::data::builtin::SAMPLE_FILES {
                let path = dir.join(name);
                if !path.exists() {
                    std::fs::write(&path, bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            Ok(dir.join("fastapi_projects.jsonl"))
        }
    }
}

fn first_dataset(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("jsonl" | "json")
            )
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no .jsonl or .json dataset", dir.display()))
}

/// The sample training config of the built-in tiny model, when the
/// workbench runs from the repository.
fn tiny_model_config() -> Option<PathBuf> {
    let path = PathBuf::from("sample-data/tiny-train.toml");
    path.exists().then_some(path)
}

/// `$XDG_CACHE_HOME/tunebench`, else `~/.cache/tunebench`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; pass --model")?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(base.join("tunebench"))
}

/// The built-in tiny model, written on first use (deterministic, seed 0).
pub fn builtin_tiny_model() -> anyhow::Result<PathBuf> {
    let dir = cache_dir()?.join("tiny-model");
    if dir.join("model.safetensors").exists() {
        return Ok(dir);
    }
    let parent = dir.parent().expect("cache dir has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Written beside and renamed, so an interrupted first start leaves no
    // half-written model behind.
    let temp = parent.join(format!("tiny-model.{}.tmp", std::process::id()));
    crate::model::tiny::init_tiny(&temp, 0, &Default::default())
        .with_context(|| format!("writing the tiny model to {}", temp.display()))?;
    std::fs::rename(&temp, &dir)
        .with_context(|| format!("moving the tiny model to {}", dir.display()))?;
    Ok(dir)
}
