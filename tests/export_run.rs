//! `export-run --to llamafactory`: what it writes, that the exported data
//! trains the same tokens as the original records, and that LLaMA-Factory's
//! own pipeline tokenised it as tunebench does (the fixture made by
//! scripts/check-export-run.sh).

mod common;

use common::{ok, root, tiny_model, tunebench};
use serde_json::Value;
use std::path::Path;

/// sample-data/tiny-train.toml for the tiny model at `model`, uncut, with
/// `settings` (section, `key = value` lines) added to their sections.
fn config(work: &Path, model: &Path, settings: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(root().join("sample-data/tiny-train.toml"))
        .unwrap()
        .replace(
            "name = \"models/tiny\"",
            &format!("name = {:?}", model.display().to_string()),
        )
        .replace(
            "train = \"sample-data/fastapi_projects.jsonl\"",
            &format!(
                "train = {:?}",
                root()
                    .join("sample-data/fastapi_projects.jsonl")
                    .display()
                    .to_string()
            ),
        )
        .replace("max_seq_len = 512", "max_seq_len = 8192");
    for (section, lines) in settings {
        let header = format!("[{section}]\n");
        text = text.replace(&header, &format!("{header}{lines}\n"));
    }
    let path = work.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn export(work: &Path, config: &Path, extra: &[&str]) -> Value {
    let out = work.join("export");
    let mut args = vec![
        "export-run",
        "--config",
        config.to_str().unwrap(),
        "--to",
        "llamafactory",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_slice(&ok(tunebench(&args)).stdout).unwrap()
}

/// `data tokens` on the exported training file: its first 5 samples.
fn first_five_tokens(work: &Path, model: &Path) -> Vec<Value> {
    let train = work.join("export/data/train.jsonl");
    let tokens = ok(tunebench(&[
        "data",
        "tokens",
        train.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-seq-len",
        "8192",
        "--limit",
        "5",
    ]));
    String::from_utf8_lossy(&tokens.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn llamafactory_tokenised_the_export_as_tunebench_does() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_model(work.path());
    let config = config(work.path(), &model, &[]);
    let report = export(work.path(), &config, &[]);
    assert_eq!(
        (
            report["train_samples"].as_u64(),
            report["eval_samples"].as_u64()
        ),
        (Some(27), Some(3))
    );
    assert_engine_trains_our_tokens(work.path(), &model, "llamafactory_tiny_5.jsonl");
}

/// The engine's own token ids and labels for the first 5 exported samples
/// (a fixture made by scripts/check-export-run.sh) equal `data tokens`'.
fn assert_engine_trains_our_tokens(work: &Path, model: &Path, fixture: &str) {
    let ours = first_five_tokens(work, model);
    let fixture =
        std::fs::read_to_string(root().join("tests/fixtures/handoff").join(fixture)).unwrap();
    let theirs: Vec<Value> = fixture
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ours.len(), 5);
    assert_eq!(theirs.len(), 5);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a["ids"], b["ids"], "sample {}: ids", i + 1);
        let trained: Vec<bool> = b["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_i64() != Some(-100))
            .collect();
        assert_eq!(
            a["trained"],
            serde_json::json!(trained),
            "sample {}: trained",
            i + 1
        );
    }
}

#[test]
fn the_exported_records_train_the_tokens_the_originals_do() {
    use tunebench::model::ChatTokenizer;
    use tunebench::train::batches::choose_samples;
    use tunebench::train::config::TrainConfig;
    let work = tempfile::tempdir().unwrap();
    let model = tiny_model(work.path());
    let config_path = config(work.path(), &model, &[]);
    export(work.path(), &config_path, &[]);
    let config = TrainConfig::load(Some(&config_path), &[]).unwrap();
    let tokenizer = ChatTokenizer::load(model.to_str().unwrap()).unwrap();
    let original = choose_samples(&config.data, config.training.seed).unwrap();
    let mut exported_data = config.data.clone();
    exported_data.train = work
        .path()
        .join("export/data/train.jsonl")
        .display()
        .to_string();
    exported_data.eval_split = 0.0;
    let exported = choose_samples(&exported_data, 0).unwrap();
    assert_eq!(original.train.len(), exported.train.len());
    for ((_, a), (_, b)) in original.train.iter().zip(&exported.train) {
        let (a, b) = (
            tokenizer.encode(a, false).unwrap(),
            tokenizer.encode(b, false).unwrap(),
        );
        assert_eq!(a.ids, b.ids);
        assert_eq!(a.trained, b.trained);
    }
}

#[test]
fn the_yaml_carries_the_settings_and_says_what_it_cannot() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_model(work.path());
    let config = config(
        work.path(),
        &model,
        &[
            ("lora", "use_rslora = true\ntargets = [\"all-linear\"]"),
            ("model", "quantize = \"q4_k\"\ndtype = \"bf16\""),
            ("data", "packing = true"),
            ("training", "early_stopping_patience = 3\nmax_steps = 40"),
        ],
    );
    let report = export(work.path(), &config, &["--gpus", "8", "--nodes", "2"]);
    let dir = work.path().join("export");
    let yaml = std::fs::read_to_string(dir.join("train.yaml")).unwrap();
    for line in [
        "lora_rank: 32",
        "lora_alpha: 64.0",
        "lora_target: \"all\"",
        "use_rslora: true",
        "quantization_bit: 4",
        "bf16: true",
        "packing: true",
        "neat_packing: true",
        "cutoff_len: 8192",
        "learning_rate: 0.003",
        "max_steps: 40",
        "lr_scheduler_type: \"cosine\"",
        "warmup_ratio: 0.03",
        "eval_steps: 54",
        "save_steps: 108",
        "save_total_limit: 3",
        "seed: 42",
        "template: \"chatml\"",
        "deepspeed: \"ds_z3_config.json\"",
    ] {
        assert!(yaml.lines().any(|l| l == line), "{line} in\n{yaml}");
    }
    let zero3: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ds_z3_config.json")).unwrap())
            .unwrap();
    assert_eq!(zero3["zero_optimization"]["stage"], 3);
    let launch = std::fs::read_to_string(dir.join("launch.sh")).unwrap();
    assert!(
        launch.contains("FORCE_TORCHRUN=1 NPROC_PER_NODE=8 NNODES=2")
            && launch.contains("llamafactory-cli train train.yaml"),
        "{launch}"
    );
    let notes: Vec<String> = report["not_carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("bitsandbytes")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("early_stopping_patience")),
        "{notes:?}"
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("## Not carried over") && readme.contains("bitsandbytes"));
}

#[test]
fn a_gguf_base_is_refused_with_the_way_out() {
    let work = tempfile::tempdir().unwrap();
    let gguf = work.path().join("m.gguf");
    std::fs::write(&gguf, b"GGUF\x03\x00\x00\x00").unwrap();
    let config = config(work.path(), &gguf, &[]);
    let out = tunebench(&[
        "export-run",
        "--config",
        config.to_str().unwrap(),
        "--to",
        "llamafactory",
        "--out",
        work.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("GGUF") && text.contains("tunebench merge"),
        "{text}"
    );
}

#[test]
fn axolotl_reads_tunebench_s_rendering_in_trained_pieces() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_model(work.path());
    let config = config(
        work.path(),
        &model,
        &[
            ("lora", "targets = [\"all-linear\"]\nuse_rslora = true"),
            ("model", "quantize = \"q4_k\""),
            ("training", "early_stopping_patience = 3"),
        ],
    );
    let out = work.path().join("export");
    let report: Value = serde_json::from_slice(
        &ok(tunebench(&[
            "export-run",
            "--config",
            config.to_str().unwrap(),
            "--to",
            "axolotl",
            "--out",
            out.to_str().unwrap(),
            "--gpus",
            "4",
            "--nodes",
            "2",
            "--json",
        ]))
        .stdout,
    )
    .unwrap();
    let yaml = std::fs::read_to_string(out.join("axolotl.yaml")).unwrap();
    for line in [
        "adapter: \"qlora\"",
        "load_in_4bit: true",
        "lora_r: 32",
        "lora_target_linear: true",
        "peft_use_rslora: true",
        "sequence_len: 8192",
        "excess_length_strategy: \"truncate\"",
        "micro_batch_size: 1",
        "num_epochs: 20",
        "learning_rate: 0.003",
        "early_stopping_patience: 3",
        "eval_steps: 54",
        "deepspeed: \"ds_z3_config.json\"",
    ] {
        assert!(yaml.lines().any(|l| l == line), "{line} in\n{yaml}");
    }
    // The datasets read tunebench's rendering in trained and untrained
    // pieces, which tokenise one by one as the whole does.
    assert!(!yaml.contains("chat_template"), "the model's own template");
    let datasets = yaml
        .lines()
        .skip_while(|l| *l != "datasets:")
        .nth(1)
        .unwrap()
        .trim_start_matches("  - ");
    let train: Value = serde_json::from_str(datasets).unwrap();
    assert_eq!(train["type"], "input_output");
    assert_eq!(train["path"], "data/train.segments.jsonl");
    assert!(yaml.contains("test_datasets:"));
    let segments = std::fs::read_to_string(out.join("data/train.segments.jsonl")).unwrap();
    let first: Value = serde_json::from_str(segments.lines().next().unwrap()).unwrap();
    let labels: Vec<bool> = first["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_bool().unwrap())
        .collect();
    assert_eq!(labels, [false, true], "prompt, then the answer");
    assert_eq!(segments.lines().count(), 27);
    let launch = std::fs::read_to_string(out.join("launch.sh")).unwrap();
    assert!(
        launch.contains("accelerate launch --num_processes 8 --num_machines 2")
            && launch.contains("-m axolotl.cli.train axolotl.yaml"),
        "{launch}"
    );
    assert_eq!(report["train_samples"].as_u64(), Some(27));
    assert!(
        report["not_carried"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("NF4"))
    );
    assert!(
        !report["not_carried"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("tokenise differently")),
        "{report}"
    );
}

/// tunebench config -> engine YAML -> tunebench config keeps every setting
/// both sides have (the data files become the exported ones).
#[test]
fn configs_round_trip_through_both_engines() {
    use tunebench::train::config::TrainConfig;
    let work = tempfile::tempdir().unwrap();
    let model = tiny_model(work.path()).canonicalize().unwrap();
    let path = config(
        work.path(),
        &model,
        &[
            ("lora", "use_rslora = true"),
            ("data", "train_on_inputs = true"),
            (
                "training",
                "max_steps = 70\nweight_decay = 0.01\nmax_grad_norm = 0.5\nseed = 7\neval_at_start = false\ngradient_checkpointing = false",
            ),
        ],
    );
    let original = TrainConfig::load(Some(&path), &[]).unwrap();
    for (engine, file) in [("axolotl", "axolotl.yaml"), ("llamafactory", "train.yaml")] {
        let out = work.path().join(engine);
        ok(tunebench(&[
            "export-run",
            "--config",
            path.to_str().unwrap(),
            "--to",
            engine,
            "--out",
            out.to_str().unwrap(),
        ]));
        let back = TrainConfig::load(Some(&out.join(file)), &[]).unwrap();
        assert_eq!(back.model, original.model, "{engine}: model");
        assert_eq!(back.lora, original.lora, "{engine}: lora");
        assert_eq!(back.training, original.training, "{engine}: training");
        let (a, b) = (&back.data, &original.data);
        assert_eq!(
            (a.max_seq_len, a.packing, a.train_on_inputs),
            (b.max_seq_len, b.packing, b.train_on_inputs),
            "{engine}: data"
        );
        assert!(
            a.train.ends_with("data/train.jsonl")
                && a.eval
                    .as_deref()
                    .is_some_and(|e| e.ends_with("data/eval.jsonl"))
        );
    }
}

#[test]
fn a_foreign_config_with_keys_tunebench_cannot_honour_is_refused_with_them_all() {
    let work = tempfile::tempdir().unwrap();
    let yaml = work.path().join("config.yml");
    std::fs::write(
        &yaml,
        "model_name: Qwen/Qwen2.5-0.5B\nr: 8\nlora_alpha: 16\nfp16: true\nhub_model_id: me/x\nlearning_rate: 2e-4\n",
    )
    .unwrap();
    let out = tunebench(&["train", "--config", yaml.to_str().unwrap(), "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("cannot honour") && text.contains("fp16") && text.contains("hub_model_id"),
        "{text}"
    );
}

#[test]
fn axolotl_tokenised_the_export_as_tunebench_does() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_model(work.path());
    let config = config(work.path(), &model, &[]);
    export(work.path(), &config, &[]);
    assert_engine_trains_our_tokens(work.path(), &model, "axolotl_tiny_5.jsonl");
}
