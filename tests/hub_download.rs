//! The download path against a hub stand-in on loopback (tests/common/hub.rs):
//! the cache layout, no requests once cached, offline mode, resume after a
//! cut, refusals and stalls with clear messages, shards, and the token.

mod common;

use common::hub::{HubStandIn, LFS_THRESHOLD, sha256_hex};
use common::{ok, tiny_model};
use std::path::Path;
use std::process::{Command, Output};

/// `tunebench ARGS` against `hub`, with `cache` as the Hugging Face cache.
fn run(hub: &HubStandIn, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tunebench"));
    command
        .args(args)
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env("TUNEBENCH_HUB_TIMEOUT", "3");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Bytes that do not repeat, so a misplaced range shows in the hash.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// A repo with a config, a tokenizer and one large weights file.
fn plain_repo(weights: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    vec![
        ("config.json".into(), b"{\"model_type\":\"qwen2\"}".to_vec()),
        ("tokenizer.json".into(), b"{}".to_vec()),
        ("README.md".into(), b"# a model".to_vec()),
        ("model.safetensors".into(), weights),
    ]
}

fn cdn_gets(hub: &HubStandIn) -> Vec<Option<String>> {
    hub.log()
        .into_iter()
        .filter(|r| r.path.starts_with("/cdn/") && r.method == "GET")
        .filter(|r| r.range.as_deref() != Some("bytes=0-0"))
        .map(|r| r.range)
        .collect()
}

#[test]
fn a_download_fills_the_standard_cache_and_later_runs_ask_nothing() {
    let work = tempfile::tempdir().unwrap();
    let tiny = tiny_model(work.path());
    let hub = HubStandIn::start();
    hub.add_repo("acme/tiny", HubStandIn::files_of(&tiny), false);
    let cache = work.path().join("cache");

    let fetched = ok(run(&hub, &cache, &["download", "acme/tiny"], &[]));
    let commit = hub.commit("acme/tiny");
    let repo = cache.join("models--acme--tiny");
    let snapshot = repo.join("snapshots").join(&commit);
    assert_eq!(
        String::from_utf8_lossy(&fetched.stdout).trim(),
        snapshot.display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main"))
            .unwrap()
            .trim(),
        commit
    );
    for (name, bytes) in HubStandIn::files_of(&tiny) {
        let link = snapshot.join(&name);
        assert_eq!(std::fs::read(&link).unwrap(), bytes, "{name}");
        // The snapshot holds links into blobs/, named by the hub's etag
        // (the sha256 for large files), as transformers lays it out.
        let blob = std::fs::canonicalize(&link).unwrap();
        assert_eq!(
            blob.parent().unwrap(),
            repo.join("blobs").canonicalize().unwrap()
        );
        if bytes.len() >= LFS_THRESHOLD {
            assert_eq!(
                blob.file_name().unwrap().to_string_lossy(),
                sha256_hex(&bytes)
            );
        }
    }
    // No partial files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part") || n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The model loads from the cache, and neither it nor a second download
    // asks the hub anything.
    let asked = hub.log().len();
    let generated = ok(run(
        &hub,
        &cache,
        &[
            "generate",
            "--model",
            "acme/tiny",
            "--prompt",
            "hi",
            "--max-new-tokens",
            "3",
        ],
        &[],
    ));
    assert!(!generated.stdout.is_empty());
    ok(run(&hub, &cache, &["download", "acme/tiny"], &[]));
    assert_eq!(hub.log().len(), asked, "a cached model costs no request");
    let local = ok(run(
        &hub,
        &cache,
        &[
            "generate",
            "--model",
            tiny.to_str().unwrap(),
            "--prompt",
            "hi",
            "--max-new-tokens",
            "3",
        ],
        &[],
    ));
    assert_eq!(
        generated.stdout, local.stdout,
        "the cached copy is the model"
    );
}

#[test]
fn offline_mode_names_the_repo_and_the_cache_and_sends_nothing() {
    let work = tempfile::tempdir().unwrap();
    let hub = HubStandIn::start();
    hub.add_repo("acme/m", plain_repo(pattern(4096, 1)), false);
    let cache = work.path().join("cache");
    let out = run(
        &hub,
        &cache,
        &["download", "acme/m"],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("acme/m")
            && text.contains("models--acme--m")
            && text.contains("HF_HUB_OFFLINE"),
        "{text}"
    );
    assert!(hub.log().is_empty(), "offline sends no request");
}

#[test]
fn a_cut_transfer_resumes_where_it_stopped_and_the_hash_is_right() {
    let work = tempfile::tempdir().unwrap();
    // Over two of the client's 10 MB chunks, cut inside the second.
    let weights = pattern(24 << 20, 7);
    let hub = HubStandIn::start();
    hub.add_repo("acme/big", plain_repo(weights.clone()), false);
    hub.cut_at(&weights, 15 << 20);
    let cache = work.path().join("cache");
    let out = ok(run(&hub, &cache, &["download", "acme/big"], &[]));
    assert!(stderr(&out).contains("resumes it"), "{}", stderr(&out));
    let snapshot = cache
        .join("models--acme--big/snapshots")
        .join(hub.commit("acme/big"));
    let got = std::fs::read(snapshot.join("model.safetensors")).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&weights));
    // The first chunk was fetched once: the retry asked for the rest only.
    let gets = cdn_gets(&hub);
    let from_zero = gets
        .iter()
        .filter(|r| r.as_deref().is_some_and(|r| r.starts_with("bytes=0-")))
        .count();
    assert_eq!(from_zero, 1, "{gets:?}");
    assert!(
        gets.iter()
            .filter(|r| r.as_deref() == Some("bytes=10000000-19999999"))
            .count()
            == 2,
        "the cut chunk is asked for again, from its start: {gets:?}"
    );
}

#[test]
fn a_download_stopped_between_runs_resumes_in_the_next_run() {
    let work = tempfile::tempdir().unwrap();
    let weights = pattern(24 << 20, 3);
    let hub = HubStandIn::start();
    hub.add_repo("acme/slow", plain_repo(weights.clone()), false);
    hub.stall(&weights);
    let cache = work.path().join("cache");
    // The CDN sends headers and then nothing: the watchdog ends the run
    // after TUNEBENCH_HUB_TIMEOUT with a message, and no weights appear in
    // the snapshot.
    let started = std::time::Instant::now();
    let stalled = run(
        &hub,
        &cache,
        &["download", "acme/slow"],
        &[("TUNEBENCH_HUB_TIMEOUT", "1")],
    );
    assert!(started.elapsed().as_secs() < 20);
    assert_eq!(stalled.status.code(), Some(1));
    let text = stderr(&stalled);
    assert!(
        text.contains("model.safetensors") && text.contains("sent nothing for 1 s"),
        "{text}"
    );
    let snapshot = cache
        .join("models--acme--slow/snapshots")
        .join(hub.commit("acme/slow"));
    assert!(!snapshot.join("model.safetensors").exists());
    assert!(
        snapshot.join("config.json").exists(),
        "whole small files stay"
    );
    // The model is not taken for a cached one: a load goes back to the hub.
    hub.unstall(&weights);
    ok(run(&hub, &cache, &["download", "acme/slow"], &[]));
    let got = std::fs::read(snapshot.join("model.safetensors")).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&weights));
}

#[test]
fn refusals_name_the_repo_and_what_to_do_and_never_the_token() {
    let work = tempfile::tempdir().unwrap();
    let hub = HubStandIn::start();
    hub.add_repo("meta/gated", plain_repo(pattern(4096, 2)), true);
    hub.grant("hf_granted_token");
    let cache = work.path().join("cache");

    let missing = run(&hub, &cache, &["download", "acme/nothing"], &[]);
    let text = stderr(&missing);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text.contains("acme/nothing") && text.contains("no such model"),
        "{text}"
    );

    let anonymous = run(&hub, &cache, &["download", "meta/gated"], &[]);
    let text = stderr(&anonymous);
    assert!(
        text.contains("meta/gated` is gated")
            && text.contains("401")
            && text.contains("You must have access to it")
            && text.contains("set HF_TOKEN"),
        "{text}"
    );

    let secret = "hf_not_granted_secret";
    let refused = run(
        &hub,
        &cache,
        &["download", "meta/gated"],
        &[("HF_TOKEN", secret)],
    );
    let text = stderr(&refused);
    assert!(
        text.contains("403")
            && text.contains("not in the authorized list")
            && text.contains("was sent and refused"),
        "{text}"
    );
    assert!(!text.contains(secret) && !String::from_utf8_lossy(&refused.stdout).contains(secret));
    let snapshots = cache.join("models--meta--gated/snapshots");
    let weights_anywhere = std::fs::read_dir(&snapshots)
        .map(|d| {
            d.flatten()
                .any(|s| s.path().join("model.safetensors").exists())
        })
        .unwrap_or(false);
    assert!(
        !weights_anywhere,
        "a refusal leaves no weights in a snapshot"
    );

    // The token is sent as a bearer token, and with access it downloads.
    ok(run(
        &hub,
        &cache,
        &["download", "meta/gated"],
        &[("HF_TOKEN", "hf_granted_token")],
    ));
    let bearer: Vec<_> = hub
        .log()
        .into_iter()
        .filter_map(|r| r.authorization)
        .collect();
    assert!(
        bearer.iter().any(|a| a == "Bearer hf_granted_token"),
        "{bearer:?}"
    );
    assert!(bearer.iter().any(|a| a == &format!("Bearer {secret}")));
    // The CDN is another host: the token does not travel there.
    assert!(
        hub.log()
            .iter()
            .filter(|r| r.path.starts_with("/cdn/"))
            .all(|r| r.authorization.is_none()
                || r.authorization.as_deref() == Some("Bearer hf_granted_token")),
    );
}

#[test]
fn a_sharded_checkpoint_fetches_every_shard() {
    let work = tempfile::tempdir().unwrap();
    let shards = [pattern(3000, 4), pattern(5000, 5), pattern(200, 6)];
    let index = serde_json::json!({
        "metadata": {"total_size": 8200},
        "weight_map": {
            "a": "model-00001-of-00003.safetensors",
            "b": "model-00002-of-00003.safetensors",
            "c": "model-00001-of-00003.safetensors",
            "d": "model-00003-of-00003.safetensors",
        }
    });
    let mut files = vec![
        ("config.json".to_string(), b"{}".to_vec()),
        (
            "model.safetensors.index.json".to_string(),
            index.to_string().into_bytes(),
        ),
        ("pytorch_model.bin".to_string(), pattern(2000, 9)),
    ];
    for (i, bytes) in shards.iter().enumerate() {
        files.push((
            format!("model-0000{}-of-00003.safetensors", i + 1),
            bytes.clone(),
        ));
    }
    let hub = HubStandIn::start();
    hub.add_repo("acme/sharded", files, false);
    let cache = work.path().join("cache");
    ok(run(&hub, &cache, &["download", "acme/sharded"], &[]));
    let snapshot = cache
        .join("models--acme--sharded/snapshots")
        .join(hub.commit("acme/sharded"));
    for (i, bytes) in shards.iter().enumerate() {
        let name = format!("model-0000{}-of-00003.safetensors", i + 1);
        assert_eq!(
            &std::fs::read(snapshot.join(&name)).unwrap(),
            bytes,
            "{name}"
        );
    }
    assert!(
        !snapshot.join("pytorch_model.bin").exists(),
        "only what tunebench reads is fetched"
    );
}

#[test]
fn a_repo_without_safetensors_says_what_it_has() {
    let work = tempfile::tempdir().unwrap();
    let hub = HubStandIn::start();
    hub.add_repo(
        "old/bin-only",
        vec![
            ("config.json".into(), b"{}".to_vec()),
            ("pytorch_model.bin".into(), pattern(2000, 1)),
        ],
        false,
    );
    let cache = work.path().join("cache");
    let out = run(&hub, &cache, &["download", "old/bin-only"], &[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("no safetensors weights") && text.contains("pytorch_model.bin"),
        "{text}"
    );
}

#[test]
fn a_cancelled_download_keeps_its_part_and_resumes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let work = tempfile::tempdir().unwrap();
    let weights = pattern(24 << 20, 11);
    let hub = HubStandIn::start();
    hub.add_repo("acme/cancel", plain_repo(weights.clone()), false);
    hub.pace(20 << 20);
    let cache = work.path().join("cache");
    // The library reads the environment: this test is alone in its process
    // in setting these (each test file is its own binary, and no other test
    // here touches the variables in-process).
    unsafe {
        std::env::set_var("HF_ENDPOINT", &hub.endpoint);
        std::env::set_var("HF_HUB_CACHE", &cache);
        std::env::remove_var("HF_HUB_OFFLINE");
    }
    let cancel = AtomicBool::new(false);
    let mut events = Vec::new();
    let result = tunebench::model::hub::download_model("acme/cancel", &cancel, &mut |event| {
        if let tunebench::model::hub::Event::Progress { done, .. } = &event
            && *done > 12 << 20
        {
            cancel.store(true, Ordering::Relaxed);
        }
        events.push(event);
    });
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains("cancelled") && error.contains("kept"),
        "{error}"
    );
    let blobs = cache.join("models--acme--cancel/blobs");
    let parts: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert_eq!(parts.len(), 1, "the partial file is kept");

    let never = AtomicBool::new(false);
    let dir = tunebench::model::hub::download_model("acme/cancel", &never, &mut |_| {}).unwrap();
    let got = std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&weights));
    let gets = cdn_gets(&hub);
    assert!(
        gets.iter()
            .any(|r| r.as_deref() == Some("bytes=10000000-19999999")),
        "{gets:?}"
    );
    assert_eq!(
        gets.iter()
            .filter(|r| r.as_deref().is_some_and(|r| r.starts_with("bytes=0-")))
            .count(),
        1,
        "the resumed run did not start over: {gets:?}"
    );
}
