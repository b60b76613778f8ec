//! Gradient checkpointing (`training.gradient_checkpointing`): the loss and
//! one AdamW step equal the plain path's, on the tiny model and on a random
//! Llama shape, and a run with the key on trains end to end.

mod common;

use candle_core::{DType, Device};
use serde_json::Value;
use tunebench::model::adapter;
use tunebench::model::config::ModelConfig;
use tunebench::model::decoder::Decoder;
use tunebench::model::lora::LoraSpec;
use tunebench::model::max_abs_diff;
use tunebench::model::tokenize::Encoded;
use tunebench::model::weights::RandomWeights;
use tunebench::model::{LoadOptions, Model};
use tunebench::train::batches::{Batch, Example, make_batch};
use tunebench::train::optim::{AdamW, AdamWParams};
use tunebench::train::trainer::{lora_params, optimizer_step};

use common::runs::{events, tiny_config};
use common::{ok, tiny_model as tiny, tunebench};

const TOLERANCE: f32 = 1e-5;

/// r 8 on all seven projections; with dropout the recompute has to draw
/// the forward's masks again.
fn spec(dropout: f64) -> LoraSpec {
    LoraSpec {
        dropout,
        ..LoraSpec::all_linear(8, 16.0)
    }
}

/// Attaches a seeded adapter whose B is not zero (a fresh B would give A
/// no gradient to compare).
fn adapt(decoder: &mut Decoder, dropout: f64) {
    adapter::attach_new(decoder, &spec(dropout), 7).unwrap();
    adapter::randomize(decoder, 0.05, 7).unwrap();
}

/// AdamW; its first step is about `lr * sign(g)`, except where `|g|` is
/// near `eps`.
fn optimizer(decoder: &Decoder, eps: f64) -> AdamW {
    let hyper = AdamWParams {
        beta1: 0.9,
        beta2: 0.999,
        eps,
        weight_decay: 0.01,
    };
    AdamW::new(lora_params(decoder), hyper).unwrap()
}

/// One optimizer step over `batches` on each decoder, the first plain and
/// the second checkpointed; the losses, gradient norms and every parameter
/// after the step must agree.
fn assert_same_step(plain: &Decoder, checkpointed: &Decoder, batches: &[Batch]) {
    let (mut opt_plain, mut opt_ckpt) = (optimizer(plain, 1e-8), optimizer(checkpointed, 1e-8));
    let (loss, norm) =
        optimizer_step(plain, &mut opt_plain, batches, 1e-3, 0.0, 11, false).unwrap();
    let (loss_c, norm_c) =
        optimizer_step(checkpointed, &mut opt_ckpt, batches, 1e-3, 0.0, 11, true).unwrap();
    assert!(loss.is_finite() && norm > 0.0, "loss {loss}, norm {norm}");
    assert!(
        (loss - loss_c).abs() < TOLERANCE as f64,
        "loss {loss} vs {loss_c}"
    );
    assert!(
        (norm - norm_c).abs() < TOLERANCE as f64 * norm.max(1.0),
        "gradient norm {norm} vs {norm_c}"
    );
    // What the optimizer keeps across steps must not hold the step's graph
    // (a moment that recorded its gradient's graph kept every activation:
    // 2.3 GB per step on SmolLM2 at 1,024 tokens).
    for (name, opt) in [("plain", &opt_plain), ("checkpointed", &opt_ckpt)] {
        for (param, (m, v)) in &opt.moments {
            assert!(
                !m.track_op() && !v.track_op(),
                "{name}: the moments of {param} hold a graph"
            );
        }
    }
    let pairs = opt_plain.params.iter().zip(&opt_ckpt.params);
    for (p, c) in pairs {
        assert_eq!(p.name, c.name);
        let diff = max_abs_diff(p.var.as_tensor(), c.var.as_tensor()).unwrap();
        assert!(
            diff < TOLERANCE,
            "{} differs by {diff} after the step",
            p.name
        );
    }
    assert_eq!(opt_plain.params.len(), plain.layers.len() * 7 * 2);
}

/// A row of `ids` holding samples of lengths `segments` (one sample when
/// empty); the first token of each sample is prompt, the rest trained.
fn example(ids: Vec<u32>, segments: Vec<usize>) -> Example {
    let mut trained = vec![true; ids.len()];
    trained[0] = false;
    let mut start = 0;
    for &n in &segments {
        start += n;
        if start < ids.len() {
            trained[start] = false;
        }
    }
    let targets = trained[1..].iter().filter(|&&t| t).count();
    Example {
        line: 1,
        encoded: Encoded { ids, trained },
        segments,
        targets,
    }
}

fn tokens(n: usize, seed: u32, vocab: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 7919 + seed * 104_729 + 13) % vocab)
        .collect()
}

fn random_llama() -> Decoder {
    let config = ModelConfig::from_json(&serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 176,
        "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2,
        "vocab_size": 320, "max_position_embeddings": 1024
    }))
    .unwrap();
    let source = RandomWeights {
        config: config.clone(),
        device: Device::Cpu,
        dtype: DType::F32,
        seed: 3,
    };
    let mut decoder = Decoder::load(config, &source).unwrap();
    adapt(&mut decoder, 0.1);
    decoder
}

#[test]
fn random_llama_shape_at_seq_300_steps_as_the_plain_path() {
    let (plain, checkpointed) = (random_llama(), random_llama());
    let one = example(tokens(300, 1, 320), Vec::new());
    let batch = make_batch(&[&one], 0, &Device::Cpu).unwrap();
    assert_same_step(&plain, &checkpointed, &[batch]);
}

fn tiny_decoder(dir: &std::path::Path, dropout: f64) -> Decoder {
    let mut model = Model::load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    adapt(&mut model.decoder, dropout);
    model.decoder
}

#[test]
fn tiny_model_packed_and_padded_batches_step_as_the_plain_path() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let (plain, checkpointed) = (tiny_decoder(&dir, 0.1), tiny_decoder(&dir, 0.1));
    let vocab = plain.vocab_size() as u32;
    // Three samples packed in one row, then a batch of two padded to the longer.
    let packed = example(tokens(90, 2, vocab), vec![40, 25, 25]);
    let (long, short) = (
        example(tokens(70, 3, vocab), Vec::new()),
        example(tokens(33, 4, vocab), Vec::new()),
    );
    let batches = [
        make_batch(&[&packed], 0, &Device::Cpu).unwrap(),
        make_batch(&[&long, &short], 0, &Device::Cpu).unwrap(),
    ];
    assert!(batches[0].segments.is_some());
    assert_same_step(&plain, &checkpointed, &batches);
}

#[test]
fn a_packed_row_trains_as_its_samples_would_alone() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let vocab = Model::load(dir.to_str().unwrap(), &LoadOptions::default())
        .unwrap()
        .decoder
        .vocab_size() as u32;
    let (a, b) = (tokens(30, 5, vocab), tokens(20, 6, vocab));
    let joined: Vec<u32> = a.iter().chain(&b).copied().collect();
    let packed = [make_batch(&[&example(joined, vec![30, 20])], 0, &Device::Cpu).unwrap()];
    let separate = [
        make_batch(&[&example(a, Vec::new())], 0, &Device::Cpu).unwrap(),
        make_batch(&[&example(b, Vec::new())], 0, &Device::Cpu).unwrap(),
    ];
    for checkpointing in [false, true] {
        // No dropout: a row's masks cannot equal its samples' masks.
        let (packed_model, separate_model) = (tiny_decoder(&dir, 0.0), tiny_decoder(&dir, 0.0));
        // A large eps makes the step follow the gradient's size, not its
        // sign: the two sum the same terms in different orders.
        let (mut opt_p, mut opt_s) = (
            optimizer(&packed_model, 1e-2),
            optimizer(&separate_model, 1e-2),
        );
        let step = |d, opt, batches| optimizer_step(d, opt, batches, 1e-3, 0.0, 5, checkpointing);
        let (loss_p, _) = step(&packed_model, &mut opt_p, &packed).unwrap();
        let (loss_s, _) = step(&separate_model, &mut opt_s, &separate).unwrap();
        assert!(
            (loss_p - loss_s).abs() < TOLERANCE as f64,
            "checkpointing {checkpointing}: packed loss {loss_p}, separate {loss_s}"
        );
        for (p, s) in opt_p.params.iter().zip(&opt_s.params) {
            let diff = max_abs_diff(p.var.as_tensor(), s.var.as_tensor()).unwrap();
            assert!(diff < TOLERANCE, "{} differs by {diff}", p.name);
        }
    }
}

#[test]
fn train_with_checkpointing_runs_and_logs_the_plain_runs_losses() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    tiny_config(work.path(), &model, 3);
    let config = work.path().join("config.toml");
    let losses = |name: &str, extra: &[&str]| -> Vec<f64> {
        let run = work.path().join(name);
        let mut args = vec![
            "train",
            "--config",
            config.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(tunebench(&args));
        let all = events(&run);
        let end = all.last().unwrap();
        assert_eq!(end["status"], Value::from("completed"), "{end}");
        all.iter()
            .filter(|e| e["event"] == "step")
            .map(|e| e["loss"].as_f64().unwrap())
            .collect()
    };
    let plain = losses("plain", &[]);
    let checkpointed = losses(
        "checkpointed",
        &["--set", "training.gradient_checkpointing=true"],
    );
    assert_eq!(plain.len(), 3);
    for (p, c) in plain.iter().zip(&checkpointed) {
        assert!(
            (p - c).abs() < 1e-5,
            "step losses {plain:?} vs {checkpointed:?}"
        );
    }
    let written = std::fs::read_to_string(work.path().join("checkpointed/config.toml")).unwrap();
    assert!(
        written.contains("gradient_checkpointing = true"),
        "the run's config records the setting:\n{written}"
    );
}
