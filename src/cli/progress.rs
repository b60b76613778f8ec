//! Progress on stderr while long work runs: one line redrawn in place on a
//! terminal; otherwise (nohup, CI, a scheduler's log) plain lines at a
//! steady pace, so a redirected log still shows where the work stands.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Plain lines come at most this far apart, and at every milestone.
const PLAIN_LINE_EVERY: Duration = Duration::from_secs(30);

pub struct Ticker {
    terminal: bool,
    /// A line is on the terminal and wants a newline before other output.
    drawn: bool,
    last_plain: Option<Instant>,
}

impl Ticker {
    pub fn stderr() -> Ticker {
        Ticker {
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
            last_plain: None,
        }
    }

    /// Shows the current state. `milestone` (an evaluation, every 5% of the
    /// work, the end) forces a plain line. Returns the line when one was due
    /// as a plain line, so callers can keep it in a log file as well.
    pub fn update(&mut self, line: &str, milestone: bool) -> Option<String> {
        let due = milestone
            || self
                .last_plain
                .is_none_or(|t| t.elapsed() >= PLAIN_LINE_EVERY);
        if self.terminal {
            eprint!("\r{line}\x1b[K");
            self.drawn = true;
        } else if due {
            eprintln!("{line}");
        }
        if !due {
            return None;
        }
        self.last_plain = Some(Instant::now());
        Some(line.to_string())
    }

    /// Ends the redrawn line, before other output.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// Whether `done` of `total` crosses a multiple of 5% (and the first and last).
pub fn is_milestone(done: usize, total: usize) -> bool {
    let every = (total / 20).max(1);
    done <= 1 || done >= total || done.is_multiple_of(every)
}

/// `3m05s`, `1h02m`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_every_five_percent() {
        let marks: Vec<usize> = (1..=100).filter(|&d| is_milestone(d, 100)).collect();
        assert_eq!(marks.len(), 21, "the first step and every fifth");
        assert!(is_milestone(7, 7) && is_milestone(1, 7) && is_milestone(3, 7));
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
    }

    #[test]
    fn plain_lines_only_when_due() {
        let mut t = Ticker {
            terminal: false,
            drawn: false,
            last_plain: None,
        };
        assert!(t.update("first", false).is_some(), "the first line is due");
        assert!(t.update("soon after", false).is_none());
        assert_eq!(t.update("eval", true).as_deref(), Some("eval"));
    }
}
