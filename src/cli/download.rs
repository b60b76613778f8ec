//! Downloads on the command line: a bar per file (bytes, rate, time left)
//! redrawn on a terminal, plain lines when stderr is a log.

use super::progress::{Ticker, duration};
use crate::model::hub::tally::Tally;
use crate::model::hub::{self, Event};
use crate::tui::panes::train::fmt::bytes;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

const BAR_WIDTH: usize = 24;

/// Shows a download's events on stderr.
pub struct DownloadView {
    ticker: Ticker,
    tally: Tally,
}

impl DownloadView {
    pub fn stderr() -> DownloadView {
        DownloadView {
            ticker: Ticker::stderr(),
            tally: Tally::default(),
        }
    }

    pub fn show(&mut self, event: Event) {
        self.tally.record(&event);
        match &event {
            Event::Planned { files } => {
                let known: u64 = files.iter().filter_map(|(_, size)| *size).sum();
                eprintln!("{} files, {} listed", files.len(), bytes(known as f64));
            }
            Event::Progress { file, .. } => {
                let line = self.line(file);
                self.ticker.update(&line, false);
            }
            Event::Retrying {
                file,
                attempt,
                reason,
            } => {
                self.ticker.finish();
                eprintln!("{file}: {reason}; try {} resumes it", attempt + 1);
            }
            Event::Done { file, bytes: size } => {
                let line = format!(
                    "{file}  {}  done  ({}/{})",
                    bytes(*size as f64),
                    self.tally.files_done,
                    self.tally.files
                );
                self.ticker.update(&line, true);
                self.ticker.finish();
            }
        }
    }

    fn line(&self, file: &str) -> String {
        let tally = &self.tally;
        let rate = tally
            .rate()
            .map_or_else(|| "-".to_string(), |r| format!("{}/s", bytes(r)));
        let left = tally
            .eta()
            .map_or_else(|| "-".to_string(), |s| duration(s.ceil()));
        let filled = (tally.ratio() * BAR_WIDTH as f64).round() as usize;
        format!(
            "{file} [{}{}] {} / {}  {rate}  {left} left  ({}/{})",
            "#".repeat(filled),
            "-".repeat(BAR_WIDTH - filled),
            bytes(tally.done as f64),
            bytes(tally.total as f64),
            (tally.files_done + 1).min(tally.files.max(1)),
            tally.files.max(1),
        )
    }
}

/// `tunebench download REPO`: fetches the model into the Hugging Face cache
/// and prints the snapshot folder on stdout.
pub fn run(repo: &str) -> anyhow::Result<ExitCode> {
    if !hub::looks_like_repo_id(repo) {
        anyhow::bail!("`{repo}` is not a hub repo id (ORG/NAME)");
    }
    let mut view = DownloadView::stderr();
    let never = AtomicBool::new(false);
    let dir = hub::download_model(repo, &never, &mut |event| view.show(event))?;
    println!("{}", dir.display());
    Ok(ExitCode::SUCCESS)
}
