//! The training engine on the tiny model: gradients, resume, signals.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use tunebench::model::decoder::Mode;
use tunebench::model::lora::{Linear, LoraPair, LoraSpec};
use tunebench::model::loss::summed_nll;
use tunebench::model::tokenize::Encoded;
use tunebench::model::{LoadOptions, Model, adapter};
use tunebench::train::batches::{Example, make_batch};
use tunebench::train::config::TrainConfig;
use tunebench::train::run_dir::RunLog;
use tunebench::train::trainer::{Outcome, Trainer};

use common::runs::tiny_config;
use common::{root, tiny_model as tiny};
use tunebench::model::max_abs_diff;

#[test]
fn every_lora_parameter_gets_a_gradient_and_frozen_weights_none() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let mut model = Model::load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    adapter::attach_new(&mut model.decoder, &LoraSpec::all_linear(4, 8.0), 1).unwrap();
    adapter::randomize(&mut model.decoder, 0.1, 1).unwrap();
    let ids: Vec<u32> = (0..40).map(|i| (i * 37) % 4000).collect();
    let example = Example {
        line: 1,
        encoded: Encoded {
            trained: vec![true; ids.len()],
            ids,
        },
        segments: Vec::new(),
        targets: 39,
    };
    let batch = make_batch(&[&example], 0, &Device::Cpu).unwrap();
    let hidden = model
        .decoder
        .hidden(&batch.ids, None, None, Mode::training(3))
        .unwrap();
    let rows = hidden.squeeze(0).unwrap();
    let loss = summed_nll(
        &model.decoder,
        &rows,
        &batch.positions,
        &batch.targets,
        true,
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    for (path, _, linear) in model.decoder.projections() {
        let lora = linear.lora.as_ref().unwrap();
        for (name, var) in [("A", &lora.a), ("B", &lora.b)] {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{path} {name}: no gradient"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{path} {name}: zero gradient");
            checked += 1;
        }
        assert!(
            grads.get(&linear.weight.dense().unwrap()).is_none(),
            "{path}: the frozen weight got a gradient"
        );
    }
    assert_eq!(checked, 4 * 7 * 2);
}

#[test]
fn lora_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let spec = LoraSpec {
        dropout: 0.0,
        ..LoraSpec::all_linear(3, 6.0)
    };
    // Seeded, so a failure repeats.
    let mut rng = tunebench::data::rng::SplitMix64::new(11);
    let mut randn = |std: f64, shape: &[usize]| {
        let n = shape.iter().product();
        Tensor::from_vec(rng.normal_vec(n, std), shape, &dev).unwrap()
    };
    let weight = randn(0.5, &[5, 4]);
    let bias = randn(0.5, &[5]);
    let a = randn(0.5, &[3, 4]);
    let b = randn(0.5, &[5, 3]);
    let mut layer = Linear::new(weight, Some(bias));
    layer.lora = Some(LoraPair::from_tensors(&a, &b, &spec).unwrap());
    let x = Var::from_tensor(&randn(1.0, &[1, 2, 4])).unwrap();
    let probe = randn(1.0, &[1, 2, 5]);
    let mode = Mode::training(0);
    // A smooth scalar of the layer's output.
    let f = |layer: &Linear| -> f64 {
        let y = layer.forward(x.as_tensor(), mode).unwrap();
        let s = (y.tanh().unwrap() * &probe).unwrap().sum_all().unwrap();
        s.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    };
    let y = layer.forward(x.as_tensor(), mode).unwrap();
    let grads = (y.tanh().unwrap() * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let lora = layer.lora.as_ref().unwrap();
    let (a_var, b_var) = (lora.a.clone(), lora.b.clone());
    for var in [&a_var, &b_var, &x] {
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let original = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for i in 0..original.len() {
            let eps = 1e-2f32;
            let probe_at = |delta: f32| {
                let mut v = original.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                    .unwrap();
                f(&layer)
            };
            // Five-point stencil: its error shrinks with eps^4, so a curved
            // tanh cannot push it past the tolerance.
            let numeric = (8.0 * (probe_at(eps) - probe_at(-eps))
                - (probe_at(2.0 * eps) - probe_at(-2.0 * eps)))
                / (12.0 * eps as f64);
            var.set(&Tensor::from_vec(original.clone(), var.shape(), &dev).unwrap())
                .unwrap();
            let diff = (numeric - analytic[i] as f64).abs();
            assert!(
                diff < 2e-3 * (1.0 + numeric.abs()),
                "element {i}: numeric {numeric} vs analytic {}",
                analytic[i]
            );
        }
    }
}

fn step_losses(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "step")
        .map(|e| (e["step"].as_u64().unwrap(), e["loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn resumed_run_repeats_the_uninterrupted_loss_curve() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    let config = tiny_config(work.path(), &model, 6);

    let whole = work.path().join("whole");
    let mut log = RunLog::open(&whole, false).unwrap();
    let mut trainer = Trainer::new(config.clone(), None).unwrap();
    assert_eq!(
        trainer
            .run(&mut log, &AtomicBool::new(false), |_| None)
            .unwrap(),
        Outcome::Completed
    );

    // The same run, stopped after step 3 and resumed from its checkpoint.
    let parts = work.path().join("parts");
    let mut log = RunLog::open(&parts, false).unwrap();
    let mut trainer = Trainer::new(config.clone(), None).unwrap();
    let stop = AtomicBool::new(false);
    let outcome = trainer.run(&mut log, &stop, |e| {
        if e["event"] == "step" && e["step"] == 3 {
            stop.store(true, Ordering::Relaxed);
        }
        None
    });
    assert_eq!(outcome.unwrap(), Outcome::Stopped);
    let mut resumed = Trainer::new(config, Some(&parts)).unwrap();
    assert_eq!(resumed.state.step, 3);
    assert_eq!(
        resumed
            .run(&mut log, &AtomicBool::new(false), |_| None)
            .unwrap(),
        Outcome::Completed
    );

    let (a, b) = (step_losses(&whole), step_losses(&parts));
    assert_eq!(a.len(), 6);
    assert_eq!(b.len(), 6);
    for ((sa, la), (sb, lb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        assert!(
            (la - lb).abs() < 1e-5,
            "step {sa}: {la} uninterrupted vs {lb} resumed"
        );
    }
    assert!(a[5].1 < a[0].1, "the loss falls: {a:?}");
}

#[test]
fn one_adamw_step_equals_torch_and_peft() {
    let fixtures = root().join("tests/fixtures");
    let work = tempfile::tempdir().unwrap();
    let text = format!(
        "[model]\nname = {:?}\n[lora]\ninit_from = {:?}\ndropout = 0.0\n[data]\ntrain = {:?}\neval_split = 0.0\nmax_seq_len = 4096\n\
         [training]\nmax_steps = 1\nbatch_size = 2\ngrad_accum = 1\nlr = 1e-3\nschedule = \"constant\"\nwarmup_steps = 0\nweight_decay = 0.01\nmax_grad_norm = 1.0\nadam_eps = 1e-6\n",
        fixtures.join("parity/models/qwen2").to_str().unwrap(),
        fixtures
            .join("parity/adapters/qwen2-peft")
            .to_str()
            .unwrap(),
        fixtures.join("train_step/batch.jsonl").to_str().unwrap(),
    );
    let path = work.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let config = TrainConfig::load(Some(&path), &[]).unwrap();
    let run = work.path().join("run");
    let mut log = RunLog::open(&run, false).unwrap();
    let mut trainer = Trainer::new(config, None).unwrap();
    assert_eq!(
        trainer
            .run(&mut log, &AtomicBool::new(false), |_| None)
            .unwrap(),
        Outcome::Completed
    );
    let step = &step_losses(&run)[0];
    assert!((step.1 - 7.618401050567627).abs() < 1e-5, "loss {}", step.1);

    let expected = candle_core::safetensors::load(
        fixtures.join("train_step/after/adapter_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut compared = 0;
    for (path, _, linear) in trainer.model.decoder.projections() {
        let lora = linear.lora.as_ref().unwrap();
        for (suffix, var) in [("lora_A", &lora.a), ("lora_B", &lora.b)] {
            let name = format!("base_model.model.{path}.{suffix}.weight");
            let want = &expected[&name];
            let diff = max_abs_diff(var.as_tensor(), want).unwrap();
            assert!(diff < 1e-5, "{name}: max difference {diff}");
            compared += 1;
        }
    }
    assert_eq!(compared, expected.len());
}

#[test]
fn packed_rows_see_nothing_of_their_neighbours() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let mut model = Model::load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    adapter::attach_new(&mut model.decoder, &LoraSpec::all_linear(4, 8.0), 1).unwrap();
    adapter::randomize(&mut model.decoder, 0.1, 1).unwrap();
    let a: Vec<u32> = (0..7).map(|i| 100 + i * 31).collect();
    let b: Vec<u32> = (0..5).map(|i| 900 + i * 17).collect();
    let joined: Vec<u32> = a.iter().chain(&b).copied().collect();
    let ids = |v: &[u32]| Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    for mode in [
        Mode::ADAPTED,
        Mode {
            dropout_seed: 0,
            ..Mode::training(0)
        },
    ] {
        let alone_a = model.decoder.hidden(&ids(&a), None, None, mode).unwrap();
        let alone_b = model.decoder.hidden(&ids(&b), None, None, mode).unwrap();
        let packed = model
            .decoder
            .hidden(&ids(&joined), None, Some(&[7, 5]), mode)
            .unwrap();
        let separate = Tensor::cat(&[alone_a, alone_b], 1).unwrap();
        let diff = max_abs_diff(&packed, &separate).unwrap();
        assert!(
            diff < 1e-4,
            "packed and separate hidden states differ by {diff}"
        );
    }
}

#[test]
fn packed_training_runs() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    tiny_config(work.path(), &model, 3);
    let config = TrainConfig::load(
        Some(&work.path().join("config.toml")),
        &["data.packing=true".into(), "data.max_seq_len=512".into()],
    )
    .unwrap();
    let run = work.path().join("run");
    let mut log = RunLog::open(&run, false).unwrap();
    let mut trainer = Trainer::new(config, None).unwrap();
    assert!(
        trainer.data.train.iter().any(|e| e.segments.len() > 1),
        "rows hold several samples"
    );
    assert_eq!(
        trainer
            .run(&mut log, &AtomicBool::new(false), |_| None)
            .unwrap(),
        Outcome::Completed
    );
    assert!(step_losses(&run).iter().all(|(_, l)| l.is_finite()));
}

#[test]
fn samples_cut_before_their_answer_are_reported_not_dropped_silently() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    tiny_config(work.path(), &model, 1);
    let data = root().join("sample-data/fastapi_projects.jsonl");
    let overrides = [
        format!("data.train={}", data.display()),
        // Every prompt (system prompt + request) is longer than this.
        "data.max_seq_len=64".to_string(),
    ];
    let err = Trainer::new(
        TrainConfig::load(Some(&work.path().join("config.toml")), &overrides).unwrap(),
        None,
    )
    .err()
    .expect("nothing left to train on");
    assert!(
        err.to_string().contains("no usable training sample"),
        "{err}"
    );
    let overrides = [
        format!("data.train={}", data.display()),
        "data.max_seq_len=240".to_string(),
    ];
    let trainer = Trainer::new(
        TrainConfig::load(Some(&work.path().join("config.toml")), &overrides).unwrap(),
        None,
    )
    .unwrap();
    let skipped = &trainer.data.report.skipped;
    assert!(
        !skipped.is_empty(),
        "some prompts are longer than 240 tokens"
    );
    let (file, line, why) = &skipped[0];
    assert!(
        file.ends_with("fastapi_projects.jsonl") && *line >= 1,
        "{file}:{line}"
    );
    assert!(why.contains("max_seq_len"), "{why}");
    let used = trainer.data.report.train_samples + trainer.data.report.eval_samples;
    assert_eq!(used + skipped.len(), 30, "every record is used or reported");
}
