//! The model commands as a user runs them, on the tiny model.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use tunebench::model::decoder::Mode;
use tunebench::model::generate::{GenerateParams, StopReason, generate};
use tunebench::model::lora::LoraSpec;
use tunebench::model::{LoadOptions, Model, adapter};

use common::{ok, tunebench};

fn tiny(dir: &Path) -> PathBuf {
    let out = dir.join("tiny");
    ok(tunebench(&["init-tiny", "--out", out.to_str().unwrap()]));
    out
}

fn file_bytes(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

#[test]
fn init_tiny_is_deterministic_per_seed() {
    let work = tempfile::tempdir().unwrap();
    let a = tiny(work.path());
    let b = work.path().join("again");
    ok(tunebench(&["init-tiny", "--out", b.to_str().unwrap()]));
    let c = work.path().join("other-seed");
    ok(tunebench(&[
        "init-tiny",
        "--out",
        c.to_str().unwrap(),
        "--seed",
        "7",
    ]));
    for name in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model.safetensors",
    ] {
        assert_eq!(
            file_bytes(&a, name),
            file_bytes(&b, name),
            "{name} differs between runs"
        );
    }
    assert_ne!(
        file_bytes(&a, "model.safetensors"),
        file_bytes(&c, "model.safetensors")
    );
    let config: Value = serde_json::from_slice(&file_bytes(&a, "config.json")).unwrap();
    assert_eq!(config["architectures"][0], "Qwen2ForCausalLM");
}

#[test]
fn generate_is_repeatable_and_stops_on_request() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Build a blog API",
            "--max-new-tokens",
            "12",
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_slice(&ok(tunebench(&args)).stdout).unwrap()
    };
    let greedy = run(&[]);
    assert_eq!(
        greedy["tokens"],
        run(&[])["tokens"],
        "greedy decoding repeats"
    );
    assert_eq!(greedy["tokens"].as_array().unwrap().len(), 12);
    assert_eq!(greedy["stop"], "max_tokens");
    // A random model is confident in a few tokens; a high temperature varies them.
    let sampling = ["--temperature", "5.0", "--top-k", "200", "--seed", "3"];
    let sampled = run(&sampling);
    assert_eq!(
        sampled["tokens"],
        run(&sampling)["tokens"],
        "a seed repeats its sample"
    );
    assert_ne!(sampled["tokens"], greedy["tokens"]);
    // Stopping at a piece of the sampled text cuts it just before.
    let text = sampled["text"].as_str().unwrap();
    let stop: String = text
        .chars()
        .skip(text.chars().count() / 2)
        .take(2)
        .collect();
    let cut = &text[..text.find(&stop).unwrap()];
    let stopped = run(&[&sampling[..], &["--stop", &stop]].concat());
    assert_eq!(stopped["stop"], "stop_string");
    assert_eq!(stopped["text"], cut);
}

#[test]
fn streaming_cancellation_and_adapter_switch() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let mut model = Model::load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let prompt = model.tokenizer.text_ids("def main():").unwrap();
    let params = GenerateParams {
        max_new_tokens: 10,
        ..Default::default()
    };
    let never = AtomicBool::new(false);
    let mut streamed = String::new();
    let base = generate(&model, &prompt, &params, Mode::BASE, &never, |piece| {
        streamed.push_str(piece)
    })
    .unwrap();
    assert_eq!(streamed, base.text, "the streamed pieces make up the text");
    let cancelled = generate(
        &model,
        &prompt,
        &params,
        Mode::BASE,
        &AtomicBool::new(true),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        (cancelled.stop, cancelled.tokens.len()),
        (StopReason::Cancelled, 0)
    );

    let spec = LoraSpec::all_linear(4, 8.0);
    adapter::attach_new(&mut model.decoder, &spec, 1).unwrap();
    adapter::randomize(&mut model.decoder, 0.5, 1).unwrap();
    let adapted = generate(&model, &prompt, &params, Mode::ADAPTED, &never, |_| {}).unwrap();
    let base_again = generate(&model, &prompt, &params, Mode::BASE, &never, |_| {}).unwrap();
    assert_ne!(
        adapted.tokens, base.tokens,
        "the adapter changes the answer"
    );
    assert_eq!(
        base_again.tokens, base.tokens,
        "one copy of the weights serves both"
    );
}

#[test]
fn merged_model_equals_base_plus_adapter() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let adapter_dir = work.path().join("adapter");
    let mut model = Model::load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let spec = LoraSpec::all_linear(8, 16.0);
    adapter::attach_new(&mut model.decoder, &spec, 2).unwrap();
    adapter::randomize(&mut model.decoder, 0.2, 2).unwrap();
    adapter::save(&model.decoder, &spec, dir.to_str().unwrap(), &adapter_dir).unwrap();
    let merged = work.path().join("merged");
    let (m, a, o) = (
        dir.to_str().unwrap(),
        adapter_dir.to_str().unwrap(),
        merged.to_str().unwrap(),
    );
    ok(tunebench(&[
        "merge",
        "--model",
        m,
        "--adapter",
        a,
        "--out",
        o,
    ]));
    for name in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model.safetensors",
    ] {
        assert!(merged.join(name).exists(), "merged model lacks {name}");
    }
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-data/chat_small.jsonl");
    let eval = |args: &[&str]| -> f64 {
        let mut all = vec!["eval", "--data", data.to_str().unwrap(), "--json"];
        all.extend_from_slice(args);
        let report: Value = serde_json::from_slice(&ok(tunebench(&all)).stdout).unwrap();
        report["loss"].as_f64().unwrap()
    };
    let adapted = eval(&["--model", m, "--adapter", a]);
    let merged_loss = eval(&["--model", o]);
    let base = eval(&["--model", m]);
    assert!(
        (adapted - merged_loss).abs() < 1e-4,
        "merged {merged_loss} vs base+adapter {adapted}"
    );
    assert!((adapted - base).abs() > 1e-3);
}

#[test]
fn chat_answers_a_single_prompt_and_a_piped_conversation() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    let out = ok(tunebench(&[
        "chat",
        "--model",
        model.to_str().unwrap(),
        "Hello",
        "--max-new-tokens",
        "5",
    ]));
    assert!(!out.stdout.is_empty());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tunebench"))
        .args([
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--max-new-tokens",
            "4",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first question\n/reset\nsecond question\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("history cleared"));
    // A prompt before each of the three lines and one at the end of input.
    assert_eq!(stderr.matches("> ").count(), 4, "{stderr}");
}

#[test]
fn unsupported_architecture_is_named() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("Qwen2ForCausalLM", "GPT2LMHeadModel");
    std::fs::write(&config, text).unwrap();
    let out = tunebench(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--data",
        "x.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unsupported architecture GPT2LMHeadModel"),
        "{stderr}"
    );
}

#[test]
fn repo_ids_resolve_through_the_hub_cache() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    // The standard cache layout: models--org--name/refs/main -> snapshots/<hash>/.
    let cache = work.path().join("hub");
    let repo = cache.join("models--acme--tiny-chat");
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd").unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
    }
    let run = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_tunebench"))
            .args([
                "generate",
                "--model",
                id,
                "--prompt",
                "hi",
                "--max-new-tokens",
                "2",
            ])
            .env("HF_HUB_CACHE", &cache)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    };
    ok(run("acme/tiny-chat"));
    let missing = run("acme/not-cached");
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("acme/not-cached") && stderr.contains("models--acme--not-cached"),
        "{stderr}"
    );
}

#[test]
fn sharded_weights_and_bf16_load() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-data/alpaca_small.json");
    let eval = |dir: &Path, extra: &[&str]| -> f64 {
        let mut args = vec![
            "eval",
            "--model",
            dir.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let report: Value = serde_json::from_slice(&ok(tunebench(&args)).stdout).unwrap();
        report["loss"].as_f64().unwrap()
    };
    let single = eval(&model, &[]);
    // Split the weights into two shards with an index, as large models ship.
    let tensors =
        candle_core::safetensors::load(model.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let subset: std::collections::HashMap<String, candle_core::Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&subset, model.join(shard)).unwrap();
        for n in part.iter() {
            weight_map.insert((*n).clone(), Value::String(shard.into()));
        }
    }
    std::fs::remove_file(model.join("model.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        model.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    assert_eq!(
        eval(&model, &[]),
        single,
        "sharded weights give the same loss"
    );
    let bf16 = eval(&model, &["--dtype", "bf16"]);
    assert!((bf16 - single).abs() < 0.05, "bf16 {bf16} vs f32 {single}");
}

#[test]
fn generate_takes_its_prompt_from_a_dataset_record() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny(work.path());
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-data/fastapi_projects.jsonl");
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let out = ok(tunebench(&[
        "generate",
        "--model",
        m,
        "--data",
        d,
        "--index",
        "2",
        "--max-new-tokens",
        "3",
        "--json",
    ]));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The system prompt and the request layout make a long prompt.
    assert!(result["prompt_tokens"].as_u64().unwrap() > 100, "{result}");
    let missing = tunebench(&["generate", "--model", m, "--data", d, "--index", "999"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("--index 999 but the file has 30 records")
    );
}

/// The tiny model with its context cut to `positions`.
fn tiny_with_context(dir: &Path, positions: usize) -> PathBuf {
    let model = tiny(dir);
    set_json_key(
        &model.join("config.json"),
        "max_position_embeddings",
        positions.into(),
    );
    model
}

#[test]
fn prompts_past_the_models_context_are_refused_and_answers_stop_at_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny_with_context(work.path(), 64);
    let model_arg = dir.to_str().unwrap();
    let long = "word ".repeat(200);
    let refused = tunebench(&["generate", "--model", model_arg, "--prompt", &long]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("more than the model's 64 positions (max_position_embeddings"),
        "{stderr}"
    );
    let data = common::root().join("sample-data/alpaca_small.json");
    let eval = tunebench(&[
        "eval",
        "--model",
        model_arg,
        "--data",
        data.to_str().unwrap(),
        "--max-seq-len",
        "100",
    ]);
    let stderr = String::from_utf8_lossy(&eval.stderr);
    assert!(
        stderr.contains("max_seq_len 100 is more than the model's 64 positions"),
        "{stderr}"
    );

    let model = Model::load(model_arg, &LoadOptions::default()).unwrap();
    let prompt = model.tokenizer.text_ids("def main():").unwrap();
    let params = GenerateParams {
        max_new_tokens: 500,
        sampling: tunebench::model::sampler::SamplingParams {
            temperature: 0.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let out = generate(
        &model,
        &prompt,
        &params,
        Mode::BASE,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    // The random base never ends its turn, so it runs into the context.
    assert_eq!(out.stop, StopReason::ContextFull);
    assert_eq!(prompt.len() + out.tokens.len(), 64);
}

/// Rewrites one key of a JSON file in place.
fn set_json_key(path: &Path, key: &str, value: Value) {
    let mut json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json[key] = value;
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

fn load_error(dir: &Path) -> String {
    let out = tunebench(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "hi",
    ]);
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_config_that_disagrees_with_its_weights_is_named_before_loading() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let config_path = dir.join("config.json");
    let config: Value = serde_json::from_slice(&file_bytes(&dir, "config.json")).unwrap();
    let (vocab, hidden) = (&config["vocab_size"], &config["hidden_size"]);
    let wider = hidden.as_u64().unwrap() * 2;
    set_json_key(&config_path, "hidden_size", wider.into());
    let stderr = load_error(&dir);
    assert!(
        stderr.contains(&format!(
            "`model.embed_tokens.weight` is [{vocab}, {hidden}] in the weights, but config.json's \
             vocab_size {vocab}, hidden_size {wider} make it [{vocab}, {wider}]"
        )),
        "{stderr}"
    );
    set_json_key(&config_path, "hidden_size", hidden.clone());
    set_json_key(&config_path, "vocab_size", 1_000_000_000_000u64.into());
    let stderr = load_error(&dir);
    assert!(stderr.contains("vocab_size 1000000000000"), "{stderr}");
    set_json_key(&config_path, "vocab_size", vocab.clone());
    set_json_key(&config_path, "num_hidden_layers", 4_000_000_000u64.into());
    let stderr = load_error(&dir);
    assert!(
        stderr.contains("num_hidden_layers is 4000000000, but the weights hold"),
        "{stderr}"
    );
}

#[test]
fn adapters_that_do_not_fit_their_config_or_hold_nan_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let mut model = Model::load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let spec = LoraSpec::all_linear(4, 8.0);
    adapter::attach_new(&mut model.decoder, &spec, 3).unwrap();
    let saved = work.path().join("adapter");
    adapter::save(&model.decoder, &spec, "tiny", &saved).unwrap();
    let config = saved.join("adapter_config.json");
    let error = |model: &mut Model| model.load_adapter(&saved).unwrap_err().to_string();

    set_json_key(&config, "r", 64.into());
    let e = error(&mut model);
    assert!(
        e.contains("has rank 4, but adapter_config.json says r 64"),
        "{e}"
    );
    set_json_key(&config, "r", 4.into());
    set_json_key(
        &config,
        "target_modules",
        serde_json::json!(["q_proj", "qkv_proj"]),
    );
    let e = error(&mut model);
    assert!(
        e.contains("target_modules names `qkv_proj`, which this model does not have; its projections are q_proj"),
        "{e}"
    );
    set_json_key(&config, "target_modules", serde_json::json!(["q_proj"]));
    let e = error(&mut model);
    assert!(e.contains("do not name k_proj"), "{e}");
    set_json_key(&config, "target_modules", serde_json::json!(["all-linear"]));
    model.load_adapter(&saved).unwrap();

    let mut poisoned = false;
    model.decoder.for_each_projection_mut(|_, _, linear| {
        if let (Some(lora), false) = (&linear.lora, poisoned) {
            let nan = candle_core::Tensor::full(f32::NAN, lora.b.shape(), lora.b.device()).unwrap();
            lora.b.set(&nan).unwrap();
            poisoned = true;
        }
    });
    adapter::save(&model.decoder, &spec, "tiny", &saved).unwrap();
    let e = error(&mut model);
    assert!(
        e.contains("`base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight` holds")
            && e.contains("NaN or infinite"),
        "{e}"
    );
}

#[test]
fn an_empty_prompt_and_a_zero_max_seq_len_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = tiny(work.path());
    let m = dir.to_str().unwrap();
    let model = Model::load(m, &LoadOptions::default()).unwrap();
    let never = AtomicBool::new(false);
    let params = GenerateParams::default();
    let e = generate(&model, &[], &params, Mode::BASE, &never, |_| {}).unwrap_err();
    assert!(e.to_string().contains("the prompt is empty"), "{e}");
    let out = tunebench(&["generate", "--model", m, "--raw", "--prompt", ""]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the prompt is empty: it renders to 0 tokens"),
        "{stderr}"
    );

    let data = common::root().join("sample-data/chat_small.jsonl");
    let out = tunebench(&[
        "eval",
        "--model",
        m,
        "--data",
        data.to_str().unwrap(),
        "--max-seq-len",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max-seq-len"), "{stderr}");
    let store = tunebench::data::Store::open(&data).unwrap();
    let e = tunebench::eval::loss::evaluate(&model, &store, 1, Mode::BASE, |_, _| {}).unwrap_err();
    assert!(
        e.to_string()
            .contains("max_seq_len 1: a loss needs at least 2 tokens"),
        "{e}"
    );
}
