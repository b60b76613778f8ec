//! Whether the decoding kernels ask for the next weight row before they
//! read it. On the Intel Xeon of 2026-12-03 the hardware prefetchers alone
//! left the products well short of the bandwidth, and a software prefetch
//! one row ahead took the output projection from 17.2 to 12.4 ms; on an
//! AMD EPYC Zen 4 (2026-12-06) the same prefetches made SmolLM2's decoding
//! slower (bf16 91-94 against 104 tokens/s without them). Nothing in the
//! CPU's features tells the two apart, so a process's first decoding steps
//! try both, alternating, and the faster one stays. The products are the
//! same either way: a prefetch changes when a line arrives, not a value.
//! `TUNEBENCH_PREFETCH=0` or `1` decides instead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether the kernels prefetch now; read once per step of 64-128 weights.
static ON: AtomicBool = AtomicBool::new(true);

static TRIAL: Mutex<Option<Trial>> = Mutex::new(None);

/// Whether the decoding kernels prefetch the weights they read next.
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Runs one decoding step; while the trial lasts, with the prefetch on or
/// off as it asks, timed. Steps running at once in two threads (two chats)
/// only blur each other's times: the choice is about speed, not values.
pub(crate) fn timed_step<R>(step: impl FnOnce() -> R) -> R {
    let setting = {
        let mut trial = TRIAL.lock().unwrap_or_else(|e| e.into_inner());
        let trial = trial.get_or_insert_with(|| Trial::new(forced()));
        if let Some(chosen) = trial.chosen {
            ON.store(chosen, Ordering::Relaxed);
        }
        trial.next_setting()
    };
    let Some(prefetch) = setting else {
        return step();
    };
    ON.store(prefetch, Ordering::Relaxed);
    let start = Instant::now();
    let out = step();
    let took = start.elapsed();
    let mut trial = TRIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(trial) = trial.as_mut() {
        trial.record(prefetch, took);
        if let Some(chosen) = trial.chosen {
            ON.store(chosen, Ordering::Relaxed);
        }
    }
    out
}

/// `TUNEBENCH_PREFETCH`'s choice, when it makes one.
fn forced() -> Option<bool> {
    match std::env::var("TUNEBENCH_PREFETCH").ok()?.trim() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Steps not timed first: the first ones fault pages in and wake threads.
const WARM_UP: usize = 2;
/// Timed steps each way.
const EACH_WAY: usize = 5;

/// The alternating trial and its outcome.
#[derive(Debug)]
struct Trial {
    started: usize,
    with: Vec<Duration>,
    without: Vec<Duration>,
    chosen: Option<bool>,
}

impl Trial {
    fn new(forced: Option<bool>) -> Self {
        Trial {
            started: 0,
            with: Vec::new(),
            without: Vec::new(),
            chosen: forced,
        }
    }

    /// The setting for the next step, `None` once the choice is made.
    fn next_setting(&mut self) -> Option<bool> {
        if self.chosen.is_some() {
            return None;
        }
        self.started += 1;
        Some(self.started % 2 == 1)
    }

    fn record(&mut self, prefetch: bool, took: Duration) {
        if self.chosen.is_some() || self.started <= WARM_UP {
            return;
        }
        let times = if prefetch {
            &mut self.with
        } else {
            &mut self.without
        };
        times.push(took);
        if self.with.len() >= EACH_WAY && self.without.len() >= EACH_WAY {
            self.chosen = Some(median(&mut self.with) <= median(&mut self.without));
        }
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(trial: &mut Trial, with: u64, without: u64) -> usize {
        let mut steps = 0;
        while let Some(prefetch) = trial.next_setting() {
            let ms = if prefetch { with } else { without };
            trial.record(prefetch, Duration::from_millis(ms));
            steps += 1;
        }
        steps
    }

    #[test]
    fn the_faster_setting_stays_after_the_trial() {
        let mut trial = Trial::new(None);
        let steps = run(&mut trial, 12, 10);
        assert_eq!(trial.chosen, Some(false));
        assert_eq!(steps, WARM_UP + 2 * EACH_WAY);
        let mut trial = Trial::new(None);
        run(&mut trial, 9, 10);
        assert_eq!(trial.chosen, Some(true));
    }

    #[test]
    fn a_forced_setting_runs_no_trial() {
        let mut trial = Trial::new(Some(false));
        assert_eq!(run(&mut trial, 1, 100), 0);
        assert_eq!(trial.chosen, Some(false));
    }

    #[test]
    fn warm_up_steps_are_not_counted() {
        let mut trial = Trial::new(None);
        // Two slow first steps with the prefetch off must not decide it.
        for took in [500, 500] {
            let prefetch = trial.next_setting().unwrap();
            trial.record(prefetch, Duration::from_millis(took));
        }
        run(&mut trial, 12, 10);
        assert_eq!(trial.chosen, Some(false));
        assert!(trial.with.len() == EACH_WAY && trial.without.len() == EACH_WAY);
    }
}
