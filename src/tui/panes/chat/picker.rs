//! Choosing the adapter: `<runs>/*/adapter` and every
//! `<runs>/*/checkpoints/step-N`, newest run first, or none (base only);
//! runs trained elsewhere (HF Trainer folders) offer their final adapter
//! and each `checkpoint-N`.

use crate::train::trainer_folder;
use crossterm::event::{KeyCode, KeyEvent};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub label: String,
    /// None: no adapter.
    pub path: Option<PathBuf>,
}

/// Every adapter under `runs`, after a "none" entry. A folder counts when
/// it holds `adapter_config.json`.
pub fn scan(runs: &Path) -> Vec<Choice> {
    let mut choices = vec![Choice {
        label: "none (base model only)".into(),
        path: None,
    }];
    // `runs` may itself be one Trainer folder (a mirrored remote run).
    let dirs = if trainer_folder::is_trainer_folder(runs) {
        vec![runs.to_path_buf()]
    } else {
        read_dirs(runs)
    };
    let mut run_dirs: Vec<(std::time::SystemTime, PathBuf)> = dirs
        .into_iter()
        .map(|dir| {
            let modified = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, dir)
        })
        .collect();
    // Newest first; names break ties so the order is stable.
    run_dirs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    for (_, run) in run_dirs {
        let name = file_name(&run);
        if trainer_folder::is_trainer_folder(&run) {
            choices.extend(
                trainer_folder::adapters(&run)
                    .into_iter()
                    .map(|dir| Choice {
                        label: if dir == run {
                            format!("{name} (final)")
                        } else {
                            format!("{name}/{}", file_name(&dir))
                        },
                        path: Some(dir),
                    }),
            );
            continue;
        }
        let adapter = run.join("adapter");
        if is_adapter(&adapter) {
            choices.push(Choice {
                label: format!("{name}/adapter"),
                path: Some(adapter),
            });
        }
        let mut steps: Vec<(u64, PathBuf)> = read_dirs(&run.join("checkpoints"))
            .into_iter()
            .filter(|dir| is_adapter(dir))
            .filter_map(|dir| {
                let step = file_name(&dir).strip_prefix("step-")?.parse().ok()?;
                Some((step, dir))
            })
            .collect();
        steps.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (step, dir) in steps {
            choices.push(Choice {
                label: format!("{name}/step-{step}"),
                path: Some(dir),
            });
        }
    }
    choices
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect()
}

fn is_adapter(dir: &Path) -> bool {
    dir.join("adapter_config.json").is_file()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The open picker.
#[derive(Debug, Clone, PartialEq)]
pub struct Picker {
    pub choices: Vec<Choice>,
    pub selected: usize,
    /// Where the choices came from, for the title.
    pub runs: PathBuf,
}

/// What a key did in the picker.
#[derive(Debug, PartialEq)]
pub enum Picked {
    Stay,
    Close,
    Choose(Option<PathBuf>),
}

impl Picker {
    /// Lists `runs`, with the active adapter selected.
    pub fn open(runs: &Path, active: Option<&Path>) -> Picker {
        let choices = scan(runs);
        let selected = choices
            .iter()
            .position(|c| c.path.as_deref() == active)
            .unwrap_or(0);
        Picker {
            choices,
            selected,
            runs: runs.to_path_buf(),
        }
    }

    pub fn key(&mut self, key: KeyEvent) -> Picked {
        let last = self.choices.len().saturating_sub(1);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('a') => return Picked::Close,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = last,
            KeyCode::Enter => {
                return Picked::Choose(self.choices[self.selected].path.clone());
            }
            _ => {}
        }
        Picked::Stay
    }

    /// Selects the row at `index` (a click); returns its choice.
    pub fn click(&mut self, index: usize) -> Option<Option<PathBuf>> {
        let choice = self.choices.get(index)?;
        self.selected = index;
        Some(choice.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("adapter_config.json"), "{}").unwrap();
    }

    #[test]
    fn lists_adapters_and_checkpoints_latest_step_first() {
        let runs = tempfile::tempdir().unwrap();
        let run = runs.path().join("tiny-1");
        adapter(&run.join("adapter"));
        adapter(&run.join("checkpoints/step-20"));
        adapter(&run.join("checkpoints/step-100"));
        std::fs::create_dir_all(run.join("checkpoints/step-5")).unwrap(); // no adapter yet
        std::fs::create_dir_all(runs.path().join("empty-run")).unwrap();
        let labels: Vec<String> = scan(runs.path()).into_iter().map(|c| c.label).collect();
        assert_eq!(
            labels,
            [
                "none (base model only)",
                "tiny-1/adapter",
                "tiny-1/step-100",
                "tiny-1/step-20"
            ]
        );
        let active = run.join("checkpoints/step-20");
        let mut picker = Picker::open(runs.path(), Some(&active));
        assert_eq!(picker.selected, 3);
        let up = KeyEvent::from(KeyCode::Up);
        assert_eq!(picker.key(up), Picked::Stay);
        assert_eq!(
            picker.key(KeyEvent::from(KeyCode::Enter)),
            Picked::Choose(Some(run.join("checkpoints/step-100")))
        );
        assert_eq!(scan(&runs.path().join("missing")).len(), 1);
    }
}
