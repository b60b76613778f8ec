//! What the model picker offers: models in the Hugging Face cache, models
//! Ollama has pulled, and GGUF files in the working folder and `models/`.

use crate::model::hub::{self, cache};
use crate::model::ollama;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A repo in the Hugging Face cache; `false` when a download stopped
    /// short of the weights.
    Cache {
        whole: bool,
    },
    Ollama,
    Gguf,
    /// Not here yet: fetch it from the hub.
    Download,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Cache { whole: true } => "hf cache",
            Source::Cache { whole: false } => "partial: resumes",
            Source::Ollama => "ollama",
            Source::Gguf => "gguf",
            Source::Download => "download from the hub",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What `--model` takes for it.
    pub name: String,
    pub bytes: Option<u64>,
    pub source: Source,
}

/// Everything found on this machine, cache first.
pub fn discover(workdir: &Path) -> Vec<Entry> {
    let mut entries: Vec<Entry> = cache::cached_models()
        .into_iter()
        .map(|m| Entry {
            name: m.repo,
            bytes: Some(m.bytes),
            source: Source::Cache { whole: m.complete },
        })
        .collect();
    entries.extend(ollama::installed().into_iter().map(|(name, bytes)| Entry {
        name: format!("{}{name}", ollama::PREFIX),
        bytes: Some(bytes),
        source: Source::Ollama,
    }));
    for dir in [workdir.to_path_buf(), workdir.join("models")] {
        entries.extend(gguf_files(&dir, workdir));
    }
    entries
}

fn gguf_files(dir: &Path, workdir: &Path) -> Vec<Entry> {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<Entry> = listing
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
                && p.is_file()
        })
        .map(|path| Entry {
            bytes: std::fs::metadata(&path).ok().map(|m| m.len()),
            name: path
                .strip_prefix(workdir)
                .unwrap_or(&path)
                .display()
                .to_string(),
            source: Source::Gguf,
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// The entries whose name holds `filter` (any case), after a "download"
/// entry when `filter` is a hub repo id that is not a whole model here.
pub fn matching(entries: &[Entry], filter: &str) -> Vec<Entry> {
    let filter = filter.trim();
    let lower = filter.to_lowercase();
    let mut shown = Vec::new();
    if wants_download(filter) {
        shown.push(Entry {
            name: filter.to_string(),
            bytes: None,
            source: Source::Download,
        });
    }
    shown.extend(
        entries
            .iter()
            .filter(|e| e.name.to_lowercase().contains(&lower))
            .cloned(),
    );
    shown
}

/// Whether `name` can only be had by downloading it: a repo id that is not
/// a local path and not a whole model in the cache.
pub fn wants_download(name: &str) -> bool {
    hub::looks_like_repo_id(name)
        && !name.starts_with(ollama::PREFIX)
        && !Path::new(name).exists()
        && hub::resolve_local(name).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, source: Source) -> Entry {
        Entry {
            name: name.into(),
            bytes: Some(1),
            source,
        }
    }

    #[test]
    fn the_filter_keeps_matching_names_and_offers_a_download_for_a_new_repo() {
        let entries = vec![
            entry("Qwen/Qwen2.5-0.5B-Instruct", Source::Cache { whole: true }),
            entry("ollama:smollm2:135m", Source::Ollama),
            entry("models/smol.gguf", Source::Gguf),
        ];
        let names = |filter: &str| -> Vec<(String, Source)> {
            matching(&entries, filter)
                .into_iter()
                .map(|e| (e.name, e.source))
                .collect()
        };
        assert_eq!(names("").len(), 3);
        assert_eq!(
            names("SMOL"),
            [
                ("ollama:smollm2:135m".to_string(), Source::Ollama),
                ("models/smol.gguf".to_string(), Source::Gguf)
            ]
        );
        let wanted = names("acme/not-here-xyz");
        assert_eq!(
            wanted,
            [("acme/not-here-xyz".to_string(), Source::Download)]
        );
    }

    #[test]
    fn gguf_files_are_found_in_the_folder_and_models() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::fs::write(dir.path().join("a.gguf"), b"GGUF").unwrap();
        std::fs::write(dir.path().join("models/b.GGUF"), b"GGUF").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let mut found = gguf_files(dir.path(), dir.path());
        found.extend(gguf_files(&dir.path().join("models"), dir.path()));
        let names: Vec<_> = found.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.gguf", "models/b.GGUF"]);
    }
}
