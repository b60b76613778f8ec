//! Where a model's files are: a local directory, or a repo id resolved through
//! the standard Hugging Face cache layout.

use super::ModelError;
use std::path::{Path, PathBuf};

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

/// A directory holding the model's files.
pub fn resolve(model: &str) -> Result<PathBuf, ModelError> {
    let local = Path::new(model);
    if local.is_dir() {
        return Ok(local.to_path_buf());
    }
    let cache = cache_dir();
    let repo_dir = cache.join(format!("models--{}", model.replace('/', "--")));
    let snapshot = std::fs::read_to_string(repo_dir.join("refs").join("main"))
        .ok()
        .map(|hash| repo_dir.join("snapshots").join(hash.trim()))
        .filter(|dir| dir.is_dir());
    snapshot.ok_or_else(|| ModelError::NotFound {
        repo: model.to_string(),
        searched: repo_dir.display().to_string(),
    })
}
