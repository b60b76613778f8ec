//! Blockwise attention against the whole score matrix: values and the
//! gradients of q, k and v.

use super::*;
use crate::model::attend::whole_matrix;
use crate::model::max_abs_diff;
use candle_core::Var;

fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
    let mut rng = crate::data::rng::SplitMix64::new(seed);
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let values: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Output and gradients of q, k, v of `sum(attention(q, k, v) ∘ probe)`.
fn run(
    attention: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    probe: &Tensor,
) -> [Tensor; 4] {
    let vars = [q, k, v].map(|x| Var::from_tensor(x).unwrap());
    let out = attention(
        vars[0].as_tensor(),
        vars[1].as_tensor(),
        vars[2].as_tensor(),
    )
    .unwrap();
    let grads = (out.to_dtype(DType::F32).unwrap() * probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let grad = |x: &Var| grads.get(x.as_tensor()).expect("a gradient").clone();
    [out, grad(&vars[0]), grad(&vars[1]), grad(&vars[2])]
}

/// Checks blockwise against whole-matrix attention for `q [b, h, t, d]`
/// over `kv` key/value heads.
fn assert_same(
    (b, h, kv, t, d): (usize, usize, usize, usize, usize),
    vis: &Visibility,
    (blocks, products): (Blocks, Products),
    dtype: DType,
    tolerance: f32,
) {
    let seed = (b * 1000 + h * 100 + t) as u64;
    let [q, k, v] = [(h, 1), (kv, 2), (kv, 3)]
        .map(|(heads, s)| random((b, heads, t, d), seed + s).to_dtype(dtype).unwrap());
    let probe = random((b, h, t, d), seed + 4);
    let blockwise = run(
        |q, k, v| flash_attention(q, k, v, vis, (blocks, products)),
        (&q, &k, &v),
        &probe,
    );
    let whole = run(|q, k, v| whole_matrix(q, k, v, vis), (&q, &k, &v), &probe);
    for (name, (ours, reference)) in ["output", "dq", "dk", "dv"]
        .iter()
        .zip(blockwise.iter().zip(&whole))
    {
        assert_eq!(ours.dtype(), dtype, "{name} dtype");
        assert_eq!(ours.dims(), reference.dims(), "{name} shape");
        let ours = ours.to_dtype(DType::F32).unwrap();
        let reference = reference.to_dtype(DType::F32).unwrap();
        let diff = max_abs_diff(&ours, &reference).unwrap();
        assert!(diff < tolerance, "{name}: max difference {diff}");
    }
}

const SIXTY_FOUR: Blocks = Blocks {
    queries: 64,
    keys: 64,
};

/// `assert_same` in f32 under the causal rule alone.
fn assert_same_causal(shape: (usize, usize, usize, usize, usize), blocks: Blocks) {
    let tiles = (blocks, Products::F32);
    assert_same(shape, &Visibility::new(0, None), tiles, DType::F32, 1e-5);
}

#[test]
fn llama_shape_at_300_in_blocks_of_64_with_a_ragged_last_block() {
    assert_same_causal((1, 4, 4, 300, 64), SIXTY_FOUR);
}

#[test]
fn grouped_query_heads_share_their_key_value_head() {
    assert_same_causal((1, 6, 2, 300, 32), SIXTY_FOUR);
}

#[test]
fn query_and_key_blocks_of_different_sizes() {
    let blocks = Blocks {
        queries: 48,
        keys: 80,
    };
    assert_same_causal((1, 6, 2, 300, 32), blocks);
}

#[test]
fn packed_samples_never_see_each_other() {
    // Boundaries inside blocks and on a block edge; a one-token sample.
    let vis = Visibility::new(0, Some(&[100, 28, 1, 107, 64]));
    let tiles = (SIXTY_FOUR, Products::F32);
    assert_same((1, 6, 2, 300, 32), &vis, tiles, DType::F32, 1e-5);
}

#[test]
fn padded_batches_of_two_rows() {
    // Right padding is after every real token, so the causal rule alone
    // keeps it unseen, as in the whole-matrix path.
    assert_same_causal((2, 6, 2, 150, 32), SIXTY_FOUR);
}

#[test]
fn bf16_inputs_are_computed_in_f32_and_get_bf16_gradients() {
    // Tolerance: bf16 has an 8-bit mantissa; the reference rounds its scores
    // and probabilities to bf16 too.
    assert_same(
        (1, 6, 2, 130, 32),
        &Visibility::new(0, None),
        (SIXTY_FOUR, Products::F32),
        DType::BF16,
        0.05,
    );
}

#[test]
fn training_tiles_on_pairs_agree_with_the_whole_matrix() {
    if !pair_tiles_available() {
        eprintln!("skipped: this CPU does not multiply bf16 pairs fast");
        return;
    }
    // f32 inputs, as a bf16 base trains them. SmolLM2's heads (3 query
    // heads a key head: odd row counts in the ragged last block); packed
    // samples that cut tiles anywhere, in blocks of different sizes.
    let packed = Visibility::new(0, Some(&[100, 28, 1, 107, 64]));
    let blocks = Blocks {
        queries: 48,
        keys: 80,
    };
    let causal = Visibility::new(0, None);
    let pairs = Products::Bf16Pairs;
    // Every product's inputs rounded to bf16 (8-bit mantissas): measured
    // at most 0.0029 on outputs below 1 and 0.0073 on value gradients up
    // to 4.2.
    let tolerance = 0.015;
    assert_same(
        (1, 9, 3, 203, 64),
        &causal,
        (SIXTY_FOUR, pairs),
        DType::F32,
        tolerance,
    );
    assert_same(
        (1, 6, 2, 300, 32),
        &packed,
        (blocks, pairs),
        DType::F32,
        tolerance,
    );
}

#[test]
fn bf16_prompts_on_pairs_agree_with_the_f32_tiles() {
    // Where the CPU has fast bf16 pairs a bf16 prompt's tiles go on them
    // (elsewhere both sides take the f32 tiles). Partial diagonal tiles
    // give odd key counts; packed samples cut tiles anywhere.
    let packed = Visibility::new(0, Some(&[100, 28, 1, 107, 64]));
    let cases = [
        ((1, 9, 3, 200, 64), Visibility::new(0, None), SIXTY_FOUR),
        (
            (1, 6, 2, 300, 32),
            packed,
            Blocks {
                queries: 48,
                keys: 80,
            },
        ),
    ];
    for ((b, h, kv, t, d), vis, blocks) in cases {
        let [q, k, v] = [(h, 1), (kv, 2), (kv, 3)]
            .map(|(heads, s)| random((b, heads, t, d), s).to_dtype(DType::BF16).unwrap());
        let ours = attend_inference(&q, &k, &v, &vis, blocks).unwrap();
        assert_eq!(ours.dtype(), DType::BF16);
        let [q, k, v] = [&q, &k, &v].map(|x| x.to_dtype(DType::F32).unwrap());
        let f32_tiles = attend_inference(&q, &k, &v, &vis, blocks).unwrap();
        let diff = max_abs_diff(&ours.to_dtype(DType::F32).unwrap(), &f32_tiles).unwrap();
        // The output rounded to bf16 (|out| < 1: 2^-9) and the
        // probabilities rounded to bf16 for the weighted sums.
        assert!(diff < 6e-3, "{t} positions, d {d}: max difference {diff}");
    }
}

/// The same inputs give the same gradients to the bit, however the
/// threads interleave: many key blocks per head on more threads than cores
/// is where a shared dQ summed in finishing order used to vary.
#[test]
fn gradients_are_the_same_on_every_run() {
    let [q, k, v] = [(4, 1), (2, 2), (2, 3)].map(|(heads, s)| random((1, heads, 160, 16), s));
    let probe = random((1, 4, 160, 16), 4);
    let blocks = Blocks {
        queries: 16,
        keys: 16,
    };
    let vis = Visibility::new(0, None);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(6)
        .build()
        .unwrap();
    let gradients = || {
        pool.install(|| {
            run(
                |q, k, v| flash_attention(q, k, v, &vis, (blocks, Products::F32)),
                (&q, &k, &v),
                &probe,
            )
        })
    };
    let first = gradients();
    for _ in 0..30 {
        for (name, (a, b)) in ["output", "dq", "dk", "dv"]
            .iter()
            .zip(first.iter().zip(&gradients()))
        {
            let diff = max_abs_diff(a, b).unwrap();
            assert_eq!(diff, 0.0, "{name} differs between two runs");
        }
    }
}

#[test]
fn strided_views_are_read_as_candle_lays_them_out() {
    let x = random((2, 3, 5, 4), 9);
    for dtype in [DType::F32, DType::BF16] {
        let whole = x.to_dtype(dtype).unwrap();
        // A transposed view (runs of one value), a narrowed one (runs with
        // gaps, from an offset: a prompt's keys in the cache), both, and
        // the contiguous whole.
        let views = [
            whole.transpose(1, 2).unwrap(),
            whole.narrow(2, 1, 3).unwrap(),
            whole.transpose(2, 3).unwrap().narrow(3, 2, 2).unwrap(),
            whole.clone(),
        ];
        for view in views {
            let want = view.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
            let want = want.to_vec1::<f32>().unwrap();
            assert_eq!(flat(&view).unwrap(), want, "{:?} {dtype:?}", view.dims());
        }
    }
}

#[test]
fn query_rows_come_back_in_every_dtype() {
    // 6 query heads over 2 key/value heads.
    let q = random((2, 6, 5, 4), 10);
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let q = q.to_dtype(dtype).unwrap();
        let rows = query_rows(&q, 2).unwrap();
        let back = from_query_rows(rows, q.dims4().unwrap(), 2, dtype).unwrap();
        assert_eq!(back.dtype(), dtype);
        let wide = |x: &Tensor| x.to_dtype(DType::F32).unwrap();
        assert_eq!(
            max_abs_diff(&wide(&back), &wide(&q)).unwrap(),
            0.0,
            "{dtype:?}"
        );
    }
}

#[test]
fn keys_and_values_that_do_not_fit_the_queries_are_refused() {
    let q = random((1, 2, 10, 8), 1);
    let k = random((1, 1, 10, 8), 2);
    let tiles = (SIXTY_FOUR, Products::F32);
    let out = flash_attention(&q, &k, &k, &Visibility::new(0, None), tiles).unwrap();
    assert_eq!(out.dims(), &[1, 2, 10, 8]);
    let mismatched = random((1, 1, 9, 8), 3);
    let err = flash_attention(&q, &k, &mismatched, &Visibility::new(0, None), tiles)
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not fit"), "{err}");
}

/// Forward and backward time of one layer's attention with SmolLM2-135M's
/// shape (9 query heads, 3 key/value heads, d 64), blockwise at several
/// block sizes and through the whole matrix where it fits. Run optimised:
/// `cargo test --lib --config 'profile.dev.package.tunebench.opt-level=3'
/// blockwise_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn blockwise_speed() {
    // Wall time, and the CPU time of the whole process (the work done,
    // whatever else shares the cores).
    let cpu_seconds = || {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    };
    let time = |attention: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>, t: usize| {
        let (q, k, v) = (
            random((1, 9, t, 64), 1),
            random((1, 3, t, 64), 2),
            random((1, 3, t, 64), 3),
        );
        let probe = random((1, 9, t, 64), 4);
        let (started, cpu) = (std::time::Instant::now(), cpu_seconds());
        run(attention, (&q, &k, &v), &probe);
        format!(
            "{:.3} s wall, {:.3} s CPU",
            started.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        )
    };
    let vis = Visibility::new(0, None);
    let sizes = [(64, 256), (128, 512), (256, 1024), (128, 2048)];
    for t in [1024, 4096, 8192] {
        for (queries, keys) in sizes {
            let blocks = Blocks { queries, keys };
            let tiles = (blocks, Products::F32);
            let s = time(&|q, k, v| flash_attention(q, k, v, &vis, tiles), t);
            eprintln!("t {t}: blockwise {queries} x {keys}: {s}");
        }
        if t <= 2048 {
            let s = time(&|q, k, v| whole_matrix(q, k, v, &vis), t);
            eprintln!("t {t}: whole matrix: {s}");
        }
    }
}
