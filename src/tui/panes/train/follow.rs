//! Following a run's metrics.jsonl as it grows: each poll reads only the
//! bytes appended since the last one (one `stat` when nothing changed), in
//! chunks, keeps a half-written last line for the next poll (up to
//! `MAX_LINE`: a line that never ends is skipped, not held), and folds the
//! events into the series the charts draw.

use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Weight of the past in the smoothed loss (debiased, as TensorBoard does).
const EMA_BETA: f64 = 0.9;

/// The longest line kept: events are a few hundred bytes, so a longer line
/// is damage (or a writer gone wrong) and is skipped up to its newline.
const MAX_LINE: usize = 4 << 20;

/// How much of the file one read takes, so memory stays bounded however
/// much was appended between polls.
const READ_CHUNK: usize = 1 << 20;

/// What the run's start event said (the latest one, after a resume).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartInfo {
    pub model: String,
    pub dataset: String,
    pub total_steps: usize,
    pub train_samples: usize,
    pub eval_samples: usize,
    pub pid: Option<u32>,
    pub resumed_from: Option<usize>,
}

/// The latest step event.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepInfo {
    pub step: usize,
    pub epoch: f64,
    pub loss: f64,
    pub total_steps: usize,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndInfo {
    pub status: String,
    pub message: Option<String>,
}

/// Everything the charts and the runs list need, as (step, value) series.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub start: Option<StartInfo>,
    pub loss: Vec<(f64, f64)>,
    pub smooth: Vec<(f64, f64)>,
    pub eval: Vec<(f64, f64)>,
    pub lr: Vec<(f64, f64)>,
    pub tok_s: Vec<(f64, f64)>,
    pub grad_norm: Vec<(f64, f64)>,
    pub last: Option<StepInfo>,
    /// (step, elapsed_s) of the first step since the latest start, for the ETA.
    pub session_first: Option<(usize, f64)>,
    pub checkpoints: usize,
    pub end: Option<EndInfo>,
    /// The highest `peak_rss` (bytes) the run's events reported.
    pub peak_rss: Option<f64>,
    /// Lines that were not JSON objects (a foreign or damaged file).
    pub bad_lines: usize,
    /// 1-based numbers of lines longer than `MAX_LINE`, skipped unread.
    pub long_lines: Vec<usize>,
    ema: f64,
    ema_n: i32,
}

impl Metrics {
    /// The lowest eval loss of a trained adapter (after step 0) and its step.
    pub fn best_eval(&self) -> Option<(usize, f64)> {
        self.eval
            .iter()
            .copied()
            .filter(|&(step, _)| step > 0.0)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(s, l)| (s as usize, l))
    }

    /// The eval loss before training (step 0: the base model), when the run
    /// measured it.
    pub fn base_eval(&self) -> Option<f64> {
        self.eval
            .first()
            .filter(|(step, _)| *step == 0.0)
            .map(|&(_, l)| l)
    }

    /// The best eval loss's change from the base's, in percent (negative is better).
    pub fn change_from_base(&self) -> Option<f64> {
        let (base, (_, best)) = (self.base_eval()?, self.best_eval()?);
        (base > 0.0).then(|| (best - base) / base * 100.0)
    }

    pub fn total_steps(&self) -> usize {
        self.last
            .map(|l| l.total_steps)
            .filter(|&t| t > 0)
            .or(self.start.as_ref().map(|s| s.total_steps))
            .unwrap_or(0)
    }

    /// Seconds left at this session's pace, once two steps are in.
    pub fn eta_s(&self) -> Option<f64> {
        let last = self.last?;
        let (first_step, first_elapsed) = self.session_first?;
        let steps = last.step.checked_sub(first_step).filter(|&s| s > 0)?;
        let per_step = (last.elapsed_s - first_elapsed) / steps as f64;
        Some(per_step * self.total_steps().saturating_sub(last.step) as f64)
    }

    /// What the run should say about lines it skipped, if any.
    pub fn notice(&self) -> Option<String> {
        let (first, rest) = self.long_lines.split_first()?;
        let more = match rest.len() {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        Some(format!(
            "metrics.jsonl: line {first} longer than {} MiB skipped{more}",
            MAX_LINE >> 20
        ))
    }

    /// Median tokens/s over the run's steps.
    pub fn median_tok_s(&self) -> Option<f64> {
        let mut values: Vec<f64> = self.tok_s.iter().map(|p| p.1).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(values[values.len() / 2])
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &Value) {
        let num = |key: &str| event.get(key).and_then(Value::as_f64);
        let int = |key: &str| event.get(key).and_then(Value::as_u64).map(|v| v as usize);
        if let Some(peak) = num("peak_rss") {
            self.peak_rss = Some(self.peak_rss.map_or(peak, |p| p.max(peak)));
        }
        let text = |key: &str| {
            event
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match event.get("event").and_then(Value::as_str) {
            Some("start") => {
                let start = StartInfo {
                    model: text("model"),
                    dataset: text("dataset"),
                    total_steps: int("total_steps").unwrap_or(0),
                    train_samples: int("train_samples").unwrap_or(0),
                    eval_samples: int("eval_samples").unwrap_or(0),
                    pid: int("pid").map(|p| p as u32),
                    resumed_from: int("resumed_from"),
                };
                // A resumed run repeats the steps after its checkpoint.
                if let Some(from) = start.resumed_from {
                    self.truncate_after(from);
                }
                self.start = Some(start);
                self.end = None;
                self.session_first = None;
            }
            Some("step") => {
                let Some(step) = int("step") else { return };
                let x = step as f64;
                let loss = num("loss").unwrap_or(f64::NAN);
                if loss.is_finite() {
                    self.loss.push((x, loss));
                    self.push_smooth(x, loss);
                }
                push_finite(&mut self.lr, x, num("lr"));
                push_finite(&mut self.tok_s, x, num("tokens_per_s"));
                push_finite(&mut self.grad_norm, x, num("grad_norm"));
                let info = StepInfo {
                    step,
                    epoch: num("epoch").unwrap_or(0.0),
                    loss,
                    total_steps: int("total_steps").unwrap_or(0),
                    elapsed_s: num("elapsed_s").unwrap_or(0.0),
                };
                if self.session_first.is_none() {
                    self.session_first = Some((step, info.elapsed_s));
                }
                self.last = Some(info);
            }
            Some("eval") => {
                if let Some(step) = int("step") {
                    push_finite(&mut self.eval, step as f64, num("eval_loss"));
                }
            }
            Some("checkpoint") => self.checkpoints += 1,
            Some("end") => {
                self.end = Some(EndInfo {
                    status: text("status"),
                    message: event
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
            _ => {}
        }
    }

    fn push_smooth(&mut self, x: f64, loss: f64) {
        self.ema = EMA_BETA * self.ema + (1.0 - EMA_BETA) * loss;
        self.ema_n += 1;
        let debiased = self.ema / (1.0 - EMA_BETA.powi(self.ema_n));
        self.smooth.push((x, debiased));
    }

    fn truncate_after(&mut self, step: usize) {
        let keep = |series: &mut Vec<(f64, f64)>| series.retain(|p| p.0 <= step as f64);
        for series in [
            &mut self.loss,
            &mut self.eval,
            &mut self.lr,
            &mut self.tok_s,
            &mut self.grad_norm,
        ] {
            keep(series);
        }
        self.smooth.clear();
        self.ema = 0.0;
        self.ema_n = 0;
        let losses = std::mem::take(&mut self.loss);
        for &(x, loss) in &losses {
            self.push_smooth(x, loss);
        }
        self.loss = losses;
    }
}

fn push_finite(series: &mut Vec<(f64, f64)>, x: f64, y: Option<f64>) {
    if let Some(y) = y.filter(|y| y.is_finite()) {
        series.push((x, y));
    }
}

/// An incremental reader of one metrics.jsonl.
#[derive(Debug, Clone)]
pub struct Follower {
    /// A Trainer output folder read whole when its files change (they are
    /// rewritten, not appended); None for a tunebench metrics.jsonl.
    trainer: Option<TrainerWatch>,
    path: PathBuf,
    offset: u64,
    /// Bytes after the last newline: a line still being written.
    partial: Vec<u8>,
    /// Newlines read so far (the pending line is number `lines + 1`).
    lines: usize,
    /// The pending line passed `MAX_LINE`: drop bytes up to its newline.
    skipping: bool,
    pub metrics: Metrics,
}

/// What a Trainer folder's files looked like when last read.
#[derive(Debug, Clone)]
struct TrainerWatch {
    dir: PathBuf,
    seen: Vec<Option<(u64, std::time::SystemTime)>>,
}

impl Follower {
    /// Follows an HF Trainer output folder (Axolotl, LLaMA-Factory, TRL).
    pub fn trainer(dir: &Path) -> Follower {
        let mut follower = Follower::new(&dir.join(crate::train::trainer_folder::LOG));
        follower.trainer = Some(TrainerWatch {
            dir: dir.to_path_buf(),
            seen: Vec::new(),
        });
        follower
    }

    pub fn is_trainer(&self) -> bool {
        self.trainer.is_some()
    }

    pub fn new(path: &Path) -> Follower {
        Follower {
            trainer: None,
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            lines: 0,
            skipping: false,
            metrics: Metrics::default(),
        }
    }

    /// Reads what was appended since the last poll; true when an event
    /// arrived (or a line was skipped). A file that shrank (replaced) is
    /// read again from the start.
    pub fn poll(&mut self) -> bool {
        if let Some(watch) = self.trainer.as_mut() {
            use crate::train::trainer_folder;
            let files = trainer_folder::watched_files(&watch.dir);
            let seen: Vec<_> = files
                .iter()
                .map(|f| {
                    let meta = std::fs::metadata(f).ok()?;
                    Some((meta.len(), meta.modified().ok()?))
                })
                .collect();
            if seen == watch.seen {
                return false;
            }
            watch.seen = seen;
            let mut metrics = Metrics::default();
            for event in trainer_folder::events(&watch.dir) {
                metrics.apply(&event);
            }
            self.metrics = metrics;
            return true;
        }
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return false;
        };
        let len = meta.len();
        if len < self.offset {
            *self = Follower::new(&self.path);
        }
        if len == self.offset {
            return false;
        }
        let Ok(mut file) = File::open(&self.path) else {
            return false;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut changed = false;
        while self.offset < len {
            let want = (len - self.offset).min(READ_CHUNK as u64) as usize;
            let got = match file.read(&mut chunk[..want]) {
                Ok(0) | Err(_) => break,
                Ok(got) => got,
            };
            self.offset += got as u64;
            changed |= self.feed(&chunk[..got]);
        }
        changed
    }

    /// Splits fresh bytes into lines and applies each complete one.
    fn feed(&mut self, mut fresh: &[u8]) -> bool {
        let mut changed = false;
        while let Some(end) = memchr::memchr(b'\n', fresh) {
            let (head, rest) = (&fresh[..end], &fresh[end + 1..]);
            fresh = rest;
            self.lines += 1;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.partial.len() + head.len() > MAX_LINE {
                self.skip_line(self.lines);
                changed = true;
                continue;
            }
            self.partial.extend_from_slice(head);
            let line = std::mem::take(&mut self.partial);
            changed |= self.apply_line(&line);
        }
        if !self.skipping {
            if self.partial.len() + fresh.len() > MAX_LINE {
                self.skipping = true;
                self.skip_line(self.lines + 1);
                changed = true;
            } else {
                self.partial.extend_from_slice(fresh);
            }
        }
        changed
    }

    fn skip_line(&mut self, number: usize) {
        self.partial = Vec::new();
        self.metrics.long_lines.push(number);
    }

    /// Folds one complete line in; false for a blank one.
    fn apply_line(&mut self, line: &[u8]) -> bool {
        if line.iter().all(u8::is_ascii_whitespace) {
            return false;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(event) if event.is_object() => self.metrics.apply(&event),
            _ => self.metrics.bad_lines += 1,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn step(n: usize, loss: f64) -> String {
        format!(
            "{{\"event\":\"step\",\"step\":{n},\"epoch\":{},\"loss\":{loss},\"lr\":0.001,\"grad_norm\":1.5,\"tokens\":100,\"tokens_per_s\":{},\"elapsed_s\":{},\"total_steps\":10}}\n",
            n as f64 / 5.0,
            1000.0 + n as f64,
            n as f64 * 2.0
        )
    }

    #[test]
    fn follows_a_growing_file_with_a_half_written_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut f = Follower::new(&path);
        assert!(!f.poll(), "no file yet");
        append(
            &path,
            "{\"event\":\"start\",\"model\":\"m\",\"total_steps\":10,\"pid\":4242}\n",
        );
        append(&path, &step(1, 4.0));
        assert!(f.poll());
        assert_eq!(f.metrics.loss, vec![(1.0, 4.0)]);
        assert_eq!(f.metrics.start.as_ref().unwrap().pid, Some(4242));
        assert!(!f.poll(), "nothing new: nothing changed");

        let line = step(2, 3.0);
        let (head, tail) = line.split_at(25);
        append(&path, head);
        assert!(!f.poll(), "half a line is not an event yet");
        assert_eq!(f.metrics.loss.len(), 1);
        append(&path, tail);
        append(&path, "{\"event\":\"eval\",\"step\":2,\"eval_loss\":3.5}\n");
        assert!(f.poll());
        assert_eq!(f.metrics.loss, vec![(1.0, 4.0), (2.0, 3.0)]);
        assert_eq!(f.metrics.eval, vec![(2.0, 3.5)]);
        assert_eq!(f.metrics.best_eval(), Some((2, 3.5)));
        assert_eq!(f.metrics.last.unwrap().step, 2);
        assert_eq!(f.metrics.bad_lines, 0);
        // Debiased EMA: the first point is the loss itself.
        assert_eq!(f.metrics.smooth[0], (1.0, 4.0));
        assert!(f.metrics.smooth[1].1 < 4.0 && f.metrics.smooth[1].1 > 3.0);
        // 2 s per step, 8 steps to go.
        assert_eq!(f.metrics.eta_s(), Some(16.0));

        append(&path, "{\"event\":\"end\",\"status\":\"stopped\"}\n");
        assert!(f.poll());
        assert_eq!(f.metrics.end.as_ref().unwrap().status, "stopped");
    }

    #[test]
    fn the_step_0_eval_is_the_base_point_not_a_best() {
        let mut m = Metrics::default();
        for line in [
            r#"{"event":"eval","step":0,"eval_loss":8.0,"base":true}"#,
            r#"{"event":"eval","step":5,"eval_loss":6.0}"#,
            r#"{"event":"eval","step":10,"eval_loss":9.0}"#,
        ] {
            m.apply(&serde_json::from_str(line).unwrap());
        }
        assert_eq!(m.eval[0], (0.0, 8.0), "the eval curve starts at the base");
        assert_eq!(m.base_eval(), Some(8.0));
        assert_eq!(m.best_eval(), Some((5, 6.0)));
        assert_eq!(m.change_from_base(), Some(-25.0));
        let mut only_base = Metrics::default();
        only_base
            .apply(&serde_json::from_str(r#"{"event":"eval","step":0,"eval_loss":8.0}"#).unwrap());
        assert_eq!(
            (only_base.best_eval(), only_base.change_from_base()),
            (None, None)
        );
    }

    #[test]
    fn a_resume_drops_repeated_steps_and_clears_the_end() {
        let mut m = Metrics::default();
        for n in 1..=4 {
            m.apply(&serde_json::from_str(&step(n, 5.0 - n as f64)).unwrap());
        }
        m.apply(&serde_json::json!({"event": "end", "status": "failed"}));
        m.apply(&serde_json::json!({"event": "start", "resumed_from": 2, "total_steps": 10}));
        assert!(m.end.is_none());
        assert_eq!(m.loss.len(), 2);
        assert_eq!(m.smooth.len(), 2);
        m.apply(&serde_json::from_str(&step(3, 1.0)).unwrap());
        assert_eq!(m.loss.last(), Some(&(3.0, 1.0)));
    }

    #[test]
    fn a_replaced_file_is_read_again_and_junk_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        append(&path, &step(1, 2.0));
        append(&path, &step(2, 2.0));
        let mut f = Follower::new(&path);
        assert!(f.poll());
        std::fs::write(&path, "not json\n").unwrap();
        assert!(f.poll());
        assert!(f.metrics.loss.is_empty());
        assert_eq!(f.metrics.bad_lines, 1);
    }
    #[test]
    fn a_line_that_never_ends_is_skipped_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        append(&path, &step(1, 4.0));
        let mut f = Follower::new(&path);
        assert!(f.poll());
        // Line 2 grows past the cap over several polls, without a newline.
        let junk = "x".repeat(3 << 20);
        append(&path, &format!("{{\"event\":\"step\",\"note\":\"{junk}"));
        assert!(!f.poll(), "3 MiB of a line: still pending");
        assert!(f.metrics.notice().is_none());
        append(&path, &junk);
        assert!(f.poll(), "the skip is news");
        assert!(f.partial.len() <= MAX_LINE, "the pending line is not held");
        append(&path, &junk);
        f.poll();
        assert!(f.partial.is_empty(), "a skipped line is not held at all");
        // It ends, and the events after it are read as before.
        append(&path, &format!("{junk}\"}}\n"));
        append(&path, &step(3, 2.0));
        assert!(f.poll());
        assert_eq!(f.metrics.loss, vec![(1.0, 4.0), (3.0, 2.0)]);
        assert_eq!(f.metrics.long_lines, vec![2]);
        assert_eq!(f.metrics.bad_lines, 0);
        assert_eq!(
            f.metrics.notice().as_deref(),
            Some("metrics.jsonl: line 2 longer than 4 MiB skipped")
        );
        // A long line that arrives whole in one poll, then a short one.
        append(&path, &format!("{}\n", "y".repeat(MAX_LINE + 1)));
        append(&path, &step(5, 1.0));
        assert!(f.poll());
        assert_eq!(f.metrics.long_lines, vec![2, 4]);
        assert_eq!(f.metrics.last.unwrap().step, 5);
        assert!(
            f.metrics
                .notice()
                .unwrap()
                .ends_with("skipped (and 1 more)")
        );
    }
}
