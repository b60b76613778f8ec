//! Helpers that stay awake through a decoding step.
//!
//! A decoding step of a 30-layer model has about 120 parallel sections
//! (the layers' products), each a few hundred microseconds of weight
//! streaming with a little serial work (norms, attention) between them.
//! Handed to rayon, every section wakes the other pool threads, and an
//! idle rayon thread goes to sleep after a few dozen yields: on SmolLM2
//! bf16 the second core added a quarter to one core's speed where the
//! memory bandwidth allows nearly double.
//!
//! [`with_helpers`] keeps the other pool threads spinning on a shared
//! slot for the length of one step (one wake-up per step); [`for_each`]
//! inside it publishes a section's tasks there, takes tasks itself too, and
//! spins until all are done. Outside [`with_helpers`], [`for_each`] is
//! rayon's.

use rayon::prelude::*;
use std::cell::{Cell, UnsafeCell};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Bits of [`Slot::claims`] for the task index and the task count; the
/// rest counts sections, so a helper that read an old section cannot claim
/// a task of the next.
const INDEX_BITS: u32 = 20;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const SECTION_MASK: u64 = (1 << (64 - 2 * INDEX_BITS)) - 1;

/// Where the owner publishes a section's tasks.
struct Slot {
    /// `section << 2 * INDEX_BITS | count << INDEX_BITS | next index`.
    claims: AtomicU64,
    /// Tasks of the current section finished.
    done: AtomicUsize,
    /// The current section's work, by task index. Written by the owner
    /// only while no task of the section before is running (see `run`).
    work: UnsafeCell<Option<*const (dyn Fn(usize) + Sync)>>,
    stop: AtomicBool,
}

// SAFETY: `work` is written by the owner only between sections, when no
// helper can claim a task (the previous section's tasks are all done and
// the next is not published); helpers read it only after claiming a task
// of the published section (Acquire on `claims`, Release on publishing).
unsafe impl Sync for Slot {}

thread_local! {
    /// The slot of the [`with_helpers`] this thread runs inside, if any.
    static CURRENT: Cell<Option<*const Slot>> = const { Cell::new(None) };
}

/// Runs `step` with the pool's other threads spinning for the tasks of
/// [`for_each`] calls made on this thread; they go back to rayon when
/// `step` returns. Call it on a pool thread (`pool::on_pool`).
pub fn with_helpers<R: Send>(step: impl FnOnce() -> R + Send) -> R {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    let owner = rayon::current_thread_index();
    if helpers == 0 || owner.is_none() || CURRENT.get().is_some() {
        return step();
    }
    let slot = Slot {
        claims: AtomicU64::new(0),
        done: AtomicUsize::new(0),
        work: UnsafeCell::new(None),
        stop: AtomicBool::new(false),
    };
    rayon::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| {
                // The owner itself may pick this up while it waits inside
                // `step`: it must not spin there.
                if rayon::current_thread_index() != owner {
                    help(&slot);
                }
            });
        }
        CURRENT.set(Some(&slot as *const Slot));
        let out = step();
        CURRENT.set(None);
        slot.stop.store(true, Ordering::Release);
        out
    })
}

/// `task(i)` for each `i` below `count`, in parallel: on the spinning
/// helpers inside [`with_helpers`], else on rayon.
pub fn for_each(count: usize, task: &(dyn Fn(usize) + Sync)) {
    match CURRENT.get() {
        // SAFETY: the slot lives on the stack of the `with_helpers` this
        // thread is inside, which outlives this call.
        Some(slot) if count < (1 << INDEX_BITS) => unsafe { run(&*slot, count, task) },
        _ => (0..count).into_par_iter().for_each(task),
    }
}

/// [`for_each`] taking owned items, each given to one task.
pub fn for_each_item<T: Send>(items: Vec<T>, task: impl Fn(T) + Sync + Send) {
    if CURRENT.get().is_none() {
        return items.into_par_iter().for_each(task);
    }
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    for_each(items.len(), &|i| {
        let item = items[i].lock().map(|mut held| held.take());
        if let Ok(Some(item)) = item {
            task(item);
        }
    });
}

/// Publishes a section on `slot`, takes its tasks beside the helpers and
/// waits for all of them.
///
/// # Safety
/// Only the thread that set `slot` as [`CURRENT`] calls this.
unsafe fn run(slot: &Slot, count: usize, task: &(dyn Fn(usize) + Sync)) {
    let section = ((slot.claims.load(Ordering::Relaxed) >> (2 * INDEX_BITS)) + 1) & SECTION_MASK;
    // SAFETY: the previous section's tasks are all done (this thread
    // waited for them) and this one is not published yet: nobody reads it.
    // The borrow is erased for the slot; this call returns only once every
    // claimed task has finished with it.
    unsafe {
        let erased: *const (dyn Fn(usize) + Sync + '_) = task;
        *slot.work.get() = Some(std::mem::transmute::<
            *const (dyn Fn(usize) + Sync + '_),
            *const (dyn Fn(usize) + Sync + 'static),
        >(erased));
    }
    slot.done.store(0, Ordering::Relaxed);
    let published = section << (2 * INDEX_BITS) | (count as u64) << INDEX_BITS;
    slot.claims.store(published, Ordering::Release);
    while let Some(i) = claim(slot, section) {
        task(i);
        slot.done.fetch_add(1, Ordering::Release);
    }
    while slot.done.load(Ordering::Acquire) < count {
        std::hint::spin_loop();
    }
}

/// A task index of `section` nobody has taken, if one is left.
fn claim(slot: &Slot, section: u64) -> Option<usize> {
    let mut seen = slot.claims.load(Ordering::Acquire);
    loop {
        let count = (seen >> INDEX_BITS) & INDEX_MASK;
        let next = seen & INDEX_MASK;
        if seen >> (2 * INDEX_BITS) != section || next >= count {
            return None;
        }
        match slot
            .claims
            .compare_exchange_weak(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(next as usize),
            Err(now) => seen = now,
        }
    }
}

/// A helper's loop: claim and run tasks of each published section until
/// the step ends.
fn help(slot: &Slot) {
    while !slot.stop.load(Ordering::Acquire) {
        let section = slot.claims.load(Ordering::Acquire) >> (2 * INDEX_BITS);
        match claim(slot, section) {
            Some(i) => {
                // SAFETY: a claimed task's section is published, so `work`
                // holds its work, which stays alive until `done` counts
                // this task.
                let work = unsafe { (*slot.work.get()).expect("a published section has work") };
                unsafe { (*work)(i) };
                slot.done.fetch_add(1, Ordering::Release);
            }
            None => std::hint::spin_loop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_inside_and_outside_a_step() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let counts: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        let sections = |counts: &[AtomicUsize]| {
            for n in [1, 7, 1000, 0, 64] {
                for_each(n, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            let items: Vec<usize> = (0..300).collect();
            for_each_item(items, |i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
        };
        pool.install(|| {
            with_helpers(|| sections(&counts));
            sections(&counts);
            // Nested: the inner call runs inside the outer one's helpers.
            with_helpers(|| with_helpers(|| sections(&counts)));
        });
        for (i, c) in counts.iter().enumerate() {
            let per_round =
                [1, 7, 1000, 0, 64].iter().filter(|&&n| i < n).count() + usize::from(i < 300);
            assert_eq!(c.load(Ordering::Relaxed), 3 * per_round, "task {i}");
        }
    }
}
