//! Where a model's files are: a local directory or GGUF file, a model
//! Ollama has pulled, the standard Hugging Face cache, or (when the network
//! allows) a download into that cache.

pub mod cache;
mod counter;
pub mod download;
pub mod failure;
pub mod tally;

pub use cache::cache_dir;
pub use download::{Event, download_model};
pub use failure::HubError;

use super::ModelError;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

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
    let repo_dir = cache::repo_dir(model);
    if !looks_like_repo_id(model) {
        return cache::complete_snapshot(&repo_dir).ok_or_else(|| ModelError::NotFound {
            repo: model.to_string(),
            searched: repo_dir.display().to_string(),
        });
    }
    let never = AtomicBool::new(false);
    download::download_model(model, &never, &mut report).map_err(|source| ModelError::Download {
        repo: model.to_string(),
        cache: repo_dir.display().to_string(),
        source: Box::new(source),
    })
}

/// Whoever shows download progress: the command line draws it on stderr;
/// the workbench owns the screen and downloads through its own gauge, so by
/// default nothing is shown.
type Reporter = Box<dyn FnMut(Event) + Send>;
static REPORTER: Mutex<Option<Reporter>> = Mutex::new(None);

/// Sends the progress of downloads [`resolve`] starts to `reporter`.
pub fn report_downloads_to(reporter: Reporter) {
    if let Ok(mut slot) = REPORTER.lock() {
        *slot = Some(reporter);
    }
}

fn report(event: Event) {
    if let Ok(mut slot) = REPORTER.lock()
        && let Some(reporter) = slot.as_mut()
    {
        reporter(event);
    }
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
    cache::complete_snapshot(&cache::repo_dir(model))
}
