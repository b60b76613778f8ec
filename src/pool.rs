//! Running a piece of model work on one of rayon's threads.
//!
//! The matrix products and candle's element-wise ops split their work with
//! rayon. Called from a thread outside rayon's pool, each parallel section
//! hands its tasks to the pool and puts the caller to sleep until they are
//! done: a futex wait and wake-up per section, about 120 a token on a
//! 30-layer model, and the caller's core sits idle meanwhile. Called from a
//! pool thread, the caller takes tasks itself and nobody sleeps. Moving a
//! whole forward pass onto the pool pays that hand-over once: SmolLM2-135M
//! bf16 decoding went from 23 to 31-33 tokens/s.

pub mod crew;

/// Leaves the cores to rayon's pool alone. candle 0.11 keeps a second pool
/// for its element-wise ops and quantized products (`candle-bp-*`, one
/// thread fewer than the cores), whose threads spin after each op while
/// rayon's threads run the next product or decoding step. Unless the user
/// set `CANDLE_NUM_THREADS`, it becomes 1: no second pool, those ops run on
/// the calling thread. Measured on 2 cores (AMD EPYC Zen 5): SmolLM2
/// training at 1,024 tokens 339 -> 371 tok/s (four runs each), decoding on
/// Q4_1 blocks 12-13 -> 21 tok/s, dense decoding unchanged. Call before any
/// other thread starts.
pub fn one_pool_owns_the_cores() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called first thing in `main`, before any other thread
        // exists, so nothing reads the environment meanwhile.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// `work`, a decoding step (a few rows through the model), run on a rayon
/// thread with the other pool threads spinning for its parallel sections
/// ([`crew`]).
pub fn step_on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    on_pool(|| crew::with_helpers(work))
}

/// `work`, run on a rayon thread (at once, when this already is one).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return work();
    }
    let label = crate::profile::hand_over();
    let out = rayon::scope(|_| crate::profile::take_over(label, work));
    crate::profile::resume();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_a_pool_thread_and_returns_its_value() {
        assert!(rayon::current_thread_index().is_none());
        let (on_pool_thread, value) = on_pool(|| (rayon::current_thread_index().is_some(), 7));
        assert!(on_pool_thread);
        assert_eq!(value, 7);
        // Nested: runs where it is.
        let nested = on_pool(|| {
            let outer = std::thread::current().id();
            on_pool(|| std::thread::current().id() == outer)
        });
        assert!(nested);
    }
}
