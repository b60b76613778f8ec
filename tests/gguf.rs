//! Reading GGUF models: small GGUF files written in the test from the tiny
//! model and the parity fixtures load like their safetensors folders
//! (exactly for f32 and f16 tensors, within quantization error for Q8_0 and
//! Q4_0), tokenise alike, and work wherever `--model` is taken, including
//! through an Ollama model store.

mod common;
#[path = "common/gguf.rs"]
mod gguf_writer;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use tunebench::data::read::to_sample;
use tunebench::data::{Format, Store};
use tunebench::model::gguf::{GgufFile, GgufWeights};
use tunebench::model::weights::{TensorSource, Weights};
use tunebench::model::{ChatTokenizer, LoadOptions, Model, max_abs_diff};

fn fixture_model(name: &str) -> PathBuf {
    common::root()
        .join("tests/fixtures/parity/models")
        .join(name)
}

/// `dir` written as `out/NAME.gguf` with matrices as `quant`.
fn as_gguf(dir: &Path, out: &Path, quant: GgmlDType, pre: &str) -> PathBuf {
    let name = dir.file_name().unwrap().to_str().unwrap();
    let path = out.join(format!("{name}-{quant:?}.gguf"));
    gguf_writer::write(dir, &path, quant, pre);
    path
}

fn load(path: &Path) -> Model {
    Model::load(path.to_str().unwrap(), &LoadOptions::default()).unwrap()
}

/// Largest difference between each GGUF tensor and the safetensors one.
fn tensor_differences(dir: &Path, gguf: &Path) -> Vec<(String, f32, f32)> {
    let file = GgufFile::open(gguf).unwrap();
    let config = file.model_config().unwrap();
    let ours = GgufWeights::new(&file, &config, DType::F32, &Device::Cpu).unwrap();
    let theirs = Weights::open(dir, DType::F32, &Device::Cpu).unwrap();
    config
        .tensor_names()
        .into_iter()
        .map(|name| {
            let a = ours.get(&name).unwrap();
            let b = theirs.get(&name).unwrap();
            assert_eq!(a.dims(), b.dims(), "{name}");
            let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            let diff = max_abs_diff(&a, &b).unwrap();
            (name, diff, scale.to_scalar::<f32>().unwrap())
        })
        .collect()
}

#[test]
fn f32_gguf_loads_exactly_like_safetensors_for_every_architecture() {
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    let models = [
        (tiny, "qwen2"),
        (fixture_model("llama"), "default"),
        (fixture_model("qwen2"), "default"),
        (fixture_model("qwen3"), "default"),
        (fixture_model("mistral"), "default"),
    ];
    let ids = [1u32, 17, 300, 42, 9, 255, 3, 100];
    for (dir, pre) in models {
        let gguf = as_gguf(&dir, work.path(), GgmlDType::F32, pre);
        for (name, diff, _) in tensor_differences(&dir, &gguf) {
            assert_eq!(diff, 0.0, "{}: {name}", dir.display());
        }
        let from_dir = load(&dir);
        let from_gguf = load(&gguf);
        let mut want = from_dir.decoder.config.clone();
        let got = &from_gguf.decoder.config;
        // What GGUF spells differently: Llama 3 RoPE as factors, and no dtype.
        if want.rope_scaling.take().is_some() {
            assert!(got.rope_freq_factors.is_some(), "{}", dir.display());
            want.rope_freq_factors = got.rope_freq_factors.clone();
        }
        want.dtype = None;
        // Only a GGUF file stores projections in a type of its own.
        assert!(got.stored_projection_bytes.is_some());
        want.stored_projection_bytes = got.stored_projection_bytes;
        // Mistral is written as the llama architecture and runs as one.
        if want.arch == tunebench::model::config::Arch::Mistral {
            want.arch = tunebench::model::config::Arch::Llama;
        }
        // GGUF stores epsilon as f32.
        assert!((got.rms_norm_eps - want.rms_norm_eps).abs() < 1e-12);
        want.rms_norm_eps = got.rms_norm_eps;
        assert_eq!(got, &want, "{}", dir.display());
        let diff = max_abs_diff(
            &common::base_logits(&from_dir, &ids),
            &common::base_logits(&from_gguf, &ids),
        )
        .unwrap();
        assert!(diff < 1e-5, "{}: logits differ by {diff}", dir.display());
        assert_eq!(from_gguf.stop_ids, from_dir.stop_ids, "{}", dir.display());
    }
}

#[test]
fn f16_and_quantized_ggufs_load_within_their_precision() {
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    // Largest error per tensor as a share of its largest value: f16 rounds
    // to 11 bits, Q8_0 to a 127th of a 32-block's range, Q4_0 to an 8th.
    // And the logits of a few tokens move by at most `logit_bound`.
    for (quant, bound, logit_bound) in [
        (GgmlDType::F16, 1e-3, 1e-2),
        (GgmlDType::Q8_0, 1.0 / 127.0, 0.25),
        (GgmlDType::Q4_0, 1.0 / 7.0, 2.0),
    ] {
        let gguf = as_gguf(&tiny, work.path(), quant, "qwen2");
        for (name, diff, scale) in tensor_differences(&tiny, &gguf) {
            assert!(
                diff <= bound * scale,
                "{quant:?} {name}: off by {diff} at scale {scale}"
            );
            if quant == GgmlDType::F16 {
                // f16 holds these values exactly once rounded to it.
                let theirs = Weights::open(&tiny, DType::F32, &Device::Cpu).unwrap();
                let rounded = theirs.get(&name).unwrap().to_dtype(DType::F16).unwrap();
                let file = GgufFile::open(&gguf).unwrap();
                let config = file.model_config().unwrap();
                let ours = GgufWeights::new(&file, &config, DType::F16, &Device::Cpu).unwrap();
                let diff = max_abs_diff(
                    &ours.get(&name).unwrap().to_dtype(DType::F32).unwrap(),
                    &rounded.to_dtype(DType::F32).unwrap(),
                )
                .unwrap();
                assert_eq!(diff, 0.0, "f16 {name}");
            }
        }
        let model = load(&gguf);
        let ids = [1u32, 17, 300, 42];
        let diff = max_abs_diff(
            &common::base_logits(&load(&tiny), &ids),
            &common::base_logits(&model, &ids),
        )
        .unwrap();
        println!("{quant:?}: logits differ by {diff}");
        assert!(diff < logit_bound, "{quant:?}: logits differ by {diff}");
    }
}

/// Every sample of sample-data/ encodes alike (ids and trained mask).
fn assert_tokenises_alike(ours: &ChatTokenizer, theirs: &ChatTokenizer, what: &str) -> usize {
    let mut checked = 0;
    for name in [
        "chat_small.jsonl",
        "alpaca_small.json",
        "sharegpt_small.jsonl",
        "fastapi_projects.jsonl",
    ] {
        let store = Store::open(common::root().join("sample-data").join(name)).unwrap();
        for i in 0..store.len() {
            let record = store.value(i).unwrap().unwrap();
            let format = Format::detect(&record).unwrap();
            let sample = to_sample(format, &record, &mut Vec::new()).unwrap();
            for train_on_inputs in [false, true] {
                assert_eq!(
                    ours.encode(&sample, train_on_inputs).unwrap(),
                    theirs.encode(&sample, train_on_inputs).unwrap(),
                    "{what}: {name} record {i}"
                );
            }
            let raw = String::from_utf8_lossy(&store.raw(i).unwrap()).into_owned();
            assert_eq!(
                ours.text_ids(&raw).unwrap(),
                theirs.text_ids(&raw).unwrap(),
                "{what}: {name} {i}"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn byte_level_bpe_rebuilt_from_metadata_encodes_like_the_original() {
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    let cases = [(tiny, "qwen2"), (fixture_model("llama"), "default")];
    for (dir, pre) in cases {
        let gguf = as_gguf(&dir, work.path(), GgmlDType::Q8_0, pre);
        let ours = GgufFile::open(&gguf).unwrap().chat_tokenizer().unwrap();
        let theirs = ChatTokenizer::load_dir(&dir).unwrap();
        assert_eq!(ours.eos_token, theirs.eos_token);
        let checked = assert_tokenises_alike(&ours, &theirs, &dir.display().to_string());
        assert!(checked >= 90, "{checked}");
        let text = "Hello <|im_start|>user\nnaïve 12345 ok<|im_end|>";
        let ids = ours.text_ids(text).unwrap();
        assert_eq!(ids, theirs.text_ids(text).unwrap());
        assert_eq!(ours.decode(&ids), theirs.decode(&ids));
    }
}

/// A SentencePiece vocabulary (Llama 2 style) as GGUF metadata, no tensors.
fn spm_gguf(out: &Path) -> PathBuf {
    use candle_core::quantized::gguf_file::{self, Value};
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let pieces = ["\u{2581}", "h", "i", "\u{2581}h", "hi", "\u{2581}hi"];
    tokens.extend(pieces.map(String::from));
    let mut scores = vec![0f32; 3 + 256];
    scores.extend([0.0, 0.0, 0.0, -1.0, -2.0, -3.0]);
    let mut types = vec![2, 3, 3];
    types.extend([6; 256]);
    types.extend([1; 6]);
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
    ];
    let refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let path = out.join("spm.gguf");
    gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &refs, &[]).unwrap();
    path
}

#[test]
fn sentencepiece_vocabulary_merges_by_score_with_byte_fallback() {
    let work = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&spm_gguf(work.path())).unwrap();
    let tokenizer = file.chat_tokenizer().unwrap();
    let (bos, space, space_hi) = (1, 259, 264);
    // BOS first (llama's default); "▁h"+"i" outranks "▁"+"hi"; "é" is not in
    // the vocabulary, so its two UTF-8 bytes stand for it.
    let ids = tokenizer.text_ids("hi é").unwrap();
    assert_eq!(ids, [bos, space_hi, space, 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(tokenizer.decode(&ids), "hi é");
    assert_eq!(
        (tokenizer.bos_token.as_str(), tokenizer.eos_token.as_str()),
        ("<s>", "</s>")
    );
    // Control tokens in text stay whole.
    assert_eq!(tokenizer.text_ids("</s>").unwrap(), [bos, 2]);
}

#[test]
fn unreadable_or_unsupported_files_get_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    let gguf = as_gguf(&tiny, work.path(), GgmlDType::Q8_0, "qwen2");
    let bytes = std::fs::read(&gguf).unwrap();
    let truncated = work.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let not_gguf = work.path().join("weights.bin");
    std::fs::write(&not_gguf, b"not a model").unwrap();
    let spm_only = spm_gguf(work.path());
    let cases: [(&Path, &[&str]); 3] = [
        (&truncated, &["truncated.gguf", "blk."]),
        (&not_gguf, &["weights.bin", "not a GGUF file"]),
        (
            &spm_only,
            &["spm.gguf", "llama.embedding_length", "missing"],
        ),
    ];
    for (path, wanted) in cases {
        let err = Model::load(path.to_str().unwrap(), &LoadOptions::default())
            .err()
            .unwrap()
            .to_string();
        for piece in wanted {
            assert!(err.contains(piece), "{}: {err}", path.display());
        }
    }
}

#[test]
fn every_command_takes_a_gguf_file_and_an_ollama_name() {
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    let f32_gguf = as_gguf(&tiny, work.path(), GgmlDType::F32, "qwen2");
    let q8_gguf = as_gguf(&tiny, work.path(), GgmlDType::Q8_0, "qwen2");
    // A fake Ollama store holding the Q8_0 file as `tiny:q8`.
    let store = work.path().join("ollama");
    let digest = "sha256:0123abcd";
    std::fs::create_dir_all(store.join("blobs")).unwrap();
    std::fs::copy(&q8_gguf, store.join("blobs/sha256-0123abcd")).unwrap();
    let manifests = store.join("manifests/registry.ollama.ai/library/tiny");
    std::fs::create_dir_all(&manifests).unwrap();
    let manifest = serde_json::json!({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:ffff"},
        {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": 1},
    ]});
    std::fs::write(manifests.join("q8"), manifest.to_string()).unwrap();
    std::fs::write(manifests.join("nolayer"), r#"{"layers": []}"#).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tunebench"))
            .args(args)
            .env("OLLAMA_MODELS", &store)
            .output()
            .unwrap()
    };
    let stdout = |args: &[&str]| String::from_utf8(common::ok(run(args)).stdout).unwrap();
    let generate = |model: &str| {
        stdout(&[
            "generate",
            "--model",
            model,
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "6",
        ])
    };
    let (tiny_s, f32_s, q8_s) = (
        tiny.to_str().unwrap(),
        f32_gguf.to_str().unwrap(),
        q8_gguf.to_str().unwrap(),
    );
    assert_eq!(generate("ollama:tiny:q8"), generate(q8_s));
    assert_eq!(generate(f32_s), generate(tiny_s));

    let data = common::root().join("sample-data/chat_small.jsonl");
    let data = data.to_str().unwrap();
    let stats = |model: &str| stdout(&["data", "stats", data, "--model", model, "--json"]);
    assert_eq!(stats(f32_s), stats(tiny_s));

    // train's dry run reads the shape and tokenizer from the GGUF metadata.
    let dry_run = |model: &str| -> serde_json::Value {
        let config = work.path().join("dry-run.toml");
        let text = format!("[model]\nname = {model:?}\n[data]\ntrain = {data:?}\n");
        std::fs::write(&config, text).unwrap();
        let config = config.to_str().unwrap();
        let out = stdout(&["train", "--dry-run", "--json", "--config", config]);
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        serde_json::json!([report["tokens"], report["memory_total"]])
    };
    assert_eq!(dry_run(f32_s), dry_run(tiny_s));
    assert_eq!(dry_run("ollama:tiny:q8"), dry_run(tiny_s));

    let loss = |args: &[&str]| -> f64 {
        let mut all = vec!["eval", "--data", data, "--json"];
        all.extend_from_slice(args);
        let report: serde_json::Value = serde_json::from_str(&stdout(&all)).unwrap();
        report["loss"].as_f64().unwrap()
    };
    let adapter_dir = work.path().join("adapter");
    {
        use tunebench::model::adapter;
        use tunebench::model::lora::LoraSpec;
        let mut model = load(&tiny);
        let spec = LoraSpec::all_linear(4, 8.0);
        adapter::attach_new(&mut model.decoder, &spec, 3).unwrap();
        adapter::randomize(&mut model.decoder, 0.2, 3).unwrap();
        adapter::save(&model.decoder, &spec, tiny_s, &adapter_dir).unwrap();
    }
    let a = adapter_dir.to_str().unwrap();
    let adapted = loss(&["--model", f32_s, "--adapter", a]);
    assert!((adapted - loss(&["--model", tiny_s, "--adapter", a])).abs() < 1e-5);
    // merge from a GGUF base writes a folder transformers' layout loads.
    let merged = work.path().join("merged");
    stdout(&[
        "merge",
        "--model",
        f32_s,
        "--adapter",
        a,
        "--out",
        merged.to_str().unwrap(),
    ]);
    let merged_loss = loss(&["--model", merged.to_str().unwrap()]);
    assert!(
        (merged_loss - adapted).abs() < 1e-4,
        "{merged_loss} vs {adapted}"
    );

    for (model, wanted) in [
        (
            "ollama:missing",
            "manifests/registry.ollama.ai/library/missing/latest",
        ),
        ("ollama:tiny:nolayer", "application/vnd.ollama.image.model"),
    ] {
        let out = run(&["generate", "--model", model, "--prompt", "Hi"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(wanted),
            "{model}: {stderr}"
        );
    }
}
