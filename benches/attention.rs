//! Blockwise attention alone, forward and backward, at SmolLM2-135M's
//! attention shape (9 query heads over 3 key/value heads, d 64, causal):
//! the kernel's rate in GFLOP/s, counting the products it does (two
//! forward, five backward with the probabilities recomputed) over the
//! causal half of the scores.
//!
//!     cargo bench --bench attention -- 8192
//!
//! `TUNEBENCH_DTYPE=bf16` takes the tiles a bf16 base trains on (bf16
//! pairs where this CPU multiplies them faster than f32);
//! `TUNEBENCH_ROUNDS` passes (default 3), e.g. many for a profiler.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use tunebench::model::attend::Visibility;
use tunebench::model::flash::{Blocks, flash_attention, tile_products};

const QUERY_HEADS: usize = 9;
const KV_HEADS: usize = 3;
const DIM: usize = 64;

fn random(heads: usize, positions: usize) -> Tensor {
    Tensor::randn(0f32, 1.0, (1, heads, positions, DIM), &Device::Cpu).expect("random tensor")
}

fn main() {
    // As training runs: without these, freed tiles went back to the kernel
    // and a second thread pool spun, and the pass ran at half its speed.
    tunebench::pool::one_pool_owns_the_cores();
    tunebench::alloc::keep_freed_memory();
    let positions: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(8192);
    let var = |t| Var::from_tensor(&t).expect("variable");
    let (q, k, v) = (
        var(random(QUERY_HEADS, positions)),
        var(random(KV_HEADS, positions)),
        var(random(KV_HEADS, positions)),
    );
    let probe = random(QUERY_HEADS, positions);
    let causal = Visibility::new(0, None);
    let one_product = (QUERY_HEADS * positions * positions * DIM) as f64; // 2 flops each, half seen
    // A bf16 base's tiles (bf16 pairs, where this CPU is faster at them)
    // with `TUNEBENCH_DTYPE=bf16`; f32 tiles otherwise.
    let bf16 = common::dtype_from_env() == DType::BF16;
    let products = tile_products(bf16, DIM);
    println!("{positions} positions, {products:?} tiles");
    for _ in 0..common::count_from_env("TUNEBENCH_ROUNDS", 3) {
        let start = std::time::Instant::now();
        let out =
            flash_attention(&q, &k, &v, &causal, (Blocks::DEFAULT, products)).expect("forward");
        let forward = start.elapsed().as_secs_f64();
        let loss = (out * &probe).and_then(|x| x.sum_all()).expect("loss");
        let start = std::time::Instant::now();
        let grads = loss.backward().expect("backward");
        let backward = start.elapsed().as_secs_f64();
        assert!(grads.get(&q).is_some(), "no query gradient");
        println!(
            "{positions} positions: forward {forward:.3} s ({:.0} GFLOP/s), backward {backward:.3} s ({:.0} GFLOP/s)",
            2.0 * one_product / forward / 1e9,
            5.0 * one_product / backward / 1e9
        );
    }
}
