//! The picker's part of the app: opening it, its keys and clicks, and the
//! download it starts, from the first byte to the model it loads.

use super::entries;
use super::render::ActiveDownload;
use super::{ModelPicker, Picked};
use crate::model::hub::tally::Tally;
use crate::tui::action::{DownloadReport, Effect, Notice};
use crate::tui::app::{App, contains};
use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

impl App {
    pub fn open_picker(&mut self) -> Vec<Effect> {
        let workdir = std::env::current_dir().unwrap_or_default();
        self.picker = Some(ModelPicker::new(entries::discover(&workdir)));
        Vec::new()
    }

    pub(crate) fn picker_key(&mut self, key: crossterm::event::KeyEvent) -> Vec<Effect> {
        let Some(picker) = self.picker.as_mut() else {
            return Vec::new();
        };
        let picked = picker.key(key);
        self.act_on(picked)
    }

    pub(crate) fn picker_mouse(&mut self, event: MouseEvent) -> Vec<Effect> {
        let layout = self.picker_layout.get();
        let Some(picker) = self.picker.as_mut() else {
            return Vec::new();
        };
        let picked = match event.kind {
            MouseEventKind::Down(MouseButton::Left)
                if contains(layout.rows, event.column, event.row) =>
            {
                picker.click(layout.first + (event.row - layout.rows.y) as usize)
            }
            MouseEventKind::Down(_) => Picked::Close,
            MouseEventKind::ScrollDown => picker.key(crossterm::event::KeyCode::Down.into()),
            MouseEventKind::ScrollUp => picker.key(crossterm::event::KeyCode::Up.into()),
            _ => Picked::Stay,
        };
        self.act_on(picked)
    }

    pub(crate) fn picker_paste(&mut self, text: &str) -> Vec<Effect> {
        if let Some(picker) = self.picker.as_mut() {
            picker
                .line
                .insert_str(&crate::tui::panes::one_line(text).replace(' ', ""));
            picker.selected = 0;
        }
        Vec::new()
    }

    fn act_on(&mut self, picked: Picked) -> Vec<Effect> {
        match picked {
            Picked::Stay => Vec::new(),
            Picked::Close => {
                self.picker = None;
                Vec::new()
            }
            Picked::Load(name) if entries::wants_download(&name) => self.download_then_load(name),
            Picked::Load(name) => {
                self.picker = None;
                vec![Effect::LoadModel(name)]
            }
            Picked::Download(repo) => self.download_then_load(repo),
            Picked::CancelDownload => match &self.download {
                Some(active) => {
                    active.cancel.store(true, Ordering::Relaxed);
                    vec![Notice::info(format!(
                        "cancelling the download of {}…",
                        active.repo
                    ))]
                }
                None => vec![Notice::info("no download is running")],
            },
        }
    }

    /// Starts fetching `repo`; the model loads when it is here.
    pub fn download_then_load(&mut self, repo: String) -> Vec<Effect> {
        if let Some(active) = &self.download {
            return vec![Notice::error(format!(
                "{} is still downloading; Ctrl+x in the picker cancels it",
                active.repo
            ))];
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.download = Some(ActiveDownload {
            repo: repo.clone(),
            tally: Tally::default(),
            cancel: Arc::clone(&cancel),
        });
        vec![
            Notice::info(format!(
                "downloading {repo}; Esc leaves it running, Ctrl+x in the picker (O) cancels"
            )),
            Effect::Download { repo, cancel },
        ]
    }

    pub(crate) fn download_report(&mut self, report: DownloadReport) -> Vec<Effect> {
        match report {
            DownloadReport::Progress(event) => {
                if let Some(active) = self.download.as_mut() {
                    active.tally.record(&event);
                }
                Vec::new()
            }
            DownloadReport::Finished { repo, result } => {
                self.download = None;
                match result {
                    Ok(_) => {
                        self.picker = None;
                        vec![
                            Notice::info(format!("{repo} downloaded; loading it")),
                            Effect::LoadModel(repo),
                        ]
                    }
                    Err(message) => vec![Notice::error(message)],
                }
            }
        }
    }
}
