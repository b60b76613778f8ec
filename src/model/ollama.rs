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
    resolve_under(&models_dir(), name)
}

fn resolve_under(root: &Path, name: &str) -> Result<PathBuf, ModelError> {
    let root = root.to_path_buf();
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

/// Every model Ollama has pulled, as `ollama:` names take them (`llama3.2:1b`,
/// `user/model:tag`, `host/user/model:tag`), with the size of its weights.
pub fn installed() -> Vec<(String, u64)> {
    installed_under(&models_dir())
}

fn installed_under(root: &Path) -> Vec<(String, u64)> {
    let manifests = root.join("manifests");
    let mut found = Vec::new();
    for host in children(&manifests) {
        for user in children(&host) {
            for model in children(&user) {
                for tag in children(&model) {
                    let name = |p: &Path| {
                        p.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned()
                    };
                    let (host, user, model, tag) =
                        (name(&host), name(&user), name(&model), name(&tag));
                    let full = match (host.as_str(), user.as_str()) {
                        (REGISTRY, "library") => format!("{model}:{tag}"),
                        (REGISTRY, _) => format!("{user}/{model}:{tag}"),
                        _ => format!("{host}/{user}/{model}:{tag}"),
                    };
                    let bytes = resolve_under(root, &full)
                        .ok()
                        .and_then(|blob| std::fs::metadata(blob).ok())
                        .map_or(0, |m| m.len());
                    if bytes > 0 {
                        found.push((full, bytes));
                    }
                }
            }
        }
    }
    found.sort();
    found
}

fn children(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries
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

    #[test]
    fn installed_models_are_listed_by_their_ollama_names() {
        let root = tempfile::tempdir().unwrap();
        let blobs = root.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("sha256-abc"), vec![0u8; 42]).unwrap();
        let manifest = serde_json::json!({"layers": [
            {"mediaType": MODEL_LAYER, "digest": "sha256:abc", "size": 42}
        ]})
        .to_string();
        for (dir, tag) in [
            ("registry.ollama.ai/library/smollm2", "135m"),
            ("registry.ollama.ai/me/tuned", "v1"),
            ("example.com/me/other", "latest"),
        ] {
            let dir = root.path().join("manifests").join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(tag), &manifest).unwrap();
        }
        // A manifest whose blob is gone is not offered.
        let broken = root
            .path()
            .join("manifests/registry.ollama.ai/library/gone");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("latest"), manifest.replace("abc", "def")).unwrap();
        let names: Vec<String> = installed_under(root.path())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["example.com/me/other:latest", "me/tuned:v1", "smollm2:135m"]
        );
        assert_eq!(installed_under(root.path())[2].1, 42);
    }
}
