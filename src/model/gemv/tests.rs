use super::*;

fn weights(dtype: DType) -> Tensor {
    Tensor::randn(0f32, 1.0, (300, 37), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// candle's `x @ w.T`, in f32.
fn candle_product(x: &Tensor, w: &Tensor) -> Tensor {
    x.broadcast_matmul(&w.to_dtype(DType::F32).unwrap().t().unwrap())
        .unwrap()
}

#[test]
fn matches_candle_matmul_for_bf16_and_f32_weights() {
    // 37 inputs leave a tail past the sixteens; 300 outputs, two blocks.
    let x = Tensor::randn(0f32, 1.0, (1, 2, 37), &Device::Cpu).unwrap();
    for dtype in [DType::BF16, DType::F32] {
        let w = weights(dtype);
        let got = matmul_t(&x, &w).unwrap();
        assert_eq!(got.dims(), &[1, 2, 300]);
        let diff = crate::model::max_abs_diff(&candle_product(&x, &w), &got).unwrap();
        assert!(diff < 1e-4, "{dtype:?}: {diff}");
    }
}

#[test]
fn addends_match_candle_for_ranks_with_and_without_a_tail() {
    // A bias on every row and a LoRA delta on the rows after the
    // first (five: A's products in groups of four and one), for weights
    // split across threads (2,048 outputs) and not (300).
    let dev = &Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (6, 96), dev).unwrap();
    let inputs = rows_of(&x).unwrap();
    for (out, r) in [(300, 8), (2048, 16), (300, 19)] {
        let w = Tensor::randn(0f32, 1.0, (out, 96), dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, out, dev).unwrap();
        let a = Tensor::randn(0f32, 1.0, (r, 96), dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, (out, r), dev).unwrap();
        let addend = Addend {
            bias: Some(&bias),
            low_rank: Some(LowRank {
                first: 1,
                a: &a,
                b: &b,
                scale: 0.5,
            }),
        };
        let got = products_with(&inputs, &w, &addend).unwrap();
        let got = Tensor::from_vec(got, (6, out), dev).unwrap();
        let frozen = candle_product(&x, &w).broadcast_add(&bias).unwrap();
        let adapted = x.narrow(0, 1, 5).unwrap();
        let delta = candle_product(&candle_product(&adapted, &a), &b);
        let want = Tensor::cat(
            &[
                &frozen.narrow(0, 0, 1).unwrap(),
                &(frozen.narrow(0, 1, 5).unwrap() + (delta * 0.5).unwrap()).unwrap(),
            ],
            0,
        )
        .unwrap();
        let diff = crate::model::max_abs_diff(&want, &got).unwrap();
        assert!(diff < 1e-3, "{out} outputs, rank {r}: {diff}");
        // A product made elsewhere gets the same additions.
        let mut elsewhere = products(&inputs, &w).unwrap();
        add_to_products(&mut elsewhere, &inputs, 96, out, &addend).unwrap();
        assert_eq!(
            elsewhere,
            got.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}

#[test]
fn a_large_f32_weight_split_across_threads_matches_candle() {
    // 2,048 x 96 weights take the parallel path; 3 rows the odd kernel.
    let w = Tensor::randn(0f32, 1.0, (2048, 96), &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (3, 96), &Device::Cpu).unwrap();
    let diff =
        crate::model::max_abs_diff(&candle_product(&x, &w), &matmul_t(&x, &w).unwrap()).unwrap();
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn each_row_gets_what_it_gets_beside_other_rows() {
    // Up to MAX_ROWS rows (a decoding step) a row gets what it gets alone,
    // bit for bit; a prompt's rows (the panel kernel where the CPU has it)
    // get the same bits among any other prompt rows, and within f32
    // rounding of what they get alone. Inputs in f32 and, for bf16
    // weights, also as bf16 values (the pair kernel where the CPU has it).
    let x = Tensor::randn(0f32, 1.0, (9, 96), &Device::Cpu).unwrap();
    let as_bf16 = x.to_dtype(DType::BF16).unwrap();
    for (dtype, x) in [(DType::BF16, &x), (DType::BF16, &as_bf16), (DType::F32, &x)] {
        let w = Tensor::randn(0f32, 1.0, (2048, 96), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let f32_row =
            |t: &Tensor, r: usize| t.narrow(0, r, 1).unwrap().to_dtype(DType::F32).unwrap();
        let together = matmul_t(x, &w).unwrap();
        let step = matmul_t(&x.narrow(0, 0, MAX_ROWS).unwrap(), &w).unwrap();
        // The same row 8 among four others, in second place.
        let others = Tensor::cat(
            &[
                &x.narrow(0, 2, 1).unwrap(),
                &x.narrow(0, 8, 1).unwrap(),
                &x.narrow(0, 0, 3).unwrap(),
            ],
            0,
        )
        .unwrap();
        let among_others = matmul_t(&others, &w).unwrap();
        let same =
            crate::model::max_abs_diff(&f32_row(&together, 8), &f32_row(&among_others, 1)).unwrap();
        assert_eq!(same, 0.0, "{dtype:?} weights, {:?} prompt row", x.dtype());
        for r in 0..9 {
            let alone = matmul_t(&x.narrow(0, r, 1).unwrap(), &w).unwrap();
            let diff =
                crate::model::max_abs_diff(&f32_row(&together, r), &f32_row(&alone, 0)).unwrap();
            if r < MAX_ROWS {
                let diff =
                    crate::model::max_abs_diff(&f32_row(&step, r), &f32_row(&alone, 0)).unwrap();
                assert_eq!(diff, 0.0, "{dtype:?} weights, {:?} step row {r}", x.dtype());
            }
            // Sums of 96 products of about 1: f32 rounding, or one bf16
            // rounding of the result.
            let bound = if x.dtype() == DType::BF16 { 0.25 } else { 1e-4 };
            assert!(
                diff <= bound,
                "{dtype:?} weights, {:?} row {r}: {diff}",
                x.dtype()
            );
        }
    }
}

/// A kernel (`block(rows, w, out)`, one or three rows) on rows that
/// leave a tail past every register width: near the exact sums, and a
/// row's result the same with or without the rows beside it.
fn check_kernel<T>(
    name: &str,
    block: impl Fn(&[&[T]], &[T], &mut [f32]),
    rows: &[&[T]],
    w: &[T],
    exact: &[f64],
) {
    let mut together = [0f32; 3];
    block(rows, w, &mut together);
    for r in 0..3 {
        let mut alone = [0f32];
        block(&rows[r..r + 1], w, &mut alone);
        assert_eq!(together[r], alone[0], "{name}, row {r}");
        let error = (together[r] as f64 - exact[r]).abs();
        assert!(error < 1e-4, "{name}, row {r}: off by {error}");
    }
}

#[test]
fn every_kernel_sums_right_and_keeps_rows_apart() {
    let mut rng = crate::data::rng::SplitMix64::new(7);
    let mut draw =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect() };
    let (x, w) = (draw(3 * 150), draw(150));
    let rows: Vec<&[f32]> = x.chunks_exact(150).collect();
    let exact: Vec<f64> = rows
        .iter()
        .map(|row| row.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum())
        .collect();
    let portable = |rows: &[&[f32]], w: &[f32], out: &mut [f32]| match rows.len() {
        1 => out.copy_from_slice(&dots_lanes::<f32, 1, 16>(rows, w)),
        _ => out.copy_from_slice(&dots_lanes::<f32, 3, 16>(rows, w)),
    };
    check_kernel("portable", portable, &rows, &w, &exact);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (both): called only where the CPU has the features.
        if is_x86_feature_detected!("avx512f") {
            let avx512 = |rows: &[&[f32]], w: &[f32], out: &mut [f32]| unsafe {
                match rows.len() {
                    1 => x86::block_avx512::<f32, 1>(rows, w, w.len(), out),
                    _ => x86::block_avx512::<f32, 3>(rows, w, w.len(), out),
                }
            };
            check_kernel("AVX-512", avx512, &rows, &w, &exact);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            let avx2 = |rows: &[&[f32]], w: &[f32], out: &mut [f32]| unsafe {
                match rows.len() {
                    1 => x86::block_avx2::<f32, 1>(rows, w, w.len(), out),
                    _ => x86::block_avx2::<f32, 3>(rows, w, w.len(), out),
                }
            };
            check_kernel("AVX2", avx2, &rows, &w, &exact);
        }
    }
}

#[test]
fn the_bf16_pair_kernel_sums_right_and_keeps_rows_apart() {
    #[cfg(target_arch = "x86_64")]
    if cpu_multiplies_bf16_pairs() {
        // 200 values: a step of 128, two of 32 and a tail of 8.
        let mut rng = crate::data::rng::SplitMix64::new(11);
        let mut draw = |n: usize| -> Vec<u16> {
            let values = (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0);
            values.map(|v| bf16::from_f32(v).to_bits()).collect()
        };
        let (x, w) = (draw(3 * 200), draw(200));
        let rows: Vec<&[u16]> = x.chunks_exact(200).collect();
        let value = |bits: u16| bf16::from_bits(bits).to_f64();
        let exact: Vec<f64> = rows
            .iter()
            .map(|row| row.iter().zip(&w).map(|(&a, &b)| value(a) * value(b)).sum())
            .collect();
        // SAFETY: the CPU has the features, checked above.
        let kernel = |rows: &[&[u16]], w: &[u16], out: &mut [f32]| unsafe {
            match rows.len() {
                1 => x86::block_avx512_bf16::<1>(rows, w, w.len(), out),
                _ => x86::block_avx512_bf16::<3>(rows, w, w.len(), out),
            }
        };
        check_kernel("AVX-512 bf16", kernel, &rows, &w, &exact);
    }
}

#[test]
fn bf16_inputs_take_the_pair_kernel_only_when_they_are_bf16_values() {
    let exact = vec![1.5f32, -0.25, 3.0];
    let rounded_away = vec![1.5f32, 0.1, 3.0];
    let pairs = cpu_multiplies_bf16_pairs();
    assert_eq!(narrow_inputs::<bf16>(&exact).is_some(), pairs);
    assert!(narrow_inputs::<bf16>(&rounded_away).is_none());
    assert!(narrow_inputs::<f32>(&exact).is_none());
    // Through the public path, on bf16 activations as a bf16 model has:
    // a prompt's 11 rows (groups of 4, 4 and 3) where the CPU has the
    // pair kernel.
    let x = Tensor::randn(0f32, 1.0, (11, 37), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let w = weights(DType::BF16);
    let got = matmul_t(&x, &w).unwrap().to_dtype(DType::F32).unwrap();
    let exact = candle_product(&x.to_dtype(DType::F32).unwrap(), &w);
    let diff = crate::model::max_abs_diff(&exact, &got).unwrap();
    // The result is rounded to bf16 (x's dtype): within 2^-8 of the
    // largest value, plus the f32 sums' own error.
    let largest = crate::model::max_abs_diff(&exact, &exact.zeros_like().unwrap()).unwrap();
    assert!(diff <= largest / 200.0, "{diff} of {largest}");
}

#[test]
fn products_together_equal_each_product_alone() {
    // Three weights of different heights sharing inputs, large enough
    // together for the parallel path; two input rows.
    let inputs = rows_of(&Tensor::randn(0f32, 1.0, (2, 96), &Device::Cpu).unwrap()).unwrap();
    for dtype in [DType::BF16, DType::F32] {
        let ws: Vec<Tensor> = [1200, 300, 37]
            .iter()
            .map(|&out| {
                Tensor::randn(0f32, 1.0, (out, 96), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
            })
            .collect();
        let none: Vec<Addend> = ws.iter().map(|_| Addend::default()).collect();
        let together = products_together(&inputs, &ws.iter().collect::<Vec<_>>(), &none).unwrap();
        for (w, got) in ws.iter().zip(&together) {
            assert_eq!(got, &products(&inputs, w).unwrap(), "{dtype:?}");
        }
    }
    let mixed = [weights(DType::F32), weights(DType::BF16)];
    let none = [Addend::default(), Addend::default()];
    assert!(products_together(&[0.0; 37], &[&mixed[0], &mixed[1]], &none).is_err());
}

#[test]
fn inputs_that_are_not_whole_rows_are_an_error() {
    let w = weights(DType::F32);
    assert!(products(&[0.0; 40], &w).is_err());
}

#[test]
fn a_long_bf16_prompt_gets_the_same_products_and_addends() {
    // Rows past SEQUENCE_FROM (a ragged last block), bf16 values and
    // weights: where the CPU multiplies bf16 pairs or fp16 fast, the
    // training pass's product path; the LoRA delta from row 70, inside the
    // second block of rows its addition is shared out in.
    let dev = &Device::Cpu;
    let n = super::prompt::SEQUENCE_FROM + 37;
    let x = Tensor::randn(0f32, 1.0, (n, 96), dev)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let w = Tensor::randn(0f32, 1.0, (300, 96), dev)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let bias = Tensor::randn(0f32, 1.0, 300, dev).unwrap();
    let a = Tensor::randn(0f32, 1.0, (8, 96), dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, (300, 8), dev).unwrap();
    let addend = Addend {
        bias: Some(&bias),
        low_rank: Some(LowRank {
            first: 70,
            a: &a,
            b: &b,
            scale: 0.5,
        }),
    };
    let got = products_with(&rows_of(&x).unwrap(), &w, &addend).unwrap();
    let got = Tensor::from_vec(got, (n, 300), dev).unwrap();
    let frozen = candle_product(&x, &w).broadcast_add(&bias).unwrap();
    let delta = candle_product(&candle_product(&x.narrow(0, 70, n - 70).unwrap(), &a), &b);
    let want = Tensor::cat(
        &[
            &frozen.narrow(0, 0, 70).unwrap(),
            &(frozen.narrow(0, 70, n - 70).unwrap() + (delta * 0.5).unwrap()).unwrap(),
        ],
        0,
    )
    .unwrap();
    // On fp16, each output within fp16's rounding of 64-input sums of the
    // magnitudes its products sum (`panel/halves.rs`); else near-exact.
    let magnitudes = candle_product(&x.abs().unwrap(), &w.abs().unwrap());
    let bound = match super::prompt::panel_takes_halves() {
        true => (magnitudes * (2f64.powi(-11) * 66.0)).unwrap(),
        false => magnitudes.ones_like().unwrap().affine(1e-3, 0.0).unwrap(),
    };
    let excess = ((want - got).unwrap().abs().unwrap() - bound).unwrap();
    let worst = excess.flatten_all().unwrap().max(0).unwrap();
    assert!(worst.to_scalar::<f32>().unwrap() <= 0.0, "{worst}");
}
