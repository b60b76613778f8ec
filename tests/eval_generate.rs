//! `eval --generate` end to end on the tiny model: a few training steps make
//! an adapter, then base and adapter answer three records (two labelled, one
//! multi-file project) and the results land in JSON, JSONL and Markdown.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use tunebench::eval::results::read_results;

use common::root;

fn tunebench(args: &[&str]) -> Output {
    common::ok(common::tunebench(args))
}

/// A tiny model and an adapter trained on it for a few steps: (model, adapter).
fn model_and_adapter(work: &Path) -> (String, String) {
    let model = work.join("tiny");
    tunebench(&["init-tiny", "--out", model.to_str().unwrap()]);
    let config = work.join("train.toml");
    let data = root().join("sample-data/chat_small.jsonl");
    std::fs::write(
        &config,
        format!(
            "[model]\nname = {:?}\n[data]\ntrain = {:?}\nmax_seq_len = 128\n\
             [training]\nmax_steps = 3\nlr = 1e-2\neval_every = 3\ncheckpoint_every = 3\n",
            model.to_str().unwrap(),
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let run = work.join("run");
    tunebench(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    let adapter = run.join("adapter");
    assert!(adapter.join("adapter_model.safetensors").exists());
    (
        model.to_str().unwrap().to_string(),
        adapter.to_str().unwrap().to_string(),
    )
}

/// Two labelled completion records and the first multi-file project.
fn eval_data(work: &Path) -> PathBuf {
    let projects =
        std::fs::read_to_string(root().join("sample-data/fastapi_projects.jsonl")).unwrap();
    let project = projects.lines().next().unwrap();
    let path = work.join("eval.jsonl");
    std::fs::write(
        &path,
        format!(
            "{{\"prompt\": \"Review: a wonderful, moving film.\", \"completion\": \"positive\", \"label\": \"positive\"}}\n\
             {{\"prompt\": \"Review: dull and far too long.\", \"completion\": \"negative\", \"label\": \"negative\"}}\n\
             {project}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn generate_eval_compares_base_and_adapter() {
    let work = tempfile::tempdir().unwrap();
    let (model, adapter) = model_and_adapter(work.path());
    let data = eval_data(work.path());
    let data = data.to_str().unwrap();
    let common = [
        "--model",
        &model,
        "--adapter",
        &adapter,
        "--data",
        data,
        "--max-seq-len",
        "256",
    ];
    let args = [
        &["eval"][..],
        &common,
        &["--generate", "--max-new-tokens", "8", "--json"],
    ]
    .concat();
    let out = tunebench(&args);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("answers cut at the token limit"),
        "the table is on stderr with --json too:\n{stderr}"
    );

    // The plain `eval --json` contract holds, with the adapter's loss.
    let plain = [&["eval"][..], &common, &["--json"]].concat();
    let plain: Value = serde_json::from_slice(&tunebench(&plain).stdout).unwrap();
    assert_eq!(doc["samples"], 3);
    assert_eq!(doc["tokens"], plain["tokens"]);
    let (a, b) = (
        doc["loss"].as_f64().unwrap(),
        plain["loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    assert!(
        doc["signature"]
            .as_str()
            .unwrap()
            .starts_with("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|")
    );

    for side in ["base", "adapter"] {
        let s = &doc[side];
        assert_eq!(s["samples"], 3, "{side}");
        for key in [
            "exact_match",
            "f1",
            "rouge_l",
            "score",
            "loss",
            "perplexity",
        ] {
            assert!(s[key].is_number(), "{side}.{key}: {s}");
        }
        assert!(s["bleu"]["score"].is_number());
        let k = &s["classification"];
        assert_eq!(k["labels"], serde_json::json!(["negative", "positive"]));
        assert_eq!(k["confusion"].as_array().unwrap().len(), 2);
        assert_eq!(k["confusion"][0].as_array().unwrap().len(), 3);
        assert_eq!(s["code"]["samples"], 1);
        // Every answer either ended by itself or was cut, and each says which.
        let (ended, cut) = (
            s["ended"].as_u64().unwrap(),
            s["cut_at_limit"].as_u64().unwrap(),
        );
        assert_eq!(ended + cut, 3, "{side}: {s}");
        let cut_here = doc["per_sample"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                matches!(
                    p[side]["stop"].as_str(),
                    Some("max_tokens" | "context_full")
                )
            })
            .count();
        assert_eq!(cut as usize, cut_here, "{side}");
    }
    let base_loss = doc["base"]["loss"].as_f64().unwrap();
    assert!((base_loss - a).abs() > 1e-6, "the adapter changes the loss");

    let per_sample = doc["per_sample"].as_array().unwrap();
    assert_eq!(per_sample.len(), 3);
    for (i, s) in per_sample.iter().enumerate() {
        assert_eq!(s["index"], i);
        for key in ["tokens", "loss", "prompt", "reference", "score_delta"] {
            assert!(!s[key].is_null(), "per_sample[{i}].{key}");
        }
        for side in ["base", "adapter"] {
            assert!(s[side]["answer"].is_string());
            assert!(s[side]["new_tokens"].as_u64().unwrap() <= 8);
        }
    }
    assert_eq!(per_sample[0]["label"], "positive");
    assert!(per_sample[0]["base"]["label_correct"].is_boolean());
    assert_eq!(per_sample[2]["primary"], "code_score");
    let code = &per_sample[2]["adapter"]["code"];
    assert_eq!(code["parsed"], false, "eight tokens make no project");
    assert_eq!(code["expected_files"], 17);

    // Results and report go beside the adapter directory.
    let run = Path::new(&adapter).parent().unwrap();
    let results = read_results(&run.join("eval-results.jsonl")).unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[1].adapter.as_ref().unwrap().answer,
        per_sample[1]["adapter"]["answer"]
    );
    let report = std::fs::read_to_string(run.join("eval-report.md")).unwrap();
    assert!(report.contains("## Summary") && report.contains("## Labels: adapter"));
    // Samples are numbered from 1, as the Data tab numbers them, and a
    // multi-file record shows its request, not its heading.
    assert!(report.contains("\n| 3 | 3 | code_score |"), "{report}");
    assert!(!report.contains("| ## Request"), "{report}");

    // Human output: a table on stderr, nothing on stdout; --out and --report.
    let out = work.path().join("elsewhere");
    let report = work.path().join("r.md");
    let args = [
        &["eval"][..],
        &common,
        &["--generate", "--max-new-tokens", "4", "--limit", "1"],
        &[
            "--out",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    ]
    .concat();
    let human = tunebench(&args);
    assert!(human.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&human.stderr);
    assert!(
        stderr.contains("ROUGE-L F") && stderr.contains("BLEU signature"),
        "{stderr}"
    );
    assert_eq!(
        read_results(&out.join("eval-results.jsonl")).unwrap().len(),
        1
    );
    assert!(report.exists());
}
