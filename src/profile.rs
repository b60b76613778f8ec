//! Per-op memory and time profile of a training step or a generation
//! (`TUNEBENCH_PROFILE=1`, or `--profile` of `train` and `generate`).
//!
//! A global allocator wraps the system one and, once profiling is on,
//! counts the bytes live on the heap. Our code labels what it is doing
//! (embedding, norm, attention, ...) with [`scope`]; each label records the
//! bytes allocated under it, the highest heap level reached while it was
//! the current label, and the wall time it was the current label (a nested
//! label's time is its own, not its parent's). When profiling is off every
//! allocation pays one relaxed atomic load and a scope costs one more.
//!
//! The label is per thread: an allocation is charged to what the thread that
//! made it was doing, so tests running beside each other do not mix, and the
//! matrix kernels' worker threads (which allocate little) count as `other`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// What our code is doing when it allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Label {
    Other,
    Embedding,
    Norm,
    Attention,
    Mlp,
    Lora,
    /// The output projection and the loss over it.
    Logits,
    /// candle's backward pass outside our own ops.
    Backward,
    /// Backward of the frozen projections (`grad @ W`).
    BackwardFrozen,
    /// Backward of the fused cross-entropy.
    BackwardLogits,
    /// Backward of the blockwise attention.
    BackwardAttention,
    Optimizer,
    /// Widening a quantized base weight for one product.
    Dequantize,
    /// The frozen base projections' products (forward).
    Frozen,
}

const LABELS: [Label; 14] = [
    Label::Other,
    Label::Embedding,
    Label::Norm,
    Label::Attention,
    Label::Mlp,
    Label::Lora,
    Label::Logits,
    Label::Backward,
    Label::BackwardFrozen,
    Label::BackwardLogits,
    Label::BackwardAttention,
    Label::Optimizer,
    Label::Dequantize,
    Label::Frozen,
];

impl Label {
    pub fn name(self) -> &'static str {
        match self {
            Label::Other => "other",
            Label::Embedding => "embedding",
            Label::Norm => "norm",
            Label::Attention => "attention",
            Label::Mlp => "mlp",
            Label::Lora => "lora",
            Label::Logits => "logits+loss",
            Label::Backward => "backward",
            Label::BackwardFrozen => "backward: frozen linear",
            Label::Dequantize => "dequantize base",
            Label::BackwardLogits => "backward: logits",
            Label::BackwardAttention => "backward: attention",
            Label::Optimizer => "optimizer",
            Label::Frozen => "frozen linear",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Bytes allocated and not yet freed since profiling was switched on.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static STEP_PEAK: AtomicUsize = AtomicUsize::new(0);
static STEP_PEAK_LABEL: AtomicU8 = AtomicU8::new(0);
static LABEL_PEAK: [AtomicUsize; LABELS.len()] = [const { AtomicUsize::new(0) }; LABELS.len()];
static LABEL_ALLOCATED: [AtomicUsize; LABELS.len()] = [const { AtomicUsize::new(0) }; LABELS.len()];
static LABEL_NANOS: [AtomicU64; LABELS.len()] = [const { AtomicU64::new(0) }; LABELS.len()];
/// The clock the labels' times are read from.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call; never 0 (0 marks "not yet").
fn now_nanos() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

thread_local! {
    // Const-initialised and without a destructor: safe to read from inside
    // the allocator.
    static CURRENT: Cell<u8> = const { Cell::new(0) };
    /// Bytes this thread allocated less those it freed.
    static THREAD_NET: Cell<isize> = const { Cell::new(0) };
    /// Bytes this thread allocated.
    static THREAD_ALLOCATED: Cell<usize> = const { Cell::new(0) };
    /// When this thread's current label last changed ([`now_nanos`]).
    static SWITCHED_AT: Cell<u64> = const { Cell::new(0) };
    /// This thread's share of [`LABEL_NANOS`] (for tests beside others).
    static THREAD_NANOS: [Cell<u64>; LABELS.len()] = const { [const { Cell::new(0) }; LABELS.len()] };
}

/// Charges the time since the thread's last label change to its current
/// label, and starts the next interval.
fn charge_time() {
    let now = now_nanos();
    let since = SWITCHED_AT.with(|t| t.replace(now));
    if since == 0 {
        return; // the thread's first label: nothing before it was measured
    }
    let (label, nanos) = (current() as usize % LABELS.len(), now.saturating_sub(since));
    LABEL_NANOS[label].fetch_add(nanos, Relaxed);
    THREAD_NANOS.with(|t| t[label].set(t[label].get() + nanos));
}

fn current() -> u8 {
    CURRENT.try_with(Cell::get).unwrap_or(0)
}

/// The process's allocator: the system one, counted while profiling.
pub struct Counting;

fn grew(bytes: usize) {
    let _ = THREAD_NET.try_with(|n| n.set(n.get() + bytes as isize));
    let _ = THREAD_ALLOCATED.try_with(|n| n.set(n.get() + bytes));
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    let label = current();
    LABEL_ALLOCATED[label as usize].fetch_add(bytes, Relaxed);
    LABEL_PEAK[label as usize].fetch_max(live, Relaxed);
    if STEP_PEAK.fetch_max(live, Relaxed) < live {
        STEP_PEAK_LABEL.store(label, Relaxed);
    }
}

fn shrank(bytes: usize) {
    let _ = THREAD_NET.try_with(|n| n.set(n.get() - bytes as isize));
    // Memory allocated before profiling started may be freed after it:
    // the count never goes below zero.
    let _ = LIVE.fetch_update(Relaxed, Relaxed, |live| Some(live.saturating_sub(bytes)));
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping
// only touches atomics and a const thread-local, and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if ENABLED.load(Relaxed) && !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if ENABLED.load(Relaxed) && !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if ENABLED.load(Relaxed) {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if ENABLED.load(Relaxed) && !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// Starts counting (from zero live bytes).
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Whether the environment asks for a profile (`TUNEBENCH_PROFILE=1`).
pub fn requested_by_env() -> bool {
    std::env::var("TUNEBENCH_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Restores the thread's previous label when dropped.
pub struct Scope {
    previous: Option<u8>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            charge_time();
            let _ = CURRENT.try_with(|c| c.set(previous));
        }
    }
}

/// Charges this thread's allocations to `label` until the guard drops.
pub fn scope(label: Label) -> Scope {
    if !enabled() {
        return Scope { previous: None };
    }
    // What is already live counts towards the label's peak.
    LABEL_PEAK[label as usize].fetch_max(LIVE.load(Relaxed), Relaxed);
    charge_time();
    Scope {
        previous: CURRENT.try_with(|c| c.replace(label as u8)).ok(),
    }
}

/// Before this thread hands work to another ([`crate::pool::on_pool`]):
/// charges its time so far and returns its label, for the other thread to
/// carry on under.
pub fn hand_over() -> u8 {
    if enabled() {
        charge_time();
    }
    current()
}

/// Runs `work` on this (pool) thread under the label a thread handed over,
/// timing only the work: the pool thread's idle time before and after is
/// charged to nothing.
pub fn take_over<R>(label: u8, work: impl FnOnce() -> R) -> R {
    if !enabled() {
        return work();
    }
    SWITCHED_AT.with(|t| t.set(now_nanos()));
    let previous = CURRENT.try_with(|c| c.replace(label)).unwrap_or(0);
    let out = work();
    charge_time();
    let _ = CURRENT.try_with(|c| c.set(previous));
    SWITCHED_AT.with(|t| t.set(0));
    out
}

/// After the work handed over is done: this thread's wait is not charged.
pub fn resume() {
    if enabled() {
        SWITCHED_AT.with(|t| t.set(now_nanos()));
    }
}

/// Bytes live on the heap now (since profiling started).
pub fn live() -> usize {
    LIVE.load(Relaxed)
}

/// Bytes this thread allocated less those it freed, while profiling: what a
/// piece of single-threaded code keeps is the change across it.
pub fn thread_net() -> isize {
    THREAD_NET.try_with(Cell::get).unwrap_or(0)
}

/// Bytes this thread allocated while profiling (unaffected by other threads,
/// so tests can measure a piece of single-threaded code).
pub fn thread_allocated() -> usize {
    THREAD_ALLOCATED.try_with(Cell::get).unwrap_or(0)
}

/// Bytes allocated under `label` since the last [`reset`].
pub fn allocated(label: Label) -> usize {
    LABEL_ALLOCATED[label as usize].load(Relaxed)
}

/// Starts a new measurement: peaks from the current level, counts at zero.
pub fn reset() {
    let live = live();
    for i in 0..LABELS.len() {
        LABEL_PEAK[i].store(0, Relaxed);
        LABEL_ALLOCATED[i].store(0, Relaxed);
        LABEL_NANOS[i].store(0, Relaxed);
    }
    SWITCHED_AT.with(|t| t.set(now_nanos()));
    STEP_PEAK.store(live, Relaxed);
    STEP_PEAK_LABEL.store(current(), Relaxed);
}

/// One label's share of a measurement.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub label: &'static str,
    /// Highest heap level while this label was current.
    pub peak_bytes: usize,
    pub allocated_bytes: usize,
    /// Seconds this label was current (on the threads that set labels).
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Heap at the start of the measurement (weights, adapter, optimizer).
    pub start_bytes: usize,
    pub peak_bytes: usize,
    /// The label current when the peak was reached.
    pub peak_label: &'static str,
    /// Labels that allocated anything or took time, largest peak first.
    pub rows: Vec<Row>,
    /// The rows' seconds together: the wall time measured.
    pub seconds: f64,
}

/// What was counted since [`reset`], which started at `start_bytes`.
pub fn report(start_bytes: usize) -> Report {
    charge_time();
    let mut rows: Vec<Row> = LABELS
        .iter()
        .map(|&l| Row {
            label: l.name(),
            peak_bytes: LABEL_PEAK[l as usize].load(Relaxed),
            allocated_bytes: allocated(l),
            seconds: LABEL_NANOS[l as usize].load(Relaxed) as f64 / 1e9,
        })
        .filter(|r| r.allocated_bytes > 0 || r.seconds > 0.0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.peak_bytes));
    Report {
        start_bytes,
        peak_bytes: STEP_PEAK.load(Relaxed),
        peak_label: LABELS[STEP_PEAK_LABEL.load(Relaxed) as usize % LABELS.len()].name(),
        seconds: rows.iter().map(|r| r.seconds).sum(),
        rows,
    }
}

fn mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl Report {
    /// The table `train --profile` prints after the first step.
    pub fn table(&self) -> String {
        let mut out = format!(
            "memory profile of one step (heap bytes counted by tunebench's allocator)\n\
             {:<24} {:>12} {:>12} {:>12}\n",
            "label", "peak live", "above start", "allocated"
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{:<24} {:>12} {:>12} {:>12}\n",
                r.label,
                mb(r.peak_bytes),
                mb(r.peak_bytes.saturating_sub(self.start_bytes)),
                mb(r.allocated_bytes)
            ));
        }
        out.push_str(&format!(
            "heap at step start {}, step peak {} (+{}) during {}",
            mb(self.start_bytes),
            mb(self.peak_bytes),
            mb(self.peak_bytes.saturating_sub(self.start_bytes)),
            self.peak_label
        ));
        out
    }

    /// Where the time went, largest share first.
    pub fn time_table(&self) -> String {
        let mut rows: Vec<&Row> = self.rows.iter().filter(|r| r.seconds > 0.0).collect();
        rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        let mut out = format!(
            "time profile (wall time each label was current; {:.3} s in all)\n{:<24} {:>10} {:>7}\n",
            self.seconds, "label", "seconds", "share"
        );
        for r in rows {
            out.push_str(&format!(
                "{:<24} {:>10.3} {:>6.1}%\n",
                r.label,
                r.seconds,
                100.0 * r.seconds / self.seconds.max(1e-12)
            ));
        }
        out.pop();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labelled_allocation_is_charged_to_its_label_on_this_thread() {
        enable();
        let before = allocated(Label::Optimizer);
        let kept = {
            let _s = scope(Label::Optimizer);
            let v = vec![1u8; 3_000_000];
            // Another thread's allocation is not charged to this label.
            std::thread::spawn(|| vec![2u8; 5_000_000].len())
                .join()
                .unwrap();
            v
        };
        let charged = allocated(Label::Optimizer) - before;
        assert!((3_000_000..5_000_000).contains(&charged), "{charged}");
        // The label ended with the scope.
        let after_scope = allocated(Label::Optimizer);
        let _more = vec![3u8; 1_000_000];
        assert_eq!(allocated(Label::Optimizer), after_scope);
        assert!(LABEL_PEAK[Label::Optimizer as usize].load(Relaxed) >= kept.len());
    }

    #[test]
    fn a_nested_label_takes_its_own_time_from_its_parent() {
        enable();
        // Other tests running beside this one charge the same labels: read
        // this thread's share.
        let nanos = |l: Label| THREAD_NANOS.with(|t| t[l as usize].get());
        let (dequantize, frozen) = (nanos(Label::Dequantize), nanos(Label::Frozen));
        {
            let _outer = scope(Label::Frozen);
            std::thread::sleep(std::time::Duration::from_millis(30));
            let _inner = scope(Label::Dequantize);
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
        let inner = (nanos(Label::Dequantize) - dequantize) as f64 / 1e6;
        let outer = (nanos(Label::Frozen) - frozen) as f64 / 1e6;
        assert!((60.0..200.0).contains(&inner), "{inner} ms");
        assert!((30.0..60.0).contains(&outer), "{outer} ms");
    }

    #[test]
    fn work_handed_to_the_pool_is_timed_there_under_the_callers_label() {
        enable();
        let nanos = |l: Label| THREAD_NANOS.with(|t| t[l as usize].get());
        let mine = nanos(Label::Embedding);
        let (on_pool_label, pool_ms) = {
            let _s = scope(Label::Embedding);
            crate::pool::on_pool(|| {
                let before = nanos(Label::Embedding);
                let label = current();
                std::thread::sleep(std::time::Duration::from_millis(40));
                // The pool thread's share shows once the work is charged,
                // after this closure: read it through a nested scope.
                drop(scope(Label::Embedding));
                (label, (nanos(Label::Embedding) - before) as f64 / 1e6)
            })
        };
        assert_eq!(on_pool_label, Label::Embedding as u8);
        assert!((40.0..200.0).contains(&pool_ms), "{pool_ms} ms on the pool");
        // The caller waited meanwhile: its own share holds none of the 40 ms.
        let waited = (nanos(Label::Embedding) - mine) as f64 / 1e6;
        assert!(waited < 20.0, "{waited} ms charged to the waiting caller");
    }
}
