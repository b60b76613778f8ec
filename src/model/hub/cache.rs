//! The Hugging Face cache as transformers and huggingface_hub lay it out:
//! `models--ORG--NAME/` with `blobs/` (content by hash), `snapshots/COMMIT/`
//! (the repo's files, as links into blobs) and `refs/REVISION` (the commit).

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

/// Where `repo` (`org/name`) lives in the cache.
pub fn repo_dir(repo: &str) -> PathBuf {
    cache_dir().join(format!("models--{}", repo.replace('/', "--")))
}

/// The snapshot `refs/main` points at, when it holds a whole model: the
/// config and every weight file (a download cut short leaves the small
/// files without the weights, and that is not a model yet).
pub fn complete_snapshot(repo_dir: &Path) -> Option<PathBuf> {
    let hash = std::fs::read_to_string(repo_dir.join("refs").join("main")).ok()?;
    let dir = repo_dir.join("snapshots").join(hash.trim());
    (dir.join("config.json").is_file() && has_all_weights(&dir)).then_some(dir)
}

/// Whether `dir` holds `model.safetensors`, or the index and every shard it
/// names (`is_file` follows the snapshot's links, so a link to a missing
/// blob does not count).
pub fn has_all_weights(dir: &Path) -> bool {
    if dir.join("model.safetensors").is_file() {
        return true;
    }
    match crate::model::weights::shard_names(&dir.join("model.safetensors.index.json")) {
        Ok(shards) => !shards.is_empty() && shards.iter().all(|s| dir.join(s).is_file()),
        Err(_) => false,
    }
}

/// A model in the cache, as the model picker lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedModel {
    pub repo: String,
    /// Bytes of its blobs (every revision kept, as `du` would count).
    pub bytes: u64,
    /// Whether the snapshot `main` points at holds the whole model.
    pub complete: bool,
}

/// Every model repo in the cache, sorted by name.
pub fn cached_models() -> Vec<CachedModel> {
    let Ok(entries) = std::fs::read_dir(cache_dir()) else {
        return Vec::new();
    };
    let mut models: Vec<CachedModel> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let repo = name.strip_prefix("models--")?.replacen("--", "/", 1);
            let dir = entry.path();
            Some(CachedModel {
                repo,
                bytes: dir_bytes(&dir.join("blobs")),
                complete: complete_snapshot(&dir).is_some(),
            })
        })
        .collect();
    models.sort_by(|a, b| a.repo.cmp(&b.repo));
    models
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_snapshot(root: &Path, files: &[(&str, &str)]) -> PathBuf {
        let repo = root.join("models--org--m");
        let snap = repo.join("snapshots").join("abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc").unwrap();
        for (name, text) in files {
            std::fs::write(snap.join(name), text).unwrap();
        }
        repo
    }

    #[test]
    fn a_snapshot_without_its_weights_is_not_complete() {
        let dir = tempfile::tempdir().unwrap();
        let repo = write_snapshot(dir.path(), &[("config.json", "{}")]);
        assert_eq!(complete_snapshot(&repo), None);
        std::fs::write(repo.join("snapshots/abc/model.safetensors"), "w").unwrap();
        assert!(complete_snapshot(&repo).is_some());
    }

    #[test]
    fn a_sharded_snapshot_needs_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        let index = r#"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#;
        let repo = write_snapshot(
            dir.path(),
            &[
                ("config.json", "{}"),
                ("model.safetensors.index.json", index),
                ("model-00001-of-00002.safetensors", "1"),
            ],
        );
        assert_eq!(complete_snapshot(&repo), None);
        std::fs::write(
            repo.join("snapshots/abc/model-00002-of-00002.safetensors"),
            "2",
        )
        .unwrap();
        assert!(complete_snapshot(&repo).is_some());
    }
}
