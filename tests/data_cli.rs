//! `tunebench data validate` and `data stats` as a user runs them (split and
//! convert are in data_split_convert.rs).

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

#[test]
fn broken_file_triggers_every_finding() {
    let path = sample_data("broken.jsonl");
    let out = tunebench(&["data", "validate", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "errors must exit 1");
    let report = json_of(&out);
    let findings = report["findings"].as_array().unwrap();
    let kinds: BTreeSet<&str> = findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    let expected = [
        "invalid_json",
        "invalid_utf8",
        "byte_order_mark",
        "control_character",
        "unknown_shape",
        "mixed_format",
        "missing_field",
        "empty_field",
        "wrong_type",
        "no_assistant_reply",
        "empty_reply",
        "role_order",
        "short_output",
        "duplicate",
        "preference_record",
        "empty_files",
        "unsafe_path",
        "duplicate_path",
        "syntax_error",
        "duplicate_key",
    ];
    for kind in expected {
        assert!(kinds.contains(kind), "no `{kind}` finding; got {kinds:?}");
    }
    for f in findings {
        assert!(f["line"].as_u64().unwrap() >= 1, "{f}");
        assert!(
            matches!(f["severity"].as_str(), Some("error" | "warning")),
            "{f}"
        );
    }
    let at = |kind: &str| findings.iter().find(|f| f["kind"] == kind).unwrap();
    assert_eq!(at("invalid_json")["line"], 2);
    assert!(at("invalid_json")["column"].as_u64().is_some());
    assert_eq!(
        at("duplicate")["message"],
        "exact duplicate of the record at line 14"
    );
    assert_eq!(at("control_character")["field"], "instruction");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.jsonl:20: output.files[\"app/main.py\"]: Python syntax error"),
        "{stderr}"
    );
}

#[test]
fn shipped_sample_data_validates_clean() {
    let dir = sample_data("");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let is_data = name.ends_with(".jsonl") || name.ends_with(".json");
        if !is_data || name == "broken.jsonl" {
            continue;
        }
        let out = tunebench(&["data", "validate", path.to_str().unwrap(), "--json"]);
        let mut report = json_of(&out);
        let findings = report["findings"].as_array_mut().unwrap();
        // The six refinements, whose base projects have a conftest.py, are
        // listed (`eval --exec` runs those files); nothing else is.
        let test_config = |f: &Value| f["kind"] == "executable_test_config";
        let listed: Vec<Value> = findings
            .iter()
            .filter(|f| test_config(f))
            .cloned()
            .collect();
        findings.retain(|f| !test_config(f));
        if name == "fastapi_projects.jsonl" {
            let lines: Vec<u64> = listed.iter().map(|f| f["line"].as_u64().unwrap()).collect();
            assert_eq!(lines, [10, 14, 18, 22, 26, 30], "{listed:?}");
            let last = &listed[5];
            assert_eq!(last["field"], "context.base_id");
            assert_eq!(last["severity"], "warning");
            let message = last["message"].as_str().unwrap();
            assert!(
                message.contains("`tasks-001` (line 27)") && message.contains("tests/conftest.py"),
                "{message}"
            );
        } else {
            assert!(listed.is_empty(), "{name}: {listed:?}");
        }
        assert_eq!(
            report["findings"],
            json!([]),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{name}");
        checked += 1;
    }
    assert!(
        checked >= 4,
        "expected the sample datasets, found {checked}"
    );
}

#[test]
fn refinements_of_projects_with_test_time_code_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let record = |id: &str, base: Option<&str>, files: Value| {
        let mut context = json!({"task": "refine"});
        if let Some(base) = base {
            context["base_id"] = json!(base);
        }
        json!({"id": id, "prompt": "Add a feature to the project.", "context": context,
               "output": {"files": files}})
        .to_string()
    };
    // A refinement may come before its base; a base without hooks is fine.
    let lines = [
        record("r1", Some("hooked"), json!({"app/extra.py": "X = 1\n"})),
        record("r2", Some("plain"), json!({"app/extra.py": "Y = 2\n"})),
        record(
            "hooked",
            None,
            json!({"app/main.py": "A = 1\n", "setup.py": "import os\n",
                   "pyproject.toml": "[tool.pytest.ini_options]\naddopts = \"-q\"\n"}),
        ),
        record(
            "plain",
            None,
            json!({"app/main.py": "B = 1\n", "app/__init__.py": ""}),
        ),
    ];
    let path = dir.path().join("refine.jsonl");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = tunebench(&["data", "validate", path.to_str().unwrap(), "--json"]);
    let report = json_of(&out);
    let listed: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "executable_test_config")
        .collect();
    assert_eq!(listed.len(), 1, "{report}");
    assert_eq!(listed[0]["line"], 1);
    let message = listed[0]["message"].as_str().unwrap();
    assert!(
        message.contains("`hooked` (line 3)")
            && message.contains("setup.py")
            && message.contains("pyproject.toml"),
        "{message}"
    );
}

/// A word-level tokenizer and ChatML template written the way a model
/// directory holds them.
fn tiny_tokenizer_dir(dir: &Path) {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    let words = [
        "<unk>",
        "<|im_start|>",
        "<|im_end|>",
        "user",
        "assistant",
        "hello",
        "there",
    ];
    let vocab = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32));
    let model = WordLevel::builder()
        .vocab(vocab.collect())
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    let special = ["<|im_start|>", "<|im_end|>"].map(|t| tokenizers::AddedToken::from(t, true));
    tokenizer.add_special_tokens(special).unwrap();
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
    let config = json!({
        "eos_token": "<|im_end|>",
        "chat_template": "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    });
    fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

#[test]
fn too_long_samples_are_counted_with_the_model_template() {
    let dir = tempfile::tempdir().unwrap();
    tiny_tokenizer_dir(dir.path());
    let data = dir.path().join("d.jsonl");
    // Six template tokens plus the words: 9 and 12 tokens.
    fs::write(&data, "{\"prompt\": \"hello\", \"completion\": \"there there\"}\n{\"prompt\": \"hello hello there there\", \"completion\": \"there hello\"}\n").unwrap();
    let model = dir.path().to_str().unwrap();
    let out = tunebench(&[
        "data",
        "validate",
        data.to_str().unwrap(),
        "--model",
        model,
        "--max-seq-len",
        "10",
        "--json",
    ]);
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "too long is a warning");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["kind"], "too_long");
    assert_eq!(findings[0]["line"], 2);
    assert_eq!(
        report["overlength"],
        json!({"max_seq_len": 10, "samples": 1, "max_excess": 2, "mean_excess": 2.0})
    );
    let stats = json_of(&tunebench(&[
        "data",
        "stats",
        data.to_str().unwrap(),
        "--model",
        model,
        "--json",
    ]));
    assert_eq!(stats["tokens"]["max"], 12);
    assert_eq!(stats["tokens"]["min"], 9);
}

/// A record shaped like glaive_toolcall_en_demo's: a ShareGPT function
/// call and its observation, with the tool schemas as a JSON string.
const TOOL_CALL_RECORD: &str = r#"{"conversations": [{"from": "human", "value": "hello"}, {"from": "function_call", "value": "{\"name\": \"greet\", \"arguments\": {\"who\": \"there\"}}"}, {"from": "observation", "value": "hello"}, {"from": "gpt", "value": "hello there"}], "tools": "[{\"name\": \"greet\", \"parameters\": {\"type\": \"object\"}}]"}"#;

#[test]
fn tool_calls_and_schemas_a_template_drops_are_findings_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    tiny_tokenizer_dir(dir.path());
    let data = dir.path().join("tools.jsonl");
    fs::write(&data, format!("{TOOL_CALL_RECORD}\n")).unwrap();
    let validate = |model: &Path| {
        let args = ["data", "validate", data.to_str().unwrap(), "--model"];
        let model = model.to_str().unwrap();
        tunebench(&[&args[..], &[model, "--json"]].concat())
    };
    let out = validate(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let report = json_of(&out);
    let dropped: Vec<(Value, Value)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "dropped_by_template")
        .map(|f| (f["field"].clone(), f["line"].clone()))
        .collect();
    assert_eq!(
        dropped,
        vec![
            (json!("tools"), json!(1)),
            (json!("conversations[1]"), json!(1))
        ],
        "{report}"
    );
    assert!(stderr_of(&out).contains("drops the tool call `greet`"));

    // A template that renders tools and calls (as Qwen2.5's does) keeps them.
    let config = json!({
        "eos_token": "<|im_end|>",
        "chat_template": "{% if tools %}{% for t in tools %}{{ t | tojson }}{% endfor %}{% endif %}{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }}{% for c in m.tool_calls or [] %} {{ c.function.name }} {{ c.function.arguments | tojson }}{% endfor %} <|im_end|>\n{% endfor %}"
    });
    fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let out = validate(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("dropped_by_template"));
}

#[test]
fn missing_model_is_a_clear_error() {
    let data = sample_data("alpaca_small.json");
    // A hub that refuses connections: no network is tried.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tunebench"))
        .args([
            "data",
            "validate",
            data.to_str().unwrap(),
            "--model",
            "nobody/no-such-model",
        ])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env(
            "HF_HUB_CACHE",
            std::env::temp_dir().join("tunebench-no-cache"),
        )
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nobody/no-such-model")
            && stderr.contains("models--nobody--no-such-model")
            && stderr.contains("cannot reach http://127.0.0.1:9"),
        "{stderr}"
    );
}

/// Records with domains and some exact duplicates.
fn tunebench_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tunebench"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("tunebench {args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn utf16_and_binary_files_are_named_once_not_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"}\n";
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let with_bom = [&b"\xFF\xFE"[..], &le].concat();
    let mut binary = b"\x1F\x8B\x08\x00\x00\x00\x00\x00".to_vec();
    binary.extend((0..5000u32).map(|i| (i * 7 % 251) as u8));
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "bom.jsonl",
            &with_bom,
            "UTF-16 file; convert it to UTF-8, e.g. `iconv -f UTF-16 -t UTF-8",
        ),
        (
            "le.jsonl",
            &le,
            "UTF-16 file (no byte-order mark); convert it to UTF-8, e.g. `iconv -f UTF-16LE",
        ),
        ("be.jsonl", &be, "`iconv -f UTF-16BE -t UTF-8"),
        ("blob.jsonl", &binary, "binary file, not JSON Lines"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        for command in ["validate", "stats"] {
            let out = tunebench(&["data", command, path.to_str().unwrap()]);
            let stderr = stderr_of(&out);
            assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
            assert_eq!(stderr.matches(expected).count(), 1, "{name}: {stderr}");
            assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
            assert!(!stderr.contains("invalid"), "{name}: {stderr}");
        }
    }
}

#[test]
fn a_pretty_printed_object_is_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.json");
    let record = json!({"messages": [
        {"role": "user", "content": "What is Rust?"},
        {"role": "assistant", "content": "A systems programming language."}
    ]});
    fs::write(&path, serde_json::to_string_pretty(&record).unwrap() + "\n").unwrap();
    let out = tunebench(&["data", "validate", path.to_str().unwrap(), "--json"]);
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        (report["records"].as_u64(), report["samples"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["format"], "chat");
    // A syntax error inside it is one finding, on the line it is on.
    let broken = "{\n  \"text\": \"a\",\n  \"oops\" 1\n}\n";
    fs::write(&path, broken).unwrap();
    let report = json_of(&tunebench(&[
        "data",
        "validate",
        path.to_str().unwrap(),
        "--json",
    ]));
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0]["kind"].as_str(), findings[0]["line"].as_u64()),
        (Some("invalid_json"), Some(3))
    );
}

#[test]
fn duplicate_keys_are_a_warning_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.jsonl");
    let lines = [
        r#"{"prompt": "Say hi to me", "completion": "Hello there, friend"}"#,
        r#"{"prompt": "Say hi", "completion": "Hello there", "prompt": "Say bye"}"#,
    ];
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = tunebench(&["data", "validate", path.to_str().unwrap(), "--json"]);
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "a warning, not an error");
    let dup: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "duplicate_key")
        .collect();
    assert_eq!(dup.len(), 1, "{report}");
    assert_eq!(
        (dup[0]["line"].as_u64(), dup[0]["field"].as_str()),
        (Some(2), Some("prompt"))
    );
    assert_eq!(dup[0]["severity"], "warning");
    assert!(stderr_of(&out).contains("dup.jsonl:2: prompt: key `prompt` appears more than once"));
}

#[test]
fn fifos_devices_and_folders_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let limit = std::time::Duration::from_secs(20);
    let cases = [
        (
            fifo.to_str().unwrap(),
            "a named pipe (FIFO), not a dataset file",
        ),
        ("/dev/zero", "/dev/zero: a device, not a dataset file"),
        (dir.path().to_str().unwrap(), "a folder, not a dataset file"),
    ];
    for (path, expected) in cases {
        let out = tunebench_within(&["data", "validate", path], limit);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(path),
            "{stderr}"
        );
    }
}
