//! Base and adapter answers decoded side by side, in one batch through the
//! shared weights, give the tokens each side gives alone.

mod common;

use candle_core::{DType, Tensor};
use std::sync::atomic::AtomicBool;
use tunebench::model::decoder::{Cache, Mode};
use tunebench::model::generate::{
    GenerateParams, Generation, Request, StopReason, generate_together,
};
use tunebench::model::lora::LoraSpec;
use tunebench::model::{LoadOptions, Model, adapter};

use common::{ok, tunebench};

fn tiny_with_adapter(dir: &std::path::Path, dtype: DType) -> Model {
    let out = dir.join("tiny");
    ok(tunebench(&["init-tiny", "--out", out.to_str().unwrap()]));
    let options = LoadOptions {
        dtype,
        ..LoadOptions::default()
    };
    let mut model = Model::load(out.to_str().unwrap(), &options).unwrap();
    let spec = LoraSpec::all_linear(4, 8.0);
    adapter::attach_new(&mut model.decoder, &spec, 1).unwrap();
    adapter::randomize(&mut model.decoder, 0.5, 1).unwrap();
    model
}

/// Greedy decoding of one sequence, token by token through the cache, as
/// the decoder did before batching.
fn alone(model: &Model, prompt: &[u32], mode: Mode, max_new: usize) -> Vec<u32> {
    let decoder = &model.decoder;
    let mut cache = Cache::new(decoder.layers.len());
    let mut input = prompt.to_vec();
    let mut out = Vec::new();
    while out.len() < max_new {
        let ids = Tensor::new(input.as_slice(), decoder.device())
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let hidden = decoder.hidden(&ids, Some(&mut cache), None, mode).unwrap();
        let last = hidden.narrow(1, hidden.dim(1).unwrap() - 1, 1).unwrap();
        let logits = decoder.logits(&last, false).unwrap().flatten_all().unwrap();
        let token = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        if model.stop_ids.contains(&token) {
            break;
        }
        out.push(token);
        input = vec![token];
    }
    out
}

/// Both sides together; each side's streamed text must be its answer.
fn together(model: &Model, sides: [(&[u32], Mode, usize); 2]) -> [Generation; 2] {
    let params = sides.map(|(_, _, max_new_tokens)| GenerateParams {
        max_new_tokens,
        ..Default::default()
    });
    let mut streamed = [String::new(), String::new()];
    let [s0, s1] = &mut streamed;
    let mut on0 = |piece: &str| s0.push_str(piece);
    let mut on1 = |piece: &str| s1.push_str(piece);
    let requests = vec![
        Request {
            prompt: sides[0].0,
            params: &params[0],
            mode: sides[0].1,
            on_text: &mut on0,
            on_end: None,
        },
        Request {
            prompt: sides[1].0,
            params: &params[1],
            mode: sides[1].1,
            on_text: &mut on1,
            on_end: None,
        },
    ];
    let answers = generate_together(model, requests, &AtomicBool::new(false)).unwrap();
    let [a, b]: [Generation; 2] = answers.try_into().unwrap();
    assert_eq!(streamed[0], a.text);
    assert_eq!(streamed[1], b.text);
    [a, b]
}

const SHORT: &[u32] = &[5, 17, 99, 3];
const LONG: &[u32] = &[40, 41, 42, 7, 300, 12, 9, 77, 150];

#[test]
fn batched_pair_decodes_what_each_side_decodes_alone() {
    let work = tempfile::tempdir().unwrap();
    for dtype in [DType::F32, DType::BF16] {
        let model = tiny_with_adapter(&work.path().join(format!("{dtype:?}")), dtype);
        let base = alone(&model, SHORT, Mode::BASE, 12);
        let adapted = alone(&model, LONG, Mode::ADAPTED, 12);
        assert_ne!(
            base,
            alone(&model, SHORT, Mode::ADAPTED, 12),
            "{dtype:?}: the adapter matters"
        );
        assert_eq!(base.len(), 12, "{dtype:?}: no early end in the reference");

        // Prompts of different lengths, adapter listed first.
        let [a, b] = together(&model, [(LONG, Mode::ADAPTED, 12), (SHORT, Mode::BASE, 12)]);
        assert_eq!(
            (a.tokens, b.tokens),
            (adapted.clone(), base.clone()),
            "{dtype:?}"
        );

        // The base stops first; the adapter goes on alone.
        let [a, b] = together(&model, [(SHORT, Mode::BASE, 3), (LONG, Mode::ADAPTED, 12)]);
        assert_eq!(a.tokens, base[..3], "{dtype:?}");
        assert_eq!(a.stop, StopReason::MaxTokens);
        assert_eq!(b.tokens, adapted, "{dtype:?}");

        // The adapter stops first; the base goes on alone.
        let [a, b] = together(&model, [(SHORT, Mode::BASE, 12), (LONG, Mode::ADAPTED, 2)]);
        assert_eq!(
            (a.tokens, b.tokens),
            (base.clone(), adapted[..2].to_vec()),
            "{dtype:?}"
        );
    }
}

#[test]
fn one_side_ending_at_end_of_turn_leaves_the_other_going() {
    let work = tempfile::tempdir().unwrap();
    let mut model = tiny_with_adapter(work.path(), DType::F32);
    let base = alone(&model, SHORT, Mode::BASE, 12);
    let adapted = alone(&model, SHORT, Mode::ADAPTED, 12);
    // A token the base says early and the adapter never says becomes the
    // end of turn: the base stops there, the adapter's answer is unchanged.
    let (at, &eos) = base
        .iter()
        .enumerate()
        .find(|(_, t)| !adapted.contains(t))
        .expect("the two answers differ");
    model.stop_ids.push(eos);
    let [a, b] = together(
        &model,
        [(SHORT, Mode::BASE, 12), (SHORT, Mode::ADAPTED, 12)],
    );
    assert_eq!(a.stop, StopReason::EndOfTurn);
    assert_eq!(a.tokens, base[..at]);
    assert_eq!(b.tokens, adapted);
    assert_eq!(b.stop, StopReason::MaxTokens);
}

#[test]
fn ignore_eos_decodes_through_the_end_of_turn_token() {
    let work = tempfile::tempdir().unwrap();
    let mut model = tiny_with_adapter(work.path(), DType::F32);
    let base = alone(&model, SHORT, Mode::BASE, 8);
    // The base's third token becomes the end of turn (it may come earlier).
    let eos = base[2];
    let first = base.iter().position(|&t| t == eos).unwrap();
    model.stop_ids.push(eos);
    let decode = |ignore_eos: bool| {
        let params = GenerateParams {
            max_new_tokens: 8,
            ignore_eos,
            ..Default::default()
        };
        let mut on_text = |_: &str| {};
        let request = Request {
            prompt: SHORT,
            params: &params,
            mode: Mode::BASE,
            on_text: &mut on_text,
            on_end: None,
        };
        let mut answers =
            generate_together(&model, vec![request], &AtomicBool::new(false)).unwrap();
        answers.remove(0)
    };
    let stopped = decode(false);
    assert_eq!(stopped.stop, StopReason::EndOfTurn);
    assert_eq!(stopped.tokens, base[..first]);
    let through = decode(true);
    assert_eq!(through.stop, StopReason::MaxTokens);
    assert_eq!(through.tokens, base);
}
