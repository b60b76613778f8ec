//! When the file on disk is not the one opened. A save that meets a file
//! another program changed asks what to do (reload keeping the pending
//! changes, save under another name, or overwrite after a second yes), and
//! one that meets a read-only file asks before writing it. A timer and the
//! terminal regaining focus notice outside changes early: a file with
//! nothing pending is simply reloaded, otherwise the user is told.

use super::list::Rows;
use super::state::{DataPane, Prompt, PromptKind};
use crate::data::store::{DiskChange, Reloaded, SaveOptions, Store, StoreError, UnmatchedKind};
use crate::tui::action::{Effect, Notice};
use crate::tui::theme::Theme;
use crate::tui::view::centered;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the timer looks at the file (its metadata, which is cheap).
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// A question the pane waits on before writing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// Another program changed the file: reload, save as, or overwrite.
    Changed { change: DiskChange, pending: usize },
    /// Overwriting the other program's changes: asked once more.
    ConfirmOverwrite,
    /// The file is read-only: write it anyway (it stays read-only)?
    ReadOnly { mode: u32, options: SaveOptions },
}

/// The pane's watch on its file.
#[derive(Debug, Default)]
pub struct Watch {
    pub ask: Option<Ask>,
    /// An outside change the user was told about and has not resolved.
    pub changed: Option<DiskChange>,
    last_poll: Option<Instant>,
}

impl DataPane {
    /// `w`: saves, or asks what to do.
    pub(super) fn save_key(&mut self) -> Vec<Effect> {
        if !self.store.is_dirty() {
            return vec![Notice::info("nothing to save")];
        }
        self.save_with(SaveOptions::default())
    }

    fn save_with(&mut self, options: SaveOptions) -> Vec<Effect> {
        match self.store.save_with(options) {
            Ok(()) => {
                self.watch.changed = None;
                let mut effects = vec![Notice::info(format!(
                    "saved {}",
                    self.store.path().display()
                ))];
                // Lines and duplicates may have moved.
                effects.extend(self.start_validation().ok().map(Effect::Data));
                effects
            }
            Err(StoreError::Changed { change, .. }) => {
                let pending = self.store.pending_changes();
                self.watch.ask = Some(Ask::Changed { change, pending });
                Vec::new()
            }
            Err(StoreError::ReadOnly { mode, .. }) => {
                self.watch.ask = Some(Ask::ReadOnly { mode, options });
                Vec::new()
            }
            Err(e) => vec![Notice::error(format!(
                "saving failed, nothing was lost: {e}"
            ))],
        }
    }

    /// A key while a question is open; anything but its answers is ignored.
    pub(super) fn ask_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(ask) = self.watch.ask.take() else {
            return Vec::new();
        };
        let options = SaveOptions::default();
        match (ask, key.code) {
            (Ask::Changed { .. }, KeyCode::Char('r')) => self.reload_keeping_changes(),
            (Ask::Changed { .. }, KeyCode::Char('a')) => {
                self.prompt = Some(Prompt::new(
                    PromptKind::SaveAs,
                    &another_name(self.store.path()),
                ));
                Vec::new()
            }
            (Ask::Changed { .. }, KeyCode::Char('o')) => {
                self.watch.ask = Some(Ask::ConfirmOverwrite);
                Vec::new()
            }
            (Ask::ConfirmOverwrite, KeyCode::Char('y')) => self.save_with(SaveOptions {
                overwrite_changed: true,
                ..options
            }),
            (Ask::ReadOnly { options, .. }, KeyCode::Char('y')) => self.save_with(SaveOptions {
                overwrite_read_only: true,
                ..options
            }),
            (_, KeyCode::Esc | KeyCode::Char('n')) => {
                vec![Notice::info(
                    "nothing written; your changes are still pending",
                )]
            }
            (ask, _) => {
                self.watch.ask = Some(ask);
                Vec::new()
            }
        }
    }

    /// Enter in the save-as prompt.
    pub(super) fn save_as(&mut self, path: &str) -> Vec<Effect> {
        let path = PathBuf::from(path);
        match self.store.save_as(&path) {
            // Opened anew from there, so the Train tab follows it too.
            Ok(()) => vec![Effect::OpenDataset(path)],
            Err(e) => vec![Notice::error(format!("not saved: {e}"))],
        }
    }

    fn reload_keeping_changes(&mut self) -> Vec<Effect> {
        let Reloaded {
            store,
            reapplied,
            unmatched,
        } = match self.store.reload() {
            Ok(reloaded) => reloaded,
            Err(e) => return vec![Notice::error(format!("cannot reload: {e}"))],
        };
        let mut message = format!("reloaded {}", self.file_label());
        if reapplied > 0 || store.is_dirty() {
            message.push_str("; your changes are pending again (w saves them)");
        }
        let kept: Vec<String> = unmatched
            .iter()
            .filter(|u| u.kind == UnmatchedKind::Edit)
            .map(|u| {
                let at = u.kept_at.map_or(0, |k| k + 1);
                format!("line {} → new sample {at}", u.line)
            })
            .collect();
        let removals: Vec<String> = unmatched
            .iter()
            .filter(|u| u.kind == UnmatchedKind::Removal)
            .map(|u| u.line.to_string())
            .collect();
        if !kept.is_empty() {
            message.push_str(&format!(
                "; changed on disk, so your edits are kept as new samples beside them: {}",
                kept.join(", ")
            ));
        }
        if !removals.is_empty() {
            message.push_str(&format!(
                "; changed on disk, so not deleted: line(s) {}",
                removals.join(", ")
            ));
        }
        let first_kept = unmatched.iter().find_map(|u| u.kept_at);
        let mut effects = self.replace_store(store);
        if let Some(at) = first_kept {
            effects.extend(self.select_record(at));
        }
        effects.push(match unmatched.is_empty() {
            true => Notice::info(message),
            false => Notice::error(message),
        });
        effects
    }

    /// Puts a store read anew in place of the old one. The filter, findings
    /// and undo history refer to the old records, so they start over.
    fn replace_store(&mut self, store: Store) -> Vec<Effect> {
        self.store = store;
        self.watch.changed = None;
        self.undo.clear();
        self.filter.criteria = Default::default();
        self.rows = Rows::All;
        self.findings = Default::default();
        let mut effects = self.start_filter();
        self.list.set(self.list.pos, self.visible_len());
        self.reload = true;
        effects.extend(self.start_validation().ok().map(Effect::Data));
        effects
    }

    /// Looks at the file on disk: from the timer at most every
    /// [`POLL_EVERY`], or at once (`now`) when the terminal regains focus.
    pub fn watch_disk(&mut self, now: bool) -> Vec<Effect> {
        let due = self
            .watch
            .last_poll
            .is_none_or(|at| at.elapsed() >= POLL_EVERY);
        if !(now || due) {
            return Vec::new();
        }
        self.watch.last_poll = Some(Instant::now());
        let Ok(change) = self.store.poll_disk() else {
            return Vec::new();
        };
        let Some(change) = change else {
            self.watch.changed = None;
            return Vec::new();
        };
        if self.watch.changed.as_ref() == Some(&change) {
            return Vec::new();
        }
        let label = self.file_label();
        let idle = !self.store.is_dirty() && self.editor.is_none() && self.watch.ask.is_none();
        if idle
            && change != DiskChange::Deleted
            && let Ok(reloaded) = self.store.reload()
        {
            let mut effects = self.replace_store(reloaded.store);
            effects.push(Notice::info(format!(
                "{label} changed on disk ({change}); reloaded"
            )));
            return effects;
        }
        let advice = match self.store.is_dirty() {
            true => "w to reload keeping your changes, save as, or overwrite",
            false => "nothing of yours is pending",
        };
        self.watch.changed = Some(change.clone());
        vec![Notice::error(format!(
            "{label} changed on disk ({change}); {advice}"
        ))]
    }

    /// The question, in a box over the pane.
    pub(super) fn draw_ask(&self, ask: &Ask, frame: &mut Frame, area: Rect, theme: &Theme) {
        let name = self.file_label();
        let (title, question, answers): (_, _, &[(&str, String)]) = match ask {
            Ask::Changed { change, pending } => (
                " Changed on disk ",
                format!(
                    "{name} changed on disk since it was opened ({change}). Nothing was written."
                ),
                &[
                    (
                        "r",
                        format!("reload it and re-apply your {pending} pending change(s)"),
                    ),
                    ("a", "save your version under another name".into()),
                    ("o", "overwrite it with your version (asks again)".into()),
                    ("Esc", "cancel; your changes stay pending".into()),
                ],
            ),
            Ask::ConfirmOverwrite => (
                " Overwrite? ",
                format!(
                    "Overwrite {name} with your version? What the other program wrote is lost."
                ),
                &[("y", "overwrite".into()), ("n Esc", "cancel".into())],
            ),
            Ask::ReadOnly { mode, .. } => (
                " Read-only ",
                format!("{name} is read-only (mode {mode:03o})."),
                &[
                    ("y", "write it anyway (it stays read-only)".into()),
                    ("n Esc", "cancel".into()),
                ],
            ),
        };
        let mut lines = vec![Line::raw(question), Line::raw("")];
        for (key, does) in answers {
            lines.push(Line::from(vec![
                Span::styled(format!("{key:<6}"), theme.title()),
                Span::raw(does.clone()),
            ]));
        }
        // Room for the question to wrap onto a second line.
        let rect = centered(area, 72, lines.len() as u16 + 3);
        frame.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(Style::default().fg(theme.warning))
            .title(title)
            .style(theme.base());
        let text = Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false });
        frame.render_widget(text, rect);
    }
}

/// A name beside `path` that does not exist yet: data.jsonl → data.mine.jsonl.
fn another_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy());
    let ext = path
        .extension()
        .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()));
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            "mine".to_string()
        } else {
            format!("mine{n}")
        };
        let candidate = path.with_file_name(format!("{stem}.{suffix}{ext}"));
        if !candidate.exists() {
            return candidate.to_string_lossy().into_owned();
        }
        n += 1;
    }
}
