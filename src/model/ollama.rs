//! `ollama:NAME[:TAG]`: the GGUF blob of a model Ollama has pulled, found
//! through its manifest (`OLLAMA_MODELS`, else `~/.ollama/models`).

use super::ModelError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The prefix that names an Ollama model on the command line.
pub const PREFIX: &str = "ollama:";

/// The layer of a manifest that holds the weights.
const MODEL_LAYER: &str = "application/vnd.ollama.image.model";

const REGISTRY: &str = "registry.ollama.ai";

/// Ollama's model store.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OLLAMA_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".ollama").join("models")
}

/// The manifest of `name` (`model`, `model:tag`, `user/model:tag` or
/// `host/user/model:tag`; the tag defaults to `latest`) under `root`.
pub fn manifest_path(root: &Path, name: &str) -> Result<PathBuf, String> {
    let (repo, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    if repo.is_empty() || tag.is_empty() || parts.iter().any(|p| p.is_empty() || *p == "..") {
        return Err(format!(
            "`{PREFIX}{name}` is not a model name (NAME or NAME:TAG)"
        ));
    }
    let mut path = root.join("manifests");
    match parts.as_slice() {
        [model] => path.extend([REGISTRY, "library", model]),
        [user, model] => path.extend([REGISTRY, user, model]),
        [host, user, model] => path.extend([host, user, model]),
        _ => return Err(format!("`{PREFIX}{name}` has too many `/` parts")),
    }
    Ok(path.join(tag))
}

/// The GGUF blob that `name`'s manifest points at.
pub fn resolve(name: &str) -> Result<PathBuf, ModelError> {
    let root = models_dir();
    let manifest = manifest_path(&root, name).map_err(|message| ModelError::File {
        path: root.display().to_string(),
        message,
    })?;
    let error = |message: String| ModelError::File {
        path: manifest.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        error(format!(
            "no Ollama manifest for `{name}` ({e}); pull it with `ollama pull {name}`, or set OLLAMA_MODELS to Ollama's models folder"
        ))
    })?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| error(format!("invalid manifest JSON: {e}")))?;
    let digest = value
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|layer| layer.get("mediaType").and_then(Value::as_str) == Some(MODEL_LAYER))
        .and_then(|layer| layer.get("digest")?.as_str())
        .ok_or_else(|| {
            error(format!(
                "no layer of mediaType `{MODEL_LAYER}` with a digest"
            ))
        })?;
    let file_name = digest.replacen(':', "-", 1);
    if file_name.contains('/') || file_name.contains("..") {
        return Err(error(format!("layer digest `{digest}` is not a blob name")));
    }
    let blob = root.join("blobs").join(file_name);
    if !blob.is_file() {
        return Err(error(format!(
            "the model layer's blob {} is missing",
            blob.display()
        )));
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_manifest_paths() {
        let root = Path::new("/m");
        let path = |name: &str| manifest_path(root, name).map(|p| p.display().to_string());
        let base = "/m/manifests/registry.ollama.ai";
        assert_eq!(
            path("smollm2").unwrap(),
            format!("{base}/library/smollm2/latest")
        );
        assert_eq!(
            path("smollm2:135m").unwrap(),
            format!("{base}/library/smollm2/135m")
        );
        assert_eq!(path("me/tuned:v1").unwrap(), format!("{base}/me/tuned/v1"));
        assert_eq!(
            path("example.com:5000/me/tuned").unwrap(),
            "/m/manifests/example.com:5000/me/tuned/latest"
        );
        for bad in ["", ":tag", "a/../b", "a/b/c/d", "model:"] {
            assert!(path(bad).is_err(), "{bad}");
        }
    }
}
