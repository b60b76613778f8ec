//! Loss equal to PyTorch: `eval` against `hf_loss.py` results kept in
//! tests/fixtures/parity/expected.json (see tests/fixtures/parity/README.md).

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use tunebench::data::Store;
use tunebench::eval::loss::evaluate;
use tunebench::model::decoder::Mode;
use tunebench::model::lora::LoraSpec;
use tunebench::model::{LoadOptions, Model, adapter};

use common::root;

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/parity")
}

fn data_path(name: &str) -> PathBuf {
    match name {
        "alpaca.json" => root().join("sample-data/alpaca_small.json"),
        other => fixtures().join(other),
    }
}

fn loss_of(model: &Model, data: &Path, mode: Mode) -> (usize, f64) {
    let store = Store::open(data).unwrap();
    let report = evaluate(model, &store, 2048, mode, |_, _| {}).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    (report.tokens, report.loss)
}

#[test]
fn eval_loss_equals_transformers_and_peft() {
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let work = tempfile::tempdir().unwrap();
    let tiny = common::tiny_model(work.path());
    // The adapter written here, as make.sh wrote it with examples/parity_adapter.rs.
    let written = work.path().join("tiny-tunebench");
    {
        let mut model = Model::load(tiny.to_str().unwrap(), &LoadOptions::default()).unwrap();
        let spec = LoraSpec::all_linear(4, 8.0);
        adapter::attach_new(&mut model.decoder, &spec, 5).unwrap();
        adapter::randomize(&mut model.decoder, 0.3, 5).unwrap();
        adapter::save(&model.decoder, &spec, tiny.to_str().unwrap(), &written).unwrap();
    }
    let mut checked = 0;
    for case in &expected {
        let name = case["name"].as_str().unwrap();
        let (setup, data) = name.split_once('/').unwrap();
        let (model_name, adapter_name) = setup
            .split_once('+')
            .map_or((setup, None), |(m, a)| (m, Some(a)));
        let model_dir = match model_name {
            "tiny" => tiny.clone(),
            other => fixtures().join("models").join(other),
        };
        let mut model = Model::load(model_dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
        let mode = match adapter_name {
            None => Mode::BASE,
            Some("tunebench") => {
                model.load_adapter(&written).unwrap();
                Mode::ADAPTED
            }
            Some(_) => {
                model
                    .load_adapter(
                        &fixtures()
                            .join("adapters")
                            .join(format!("{model_name}-peft")),
                    )
                    .unwrap();
                Mode::ADAPTED
            }
        };
        let (tokens, loss) = loss_of(&model, &data_path(data), mode);
        assert_eq!(
            tokens as u64,
            case["tokens"].as_u64().unwrap(),
            "{name}: trained token count"
        );
        let want = case["loss"].as_f64().unwrap();
        assert!(
            (loss - want).abs() < 1e-4,
            "{name}: loss {loss} but PyTorch says {want}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} cases");
}

#[test]
fn adapter_switches_off_without_reloading() {
    let model_dir = fixtures().join("models/qwen2");
    let mut model = Model::load(model_dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let data = data_path("chat.jsonl");
    let (_, base) = loss_of(&model, &data, Mode::BASE);
    model
        .load_adapter(&fixtures().join("adapters/qwen2-peft"))
        .unwrap();
    let (_, adapted) = loss_of(&model, &data, Mode::ADAPTED);
    let (_, base_again) = loss_of(&model, &data, Mode::BASE);
    assert!(
        (adapted - base).abs() > 1e-3,
        "the adapter changes the loss"
    );
    assert_eq!(
        base, base_again,
        "switching the adapter off restores the base exactly"
    );
}
