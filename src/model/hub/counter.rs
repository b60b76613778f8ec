//! Bytes of the file being fetched, counted where hf-hub's chunk tasks
//! report them, and when data last arrived (for the stall watchdog).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes of the current file, shared with hf-hub's chunk tasks, and when
/// the last of them arrived.
#[derive(Clone)]
pub(super) struct Counter(Arc<CounterState>);

struct CounterState {
    done: AtomicU64,
    total: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` of the last sign of life.
    last_activity_ms: AtomicU64,
}

impl Counter {
    pub(super) fn new(size: Option<u64>) -> Counter {
        Counter(Arc::new(CounterState {
            done: AtomicU64::new(0),
            total: AtomicU64::new(size.unwrap_or(0)),
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
        }))
    }

    fn touch(&self) {
        let now = self.0.started.elapsed().as_millis() as u64;
        self.0.last_activity_ms.store(now, Ordering::Relaxed);
    }

    pub(super) fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.0.last_activity_ms.load(Ordering::Relaxed));
        self.0.started.elapsed().saturating_sub(last)
    }

    pub(super) fn done(&self) -> u64 {
        self.0.done.load(Ordering::Relaxed)
    }

    pub(super) fn total(&self) -> u64 {
        self.0.total.load(Ordering::Relaxed)
    }
}

impl hf_hub::api::tokio::Progress for Counter {
    async fn init(&mut self, size: usize, _filename: &str) {
        self.0.total.store(size as u64, Ordering::Relaxed);
        self.touch();
    }

    async fn update(&mut self, size: usize) {
        self.0.done.fetch_add(size as u64, Ordering::Relaxed);
        self.touch();
    }

    async fn finish(&mut self) {
        self.touch();
    }
}
