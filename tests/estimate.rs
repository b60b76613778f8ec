//! The memory estimate against the peak resident memory of real training
//! runs: four model shapes at three lengths, each within 25%. Three are
//! tiny; the fourth has SmolLM2-135M's width, heads and vocabulary (four of
//! its 30 layers), where the activations, not the process, dominate.

mod common;

use common::runs::events;
use common::tunebench;
use std::path::Path;
use tunebench::model::config::ModelConfig;
use tunebench::model::tiny::{TinyShape, init_tiny};
use tunebench::train::config::TrainConfig;
use tunebench::train::estimate;

/// Raw text long enough that every row is cut at the longest length.
fn long_texts(path: &Path) {
    let mut rng = tunebench::data::rng::SplitMix64::new(7);
    let words = [
        "def", "return", "async", "await", "import", "fastapi", "router", "models", "schema",
        "session", "query", "(", ")", ":", "=", "\n", "    ", "user", "item", "id",
    ];
    let mut lines = String::new();
    for _ in 0..2 {
        let text: Vec<&str> = (0..12_000)
            .map(|_| words[(rng.next_f64() * words.len() as f64) as usize % words.len()])
            .collect();
        lines.push_str(&serde_json::json!({"text": text.join(" ")}).to_string());
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// (estimate, measured peak RSS) of a one-step run.
fn run(dir: &Path, model: &Path, data: &Path, seq: usize) -> (f64, f64) {
    let config_path = dir.join(format!("{seq}.toml"));
    let text = format!(
        "[model]\nname = {:?}\n[lora]\nr = 8\ntargets = [\"all-linear\"]\n[data]\ntrain = {:?}\n\
         eval_split = 0.0\nmax_seq_len = {seq}\n[training]\nmax_steps = 1\n",
        model.to_str().unwrap(),
        data.to_str().unwrap()
    );
    std::fs::write(&config_path, text).unwrap();
    let name = model.file_name().unwrap().to_str().unwrap();
    let run_dir = dir.join(format!("run-{name}-{seq}"));
    let out = tunebench(&[
        "train",
        "--config",
        config_path.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let end = events(&run_dir)
        .into_iter()
        .find(|e| e["event"] == "end")
        .expect("an end event");
    let measured = end["peak_rss"].as_f64().expect("peak_rss in the end event");
    let config = TrainConfig::load(Some(&config_path), &[]).unwrap();
    let shape = ModelConfig::load(model).unwrap();
    (estimate::memory(&shape, &config).total(), measured)
}

#[test]
fn estimate_is_within_a_quarter_of_the_measured_peak() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("long.jsonl");
    long_texts(&data);
    let shapes = [
        ("narrow", 1024, 64, 160, 2, 2, 1),
        ("wide", 1024, 192, 512, 2, 6, 2),
        ("deep", 1024, 128, 384, 6, 4, 4),
        ("smollm2-width", 49_152, 576, 1536, 4, 9, 3),
    ];
    let mut report = Vec::new();
    for (name, vocab, hidden, intermediate, layers, heads, kv_heads) in shapes {
        let model = work.path().join(name);
        let shape = TinyShape {
            vocab,
            hidden,
            intermediate,
            layers,
            heads,
            kv_heads,
        };
        init_tiny(&model, 0, &shape).unwrap();
        for seq in [128, 512, 2048] {
            let (estimated, measured) = run(work.path(), &model, &data, seq);
            eprintln!("{name} {seq}: {estimated:.0} {measured:.0}");
            report.push(format!(
                "{name} seq {seq}: estimate {:.0} MB, measured {:.0} MB ({:+.0}%)",
                estimated / 1e6,
                measured / 1e6,
                (estimated / measured - 1.0) * 100.0
            ));
        }
    }
    let text = report.join("\n");
    eprintln!("{text}");
    for line in &report {
        let pct: f64 = line
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches("%)")
            .parse()
            .unwrap();
        assert!(pct.abs() <= 25.0, "off by more than 25%:\n{text}");
    }
}
