//! A running account of a download built from its events: which file, how
//! far, how fast and how long still. The command line's bar and the
//! workbench's gauge both draw from it.

use super::download::Event;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The rate is measured over this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
pub struct Tally {
    /// Files planned (shards join as the index is read).
    pub files: usize,
    pub files_done: usize,
    pub file: Option<String>,
    pub done: u64,
    pub total: u64,
    /// (when, bytes done) over the last few seconds of the current file.
    samples: VecDeque<(Instant, u64)>,
}

impl Tally {
    pub fn record(&mut self, event: &Event) {
        self.record_at(event, Instant::now());
    }

    fn record_at(&mut self, event: &Event, now: Instant) {
        match event {
            Event::Planned { files } => self.files = files.len(),
            Event::Progress { file, done, total } => {
                if self.file.as_deref() != Some(file) {
                    self.file = Some(file.clone());
                    self.samples.clear();
                }
                self.done = *done;
                self.total = *total;
                self.samples.push_back((now, *done));
                while self
                    .samples
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
                {
                    self.samples.pop_front();
                }
            }
            Event::Retrying { .. } => self.samples.clear(),
            Event::Done { file, bytes } => {
                self.files_done += 1;
                // A shard beyond the planned list: the index named it.
                self.files = self.files.max(self.files_done);
                self.file = Some(file.clone());
                self.done = *bytes;
                self.total = *bytes;
                self.samples.clear();
            }
        }
    }

    /// Bytes per second over the recent window.
    pub fn rate(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        (seconds > 0.2).then(|| last.1.saturating_sub(first.1) as f64 / seconds)
    }

    /// Seconds left for the current file at the recent rate.
    pub fn eta(&self) -> Option<f64> {
        let rate = self.rate().filter(|r| *r > 0.0)?;
        Some(self.total.saturating_sub(self.done) as f64 / rate)
    }

    /// Fraction of the current file on disk.
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f64 / self.total as f64).clamp(0.0, 1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(done: u64) -> Event {
        Event::Progress {
            file: "model.safetensors".into(),
            done,
            total: 1000,
        }
    }

    #[test]
    fn rate_and_eta_come_from_recent_progress() {
        let mut tally = Tally::default();
        let start = Instant::now();
        tally.record_at(&progress(100), start);
        assert_eq!(tally.rate(), None, "one sample is not a rate");
        tally.record_at(&progress(300), start + Duration::from_secs(1));
        assert_eq!(tally.rate(), Some(200.0));
        assert_eq!(tally.eta(), Some(3.5));
        assert!((tally.ratio() - 0.3).abs() < 1e-9);
        // Old samples leave the window: the rate follows the recent speed.
        tally.record_at(&progress(400), start + Duration::from_secs(5));
        tally.record_at(&progress(900), start + Duration::from_secs(6));
        assert_eq!(tally.rate(), Some(500.0));
    }

    #[test]
    fn files_are_counted_as_they_finish() {
        let mut tally = Tally::default();
        tally.record(&Event::Planned {
            files: vec![("config.json".into(), Some(10)), ("index".into(), None)],
        });
        for name in ["config.json", "index", "shard-1", "shard-2"] {
            tally.record(&Event::Done {
                file: name.into(),
                bytes: 10,
            });
        }
        assert_eq!((tally.files_done, tally.files), (4, 4));
        assert_eq!(tally.ratio(), 1.0);
    }
}
