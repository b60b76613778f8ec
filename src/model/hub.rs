//! Where a model's files are: a local directory or GGUF file, a model
//! Ollama has pulled, the standard Hugging Face cache, or (when the network
//! allows) a download into that cache.

use super::ModelError;
use std::path::{Path, PathBuf};

/// Files a model directory may hold besides its weights.
const SMALL_FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// The hub cache directory: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("huggingface").join("hub")
}

/// Whether `name` has the shape of a hub repo id (`org/name`) rather than a
/// local path.
pub fn looks_like_repo_id(name: &str) -> bool {
    name.split('/').count() == 2 && !name.starts_with('.') && !name.starts_with('/')
}

/// Where a model's weights, config and tokenizer are read from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A Hugging Face layout: config.json, tokenizer.json, safetensors.
    Dir(PathBuf),
    /// One GGUF file holding all of them.
    Gguf(PathBuf),
}

impl ModelSource {
    pub fn path(&self) -> &Path {
        match self {
            ModelSource::Dir(path) | ModelSource::Gguf(path) => path,
        }
    }
}

/// The model `model` names: `ollama:NAME[:TAG]`, a GGUF file, a directory,
/// else the cached snapshot of the repo id, downloaded if needed.
pub fn resolve(model: &str) -> Result<ModelSource, ModelError> {
    if let Some(name) = model.strip_prefix(super::ollama::PREFIX) {
        return super::ollama::resolve(name).map(ModelSource::Gguf);
    }
    let local = Path::new(model);
    if local.is_dir() {
        return Ok(ModelSource::Dir(local.to_path_buf()));
    }
    if local.is_file() {
        if super::gguf::is_gguf(local) {
            return Ok(ModelSource::Gguf(local.to_path_buf()));
        }
        return Err(ModelError::File {
            path: model.to_string(),
            message: "not a GGUF file or a model directory".into(),
        });
    }
    resolve_repo(model).map(ModelSource::Dir)
}

/// The cached snapshot of a repo id, downloaded if needed.
fn resolve_repo(model: &str) -> Result<PathBuf, ModelError> {
    let repo_dir = cache_dir().join(format!("models--{}", model.replace('/', "--")));
    if let Some(dir) = cached_snapshot(&repo_dir) {
        return Ok(dir);
    }
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
    if offline || !looks_like_repo_id(model) {
        return Err(not_found(model, &repo_dir, None));
    }
    download(model).map_err(|e| not_found(model, &repo_dir, Some(e)))
}

fn not_found(model: &str, repo_dir: &Path, why: Option<String>) -> ModelError {
    ModelError::NotFound {
        repo: model.to_string(),
        searched: match why {
            Some(why) => format!("{}; download failed: {why}", repo_dir.display()),
            None => repo_dir.display().to_string(),
        },
    }
}

/// The snapshot `refs/main` points at, if it holds a config.
fn cached_snapshot(repo_dir: &Path) -> Option<PathBuf> {
    let hash = std::fs::read_to_string(repo_dir.join("refs").join("main")).ok()?;
    let dir = repo_dir.join("snapshots").join(hash.trim());
    dir.join("config.json").exists().then_some(dir)
}

/// Downloads config, tokenizer and safetensors weights into the cache.
fn download(model: &str) -> Result<PathBuf, String> {
    use hf_hub::api::sync::ApiBuilder;
    let api = ApiBuilder::from_env()
        .with_cache_dir(cache_dir())
        .with_progress(true)
        .build()
        .map_err(|e| e.to_string())?;
    let repo = api.model(model.to_string());
    let config = repo.get("config.json").map_err(|e| e.to_string())?;
    for name in SMALL_FILES.iter().skip(1) {
        // Optional files: a repo may lack any of them.
        let _ = repo.get(name);
    }
    match repo.get("model.safetensors.index.json") {
        Ok(index) => {
            let text = std::fs::read_to_string(&index).map_err(|e| e.to_string())?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let mut shards: Vec<&str> = value
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| m.values().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for shard in shards {
                repo.get(shard).map_err(|e| e.to_string())?;
            }
        }
        Err(_) => {
            repo.get("model.safetensors").map_err(|e| e.to_string())?;
        }
    }
    Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// What [`resolve`] finds without the network: an `ollama:` name, a GGUF
/// file, a model directory or a cached snapshot; never a download.
pub fn resolve_offline(model: &str) -> Option<ModelSource> {
    if let Some(name) = model.strip_prefix(super::ollama::PREFIX) {
        return super::ollama::resolve(name).ok().map(ModelSource::Gguf);
    }
    let local = Path::new(model);
    if local.is_file() && super::gguf::is_gguf(local) {
        return Some(ModelSource::Gguf(local.to_path_buf()));
    }
    resolve_local(model).map(ModelSource::Dir)
}

/// A model directory, or a repo id's snapshot already in the Hugging Face
/// cache; never a download.
pub fn resolve_local(model: &str) -> Option<PathBuf> {
    let local = Path::new(model);
    if local.join("config.json").exists() {
        return Some(local.to_path_buf());
    }
    let repo = cache_dir().join(format!("models--{}", model.replace('/', "--")));
    let hash = std::fs::read_to_string(repo.join("refs").join("main")).ok()?;
    let dir = repo.join("snapshots").join(hash.trim());
    dir.join("config.json").exists().then_some(dir)
}
