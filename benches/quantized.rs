//! The two ways a base kept quantized can serve training's products, timed
//! on SmolLM2's projection shapes: widening the blocks to a dense copy for
//! each product (what `model/base_weight.rs` does), or candle's quantized
//! matmul on the blocks, with a transposed quantized copy for the
//! backward's `grad @ W`. Also the decoding case (one row) and the dense
//! product alone, for scale.
//!
//! `cargo bench --bench quantized` (TUNEBENCH_ROWS=1,8,1024 to choose rows).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::time::Instant;

/// Median milliseconds of `runs` calls after one warm-up.
fn time_ms(runs: usize, mut f: impl FnMut() -> candle_core::Result<Tensor>) -> f64 {
    f().unwrap();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f().unwrap();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() -> candle_core::Result<()> {
    let rows: Vec<usize> = std::env::var("TUNEBENCH_ROWS")
        .unwrap_or_else(|_| "1,8,1024".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let dev = Device::Cpu;
    println!(
        "{:<10} {:<7} {:>5} | {:>9} {:>9} {:>9} | {:>9} {:>9} (ms, median of 5)",
        "shape", "type", "rows", "dense", "widen", "blocks", "bwd widen", "bwd T-blk"
    );
    // (out, in): SmolLM2's gate/up and down projections.
    for (out, inp) in [(1536usize, 576usize), (576, 1536)] {
        let w = Tensor::randn(0f32, 0.02, (out, inp), &dev)?;
        for ty in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let blocks = QTensor::quantize(&w, ty)?;
            let transposed = QMatMul::from_qtensor(QTensor::quantize(&w.t()?.contiguous()?, ty)?)?;
            let on_blocks = QMatMul::from_qtensor(QTensor::quantize(&w, ty)?)?;
            for &n in &rows {
                let x = Tensor::randn(0f32, 1.0, (n, inp), &dev)?;
                let grad = Tensor::randn(0f32, 1.0, (n, out), &dev)?;
                let dense = time_ms(5, || x.matmul(&w.t()?));
                let widen = time_ms(5, || x.matmul(&blocks.dequantize(&dev)?.t()?));
                let on = time_ms(5, || on_blocks.forward(&x));
                let bwd_widen = time_ms(5, || grad.matmul(&blocks.dequantize(&dev)?));
                let bwd_blocks = time_ms(5, || transposed.forward(&grad));
                println!(
                    "{:<10} {:<7} {n:>5} | {dense:>9.3} {widen:>9.3} {on:>9.3} | {bwd_widen:>9.3} {bwd_blocks:>9.3}",
                    format!("{out}x{inp}"),
                    format!("{ty:?}"),
                );
            }
        }
    }
    Ok(())
}
