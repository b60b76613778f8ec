//! Training and decoding on a base kept quantized (QLoRA): a GGUF file's
//! projections kept in their own types train exactly as the same file
//! widened on load (the products see the same values), at a fraction of the
//! memory; a safetensors model quantized on load trains close to f32; and
//! decoding multiplies the blocks directly, within quantization error.

mod common;
#[path = "common/gguf.rs"]
mod gguf_writer;

use candle_core::quantized::GgmlDType;
use std::path::{Path, PathBuf};
use tunebench::model::base_weight::{FrozenWeight, Quantize};
use tunebench::model::{LoadOptions, Model, max_abs_diff};

fn q8_gguf(work: &Path) -> PathBuf {
    let tiny = common::tiny_model(work);
    let path = work.join("tiny-q8_0.gguf");
    gguf_writer::write(&tiny, &path, GgmlDType::Q8_0, "qwen2");
    path
}

fn load(model: &Path, quantize: Option<Quantize>) -> Model {
    let options = LoadOptions {
        quantize,
        ..Default::default()
    };
    Model::load(model.to_str().unwrap(), &options).unwrap()
}

/// (quantized projections, bytes held by all projections).
fn projection_bytes(model: &Model) -> (usize, usize) {
    let mut quantized = 0;
    let mut bytes = 0;
    for (_, _, linear) in model.decoder.projections() {
        quantized += usize::from(matches!(linear.weight, FrozenWeight::Quantized(_)));
        bytes += linear.weight.byte_size();
    }
    (quantized, bytes)
}

/// Trains `steps` steps of `model` on the chat sample and returns the step
/// losses; `quantize` goes into `[model]`.
fn train_losses(work: &Path, model: &Path, quantize: Option<&str>, name: &str) -> Vec<f64> {
    let data = common::root().join("sample-data/chat_small.jsonl");
    let quantize = quantize.map_or(String::new(), |q| format!("quantize = {q:?}\n"));
    let text = format!(
        "[model]\nname = {:?}\n{quantize}[lora]\ndropout = 0.1\n[data]\ntrain = {:?}\nmax_seq_len = 128\n\
         [training]\nmax_steps = 4\nlr = 3e-3\ngrad_accum = 1\neval_every = 4\neval_at_start = false\ncheckpoint_every = 4\n",
        model.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    let config = work.join(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    let run = work.join(name);
    common::ok(common::tunebench(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]));
    common::runs::events(&run)
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn a_gguf_base_kept_quantized_trains_as_its_widened_load_in_a_third_of_the_memory() {
    let work = tempfile::tempdir().unwrap();
    let gguf = q8_gguf(work.path());

    let kept = load(&gguf, Some(Quantize::Keep));
    let widened = load(&gguf, None);
    let (quantized, kept_bytes) = projection_bytes(&kept);
    let (none, widened_bytes) = projection_bytes(&widened);
    // The down projections' 688-value rows are not whole Q8_0 blocks: the
    // writer stored them as f32, and they stay dense.
    assert_eq!((quantized, none), (4 * 6, 0));
    assert!(
        kept_bytes * 2 < widened_bytes,
        "{kept_bytes} bytes kept, {widened_bytes} widened"
    );

    // The dry run's estimate counts the blocks as the file stores them.
    let dry_weights = |quantize: &str| -> f64 {
        let config = work.path().join("dry.toml");
        let data = common::root().join("sample-data/chat_small.jsonl");
        let text = format!(
            "[model]\nname = {:?}\n{quantize}[data]\ntrain = {:?}\n",
            gguf.to_str().unwrap(),
            data.to_str().unwrap()
        );
        std::fs::write(&config, text).unwrap();
        let out = common::ok(common::tunebench(&[
            "train",
            "--dry-run",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ]));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["memory"]["weights"].as_f64().unwrap()
    };
    let saved = dry_weights("") - dry_weights("quantize = \"keep\"\n");
    let held = (widened_bytes - kept_bytes) as f64;
    assert!(
        (saved - held).abs() < 0.01 * held,
        "estimate saves {saved}, load {held}"
    );

    let plain = train_losses(work.path(), &gguf, None, "widened");
    let quant = train_losses(work.path(), &gguf, Some("keep"), "kept");
    assert_eq!(plain.len(), 4);
    for (step, (a, b)) in plain.iter().zip(&quant).enumerate() {
        assert!((a - b).abs() < 1e-5, "step {}: {a} vs {b}", step + 1);
    }
}

#[test]
fn a_safetensors_base_quantized_on_load_trains_close_to_f32() {
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    let f32_losses = train_losses(work.path(), &tiny, None, "f32");
    let q8_losses = train_losses(work.path(), &tiny, Some("q8_0"), "q8");
    for (a, b) in f32_losses.iter().zip(&q8_losses) {
        assert!((a - b).abs() / a < 0.02, "{f32_losses:?} vs {q8_losses:?}");
    }
    // Training moves the loss: the comparison is not between two constants.
    assert!(f32_losses[3] < f32_losses[0] - 0.1, "{f32_losses:?}");

    // `keep` has nothing to keep in a safetensors folder.
    let config = work.path().join("keep.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nname = {:?}\nquantize = \"keep\"\n[data]\ntrain = {:?}\n",
            tiny.to_str().unwrap(),
            common::root()
                .join("sample-data/chat_small.jsonl")
                .to_str()
                .unwrap()
        ),
    )
    .unwrap();
    let out = common::tunebench(&["train", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("GGUF") && stderr.contains("q8_0"),
        "{stderr}"
    );
    let bad = common::tunebench(&[
        "generate",
        "--model",
        tiny.to_str().unwrap(),
        "--quantize",
        "q3_x",
        "--prompt",
        "hi",
    ]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("q4_k"), "{stderr}");
}

#[test]
fn decoding_multiplies_the_blocks_within_quantization_error() {
    let work = tempfile::tempdir().unwrap();
    let gguf = q8_gguf(work.path());
    let kept = load(&gguf, Some(Quantize::Keep));
    let widened = load(&gguf, None);
    let ids = [5u32, 17, 300, 42, 7, 99, 1000, 3];
    let logits = common::base_logits;
    // Eight rows: the blocks multiply the inputs (quantized to 8 bits).
    let (a, b) = (logits(&kept, &ids), logits(&widened, &ids));
    let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let diff = max_abs_diff(&a, &b).unwrap();
    assert!(
        diff < 0.02 * scale.to_scalar::<f32>().unwrap(),
        "differs by {diff}"
    );
    assert!(diff > 0.0, "the block products were not used");
    // Longer inputs widen one projection at a time: the same values.
    let long: Vec<u32> = (0..40).map(|i| (i * 37 % 4000) as u32).collect();
    let diff = max_abs_diff(&logits(&kept, &long), &logits(&widened, &long)).unwrap();
    assert!(diff < 1e-4, "widened products differ by {diff}");

    let generate = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            gguf.to_str().unwrap(),
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "4",
        ];
        args.extend_from_slice(extra);
        common::ok(common::tunebench(&args))
    };
    let out = generate(&["--quantize", "keep"]);
    assert!(!out.stdout.is_empty());
}
