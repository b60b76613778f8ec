//! `tunebench data split` and `data convert` as a user runs them: deterministic
//! stratified splits, lossy conversions reported, and outputs that never
//! overwrite their input.

mod common;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::tunebench;

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn sample_data(name: &str) -> PathBuf {
    common::root().join("sample-data").join(name)
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn split_input(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    for i in 0..60 {
        let domain = ["shop", "blog", "clinic"][i % 3];
        let n = if i % 10 == 0 { 0 } else { i }; // every tenth record repeats record 0 of its kind
        lines.push(json!({"prompt": format!("request {n} {domain}"), "context": {"domain": domain}, "output": {"files": {"a.py": format!("x = {n}\n")}}}).to_string());
    }
    let path = dir.join("projects.jsonl");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn split_to(input: &Path, out: &Path, seed: &str) -> (String, String) {
    let result = tunebench(&[
        "data",
        "split",
        input.to_str().unwrap(),
        "--eval-ratio",
        "0.2",
        "--seed",
        seed,
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    (
        fs::read_to_string(out.join("projects.train.jsonl")).unwrap(),
        fs::read_to_string(out.join("projects.eval.jsonl")).unwrap(),
    )
}

#[test]
fn split_is_deterministic_disjoint_and_stratified() {
    let dir = tempfile::tempdir().unwrap();
    let input = split_input(dir.path());
    let (train, eval) = split_to(&input, &dir.path().join("a"), "7");
    let again = split_to(&input, &dir.path().join("b"), "7");
    assert_eq!(
        (train.clone(), eval.clone()),
        again,
        "same seed, same split"
    );
    let other = split_to(&input, &dir.path().join("c"), "8");
    assert_ne!(
        (train.clone(), eval.clone()),
        other,
        "another seed, another split"
    );

    let train_lines: Vec<&str> = train.lines().collect();
    let eval_lines: Vec<&str> = eval.lines().collect();
    assert_eq!(train_lines.len() + eval_lines.len(), 60);
    assert_eq!(eval_lines.len(), 12);
    let train_set: BTreeSet<&str> = train_lines.iter().copied().collect();
    assert!(
        eval_lines.iter().all(|l| !train_set.contains(l)),
        "a record (or its duplicate) is on both sides"
    );
    for domain in ["shop", "blog", "clinic"] {
        let n = eval_lines
            .iter()
            .filter(|l| l.contains(&format!("\"{domain}\"")))
            .count();
        assert_eq!(n, 4, "eval share of {domain}");
    }
    let original = fs::read_to_string(&input).unwrap();
    for line in train_lines.iter().chain(&eval_lines) {
        assert!(
            original.lines().any(|o| o == *line),
            "records are copied verbatim"
        );
    }
}

#[test]
fn split_rejects_impossible_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let input = split_input(dir.path());
    let out = tunebench(&[
        "data",
        "split",
        input.to_str().unwrap(),
        "--eval-count",
        "60",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("leaves no training data"));
}

#[test]
fn convert_reports_lossy_records_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("chat.json");
    let input = sample_data("sharegpt_small.jsonl");
    let out = tunebench(&[
        "data",
        "convert",
        input.to_str().unwrap(),
        "--to",
        "alpaca",
        "--out",
        out_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let report = json_of(&out);
    assert!(report["written"].as_u64().unwrap() >= 10);
    let lossy = report["lossy"].as_array().unwrap();
    assert!(
        lossy
            .iter()
            .any(|l| l["reason"].as_str().unwrap().contains("tool")),
        "tool-use records lose their calls: {lossy:?}"
    );
    let check = tunebench(&["data", "validate", out_path.to_str().unwrap(), "--json"]);
    let report = json_of(&check);
    assert_eq!(report["format"], "alpaca");
    assert_eq!(
        report["errors"],
        0,
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn stats_on_multifile_data() {
    let out = tunebench(&[
        "data",
        "stats",
        sample_data("fastapi_projects.jsonl").to_str().unwrap(),
        "--json",
    ]);
    let stats = json_of(&out);
    assert_eq!(stats["format"], "multifile");
    let code = &stats["code"];
    assert!(code["domains"].as_object().unwrap().len() >= 6);
    assert!(code["languages"]["Python"].as_u64().unwrap() > 0);
    assert!(code["files_per_sample"]["max"].as_u64().unwrap() >= 8);
    assert!(code["tech_stack"]["fastapi"].as_u64().unwrap() >= 24);
}

/// Runs tunebench with a time limit, so a command that would block forever
/// fails the test instead of hanging it.
#[test]
fn convert_that_writes_nothing_fails_and_leaves_the_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("raw.jsonl");
    fs::write(&input, "{\"text\": \"one\"}\n{\"text\": \"two\"}\n").unwrap();
    let fresh = dir.path().join("fresh.jsonl");
    let existing = dir.path().join("existing.jsonl");
    fs::write(&existing, "keep me\n").unwrap();
    for out in [&fresh, &existing] {
        let args = ["data", "convert", input.to_str().unwrap(), "--to", "alpaca"];
        let result = tunebench(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
        assert_eq!(result.status.code(), Some(1), "{}", stderr_of(&result));
        assert!(
            stderr_of(&result).contains("nothing to write: 2 of 2 records skipped"),
            "{}",
            stderr_of(&result)
        );
    }
    assert!(!fresh.exists(), "no empty output file");
    assert_eq!(fs::read_to_string(&existing).unwrap(), "keep me\n");
}

#[test]
fn split_names_the_path_it_cannot_write_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = split_input(dir.path());
    let run = |out_dir: &Path| {
        let out = tunebench(&[
            "data",
            "split",
            input.to_str().unwrap(),
            "--eval-count",
            "5",
            "--out-dir",
            out_dir.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        stderr_of(&out)
    };
    // A file where a folder should be (root may write anywhere, so no chmod).
    let blocked = dir.path().join("file");
    fs::write(&blocked, "").unwrap();
    let stderr = run(&blocked.join("splits"));
    assert!(
        stderr.contains(&format!("{}: ", blocked.join("splits").display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches("Not a directory").count(), 1, "{stderr}");
    // A folder where an output file should be.
    let out_dir = dir.path().join("out");
    fs::create_dir_all(out_dir.join("projects.train.jsonl")).unwrap();
    let stderr = run(&out_dir);
    assert!(
        stderr.contains(&format!(
            "{}: ",
            out_dir.join("projects.train.jsonl").display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");
}

#[test]
fn split_and_convert_never_write_over_their_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("chat.jsonl");
    let text = fs::read_to_string(sample_data("sharegpt_small.jsonl")).unwrap();
    fs::write(&input, &text).unwrap();
    // Through a symbolic link: what split would write as its eval part.
    std::os::unix::fs::symlink("chat.jsonl", dir.path().join("chat.eval.jsonl")).unwrap();
    let split = tunebench(&[
        "data",
        "split",
        input.to_str().unwrap(),
        "--eval-count",
        "1",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&split.stderr);
    assert!(!split.status.success(), "{stderr}");
    assert!(
        stderr.contains("chat.eval.jsonl: it is the input file"),
        "{stderr}"
    );
    let convert = tunebench(&[
        "data",
        "convert",
        input.to_str().unwrap(),
        "--to",
        "chat",
        "--out",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&convert.stderr);
    assert!(!convert.status.success(), "{stderr}");
    assert!(stderr.contains("refusing to write over it"), "{stderr}");
    assert_eq!(fs::read_to_string(&input).unwrap(), text);
}
