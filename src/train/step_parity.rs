//! One optimizer step on the tiny model, compared across ways of computing
//! it that must agree: blockwise against whole-matrix attention, and a
//! packed row against its samples one by one.

use super::batches::{Batch, Example, make_batch};
use super::optim::{AdamW, AdamWParams};
use super::trainer::{lora_params, optimizer_step};
use crate::data::rng::SplitMix64;
use crate::model::attend::{TrainingPath, with_training_path};
use crate::model::flash::Blocks;
use crate::model::lora::LoraSpec;
use crate::model::tokenize::Encoded;
use crate::model::{LoadOptions, Model, adapter, max_abs_diff};
use candle_core::{Device, Tensor};
use std::path::Path;

const TOLERANCE: f64 = 1e-5;

fn tiny_model(dir: &Path) -> Model {
    let path = dir.join("tiny");
    if !path.exists() {
        crate::model::tiny::init_tiny(&path, 0, &Default::default()).unwrap();
    }
    let mut model = Model::load(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    adapter::attach_new(&mut model.decoder, &LoraSpec::all_linear(4, 8.0), 1).unwrap();
    adapter::randomize(&mut model.decoder, 0.1, 1).unwrap();
    model
}

/// A sample of `len` tokens whose first `prompt` tokens are not trained.
fn sample(len: usize, prompt: usize, seed: u64) -> Example {
    let mut rng = SplitMix64::new(seed);
    let ids: Vec<u32> = (0..len).map(|_| (rng.next_f64() * 4000.0) as u32).collect();
    let trained: Vec<bool> = (0..len).map(|i| i >= prompt).collect();
    Example {
        line: 1,
        targets: trained.iter().skip(1).filter(|&&t| t).count(),
        encoded: Encoded { ids, trained },
        segments: Vec::new(),
    }
}

/// `samples` in one row, as `batches::pack` joins them: a sample's first
/// token is never a target.
fn packed(samples: &[&Example]) -> Example {
    let mut row = sample(0, 0, 0);
    for s in samples {
        row.encoded.ids.extend_from_slice(&s.encoded.ids);
        row.encoded.trained.push(false);
        row.encoded
            .trained
            .extend_from_slice(&s.encoded.trained[1..]);
        row.segments.push(s.encoded.ids.len());
    }
    row
}

/// Loss, gradient norm and the adapter after one AdamW step from the same
/// start, with training attention going `path`.
fn step(
    dir: &Path,
    micro_batches: &[Vec<&Example>],
    path: TrainingPath,
) -> (f64, f64, Vec<Tensor>) {
    let model = tiny_model(dir);
    let params = lora_params(&model.decoder);
    let hyper = AdamWParams {
        beta1: 0.9,
        beta2: 0.999,
        // A first AdamW step moves each weight by lr · g / (|g| + eps): with
        // the usual 1e-8 a gradient of 1e-9 whose last bits differ between
        // two float summation orders moves its weight by a different share
        // of lr. 1e-6 keeps that amplification below the tolerance for
        // gradients that agree to float precision.
        eps: 1e-6,
        weight_decay: 0.01,
    };
    let mut optimizer = AdamW::new(params, hyper).unwrap();
    let batches: Vec<Batch> = micro_batches
        .iter()
        .map(|examples| make_batch(examples, 0, &Device::Cpu).unwrap())
        .collect();
    let (loss, norm) = with_training_path(path, || {
        optimizer_step(
            &model.decoder,
            &mut optimizer,
            &batches,
            1e-3,
            1.0,
            7,
            false,
        )
        .unwrap()
    });
    let after = lora_params(&model.decoder)
        .iter()
        .map(|p| p.var.as_tensor().copy().unwrap())
        .collect();
    (loss, norm, after)
}

fn assert_same_step(a: (f64, f64, Vec<Tensor>), b: (f64, f64, Vec<Tensor>)) {
    assert!(
        (a.0 - b.0).abs() < TOLERANCE,
        "loss {} against {}",
        a.0,
        b.0
    );
    assert!(
        (a.1 - b.1).abs() < TOLERANCE,
        "grad norm {} against {}",
        a.1,
        b.1
    );
    for (x, y) in a.2.iter().zip(&b.2) {
        let diff = max_abs_diff(x, y).unwrap() as f64;
        assert!(
            diff < TOLERANCE,
            "an adapter tensor differs by {diff} after the step"
        );
    }
}

#[test]
fn blockwise_attention_steps_as_the_whole_matrix_does() {
    let work = tempfile::tempdir().unwrap();
    let (long, short) = (sample(70, 12, 1), sample(45, 9, 2));
    let (a, b, c) = (sample(30, 5, 3), sample(25, 4, 4), sample(40, 6, 5));
    let row = packed(&[&a, &b, &c]);
    // A padded batch of two rows, then a packed row: gradients accumulate.
    let micro = vec![vec![&long, &short], vec![&row]];
    let blocks = Blocks {
        queries: 16,
        keys: 16,
    };
    let blockwise = step(work.path(), &micro, TrainingPath::Blockwise(blocks));
    let whole = step(work.path(), &micro, TrainingPath::Whole);
    assert_same_step(blockwise, whole);
}

#[test]
fn a_packed_row_steps_as_its_samples_one_by_one() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (sample(30, 5, 3), sample(25, 4, 4));
    let row = packed(&[&a, &b]);
    let blocks = Blocks {
        queries: 16,
        keys: 16,
    };
    for path in [TrainingPath::Whole, TrainingPath::Blockwise(blocks)] {
        let together = step(work.path(), &[vec![&row]], path);
        let apart = step(work.path(), &[vec![&a], vec![&b]], path);
        assert_same_step(together, apart);
    }
}
