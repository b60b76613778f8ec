//! The run directory, the whole truth about a run (DESIGN.md, "Training
//! runs"): config.toml, metrics.jsonl, checkpoints/step-N, adapter/, train.log.

use crate::clock::UtcTime;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `<base model>-<dataset>-<UTC timestamp>`, so runs sort and say what they are.
pub fn run_name(model: &str, dataset: &Path) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_matches('-')
            .to_string()
    };
    let model = model
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(model);
    let data = dataset
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy().into_owned());
    format!(
        "{}-{}-{}",
        clean(model),
        clean(&data),
        UtcTime::now().compact()
    )
}

/// Appends events to metrics.jsonl and lines to train.log, flushing each.
pub struct RunLog {
    pub dir: PathBuf,
    metrics: File,
    log: File,
    /// Also stream events to stdout (`--json`).
    echo_json: bool,
}

impl RunLog {
    pub fn open(dir: &Path, echo_json: bool) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let append = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
        };
        Ok(RunLog {
            dir: dir.to_path_buf(),
            metrics: append("metrics.jsonl")?,
            log: append("train.log")?,
            echo_json,
        })
    }

    pub fn event(&mut self, event: &Value) -> io::Result<()> {
        let line = event.to_string();
        writeln!(self.metrics, "{line}")?;
        self.metrics.flush()?;
        if self.echo_json {
            println!("{line}");
        }
        Ok(())
    }

    pub fn line(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.log, "[{}] {text}", UtcTime::now().readable())?;
        self.log.flush()
    }
}

/// Prefix of a checkpoint being deleted: out of the `step-N` namespace, so
/// a kill during the delete never leaves a partial folder that is taken for
/// a checkpoint.
const DELETING: &str = ".deleting-";

/// Checkpoint directories `step-N` in step order. Only whole ones have that
/// name: they are written under another and renamed into place, and renamed
/// away before they are deleted.
pub fn checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join("trainer_state.json")
                .exists()
                .then_some((step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Deletes the oldest checkpoints beyond `keep`, never the one named `best`,
/// and what an interrupted write or rotation left behind.
pub fn rotate(dir: &Path, keep: usize, best: Option<usize>) -> Result<(), String> {
    rotate_with(dir, keep, best, |path| std::fs::remove_dir_all(path))
}

/// `rotate` with the deletion passed in, so a test can die halfway through.
fn rotate_with(
    dir: &Path,
    keep: usize,
    best: Option<usize>,
    mut delete: impl FnMut(&Path) -> io::Result<()>,
) -> Result<(), String> {
    let mut remove = |path: &Path| delete(path).map_err(|e| format!("{}: {e}", path.display()));
    // Only the process holding the run's lock gets here, so nothing else is
    // writing these.
    for leftover in leftovers(&dir.join("checkpoints")) {
        remove(&leftover)?;
    }
    let all = checkpoints(dir);
    let removable: Vec<_> = all.iter().filter(|(s, _)| Some(*s) != best).collect();
    for (step, path) in &removable[..removable.len().saturating_sub(keep)] {
        let doomed = dir
            .join("checkpoints")
            .join(format!("{DELETING}step-{step}"));
        std::fs::rename(path, &doomed).map_err(|e| format!("{}: {e}", path.display()))?;
        remove(&doomed)?;
    }
    Ok(())
}

/// Checkpoints half deleted, or half written (`.step-N.partial`) by a
/// process that was killed.
fn leftovers(checkpoints: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(checkpoints)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(DELETING) || (name.starts_with(".step-") && name.ends_with(".partial"))
        })
        .map(|e| e.path())
        .collect()
}

/// Writes a checkpoint through a temporary directory renamed into place, so
/// a failed write (a full disk) leaves earlier checkpoints as they were.
pub fn write_checkpoint(
    dir: &Path,
    step: usize,
    fill: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let final_dir = dir.join("checkpoints").join(format!("step-{step}"));
    let temp = dir
        .join("checkpoints")
        .join(format!(".step-{step}.partial"));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).map_err(|e| format!("{}: {e}", temp.display()))?;
    if let Err(e) = fill(&temp) {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(format!(
            "writing checkpoint step-{step} failed ({e}); earlier checkpoints are intact"
        ));
    }
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(&temp, &final_dir).map_err(|e| format!("{}: {e}", final_dir.display()))?;
    Ok(final_dir)
}

/// Copies a checkpoint's adapter files into `adapter/`.
pub fn publish_adapter(dir: &Path, checkpoint: &Path) -> io::Result<()> {
    let target = dir.join("adapter");
    std::fs::create_dir_all(&target)?;
    for name in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(checkpoint.join(name), target.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_identify() {
        let name = run_name("Qwen/Qwen2.5-0.5B-Instruct", Path::new("data/my set.jsonl"));
        assert!(
            name.starts_with("Qwen2.5-0.5B-Instruct-my-set-20"),
            "{name}"
        );
    }

    #[test]
    fn failed_checkpoint_keeps_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
        write_checkpoint(dir.path(), 1, |p| {
            std::fs::write(p.join("trainer_state.json"), "{}").map_err(|e| e.to_string())
        })
        .unwrap();
        let err =
            write_checkpoint(dir.path(), 2, |_| Err("No space left on device".into())).unwrap_err();
        assert!(
            err.contains("No space left") && err.contains("intact"),
            "{err}"
        );
        let steps: Vec<usize> = checkpoints(dir.path()).iter().map(|c| c.0).collect();
        assert_eq!(steps, vec![1]);
        assert!(!dir.path().join("checkpoints/.step-2.partial").exists());
    }

    #[test]
    fn rotation_keeps_the_best() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
        for step in [10, 20, 30, 40] {
            write_checkpoint(dir.path(), step, |p| {
                std::fs::write(p.join("trainer_state.json"), "{}").map_err(|e| e.to_string())
            })
            .unwrap();
        }
        rotate(dir.path(), 2, Some(10)).unwrap();
        let steps: Vec<usize> = checkpoints(dir.path()).iter().map(|c| c.0).collect();
        assert_eq!(steps, vec![10, 30, 40]);
    }

    fn checkpoint_with_adapter(dir: &Path, step: usize) {
        write_checkpoint(dir, step, |p| {
            std::fs::write(p.join("adapter_model.safetensors"), "weights")
                .and_then(|()| std::fs::write(p.join("trainer_state.json"), "{}"))
                .map_err(|e| e.to_string())
        })
        .unwrap();
    }

    #[test]
    fn a_kill_during_rotation_leaves_no_partial_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        for step in [10, 20, 30] {
            checkpoint_with_adapter(dir.path(), step);
        }
        // The process dies after deleting one file of the oldest checkpoint.
        let killed = rotate_with(dir.path(), 1, None, |doomed| {
            std::fs::remove_file(doomed.join("adapter_model.safetensors"))?;
            Err(io::Error::other("killed"))
        })
        .unwrap_err();
        assert!(killed.contains("killed"), "{killed}");
        let found = checkpoints(dir.path());
        assert_eq!(found.iter().map(|c| c.0).collect::<Vec<_>>(), [20, 30]);
        for (step, path) in &found {
            assert!(
                path.join("adapter_model.safetensors").exists(),
                "step-{step} is listed but half deleted"
            );
        }
        // The next rotation finishes the job and leaves nothing else behind.
        std::fs::create_dir_all(dir.path().join("checkpoints/.step-40.partial")).unwrap();
        rotate(dir.path(), 1, None).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["step-30"]);
    }
}
