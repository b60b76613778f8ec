//! The text metrics against values computed once with sacreBLEU 2.6.0 and
//! rouge-score 0.1.2 (see tests/fixtures/eval/README.md).

use serde_json::Value;
use tunebench::eval::metrics::bleu::{BleuStats, signature};
use tunebench::eval::metrics::f1::{exact_match, token_f1};
use tunebench::eval::metrics::rouge::rouge_l;
use tunebench::eval::metrics::tok13a::{rstrip_python, tokenize_13a};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/eval/metrics.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(a: f64, b: &Value, what: &str) {
    let b = b.as_f64().unwrap();
    assert!(
        (a - b).abs() < 1e-9,
        "{what}: tunebench {a} vs reference {b}"
    );
}

#[test]
fn tokenisation_matches_sacrebleu_13a() {
    for case in fixture()["tokenize_13a"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            tokenize_13a(rstrip_python(text)),
            case["tokens"].as_str().unwrap(),
            "tokenising {text:?}"
        );
    }
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let fixture = fixture();
    let reference_signature = fixture["signature"].as_str().unwrap();
    assert!(
        signature().starts_with(reference_signature),
        "{} vs {reference_signature}",
        signature()
    );
    for (name, case) in fixture["bleu"].as_object().unwrap() {
        let mut stats = BleuStats::default();
        for pair in case["pairs"].as_array().unwrap() {
            stats.add(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        }
        let bleu = stats.score();
        close(bleu.score, &case["score"], &format!("{name}: score"));
        close(bleu.bp, &case["bp"], &format!("{name}: bp"));
        for (n, p) in bleu.precisions.iter().enumerate() {
            close(
                *p,
                &case["precisions"][n],
                &format!("{name}: {}-gram precision", n + 1),
            );
        }
        assert_eq!(bleu.sys_len, case["sys_len"].as_u64().unwrap(), "{name}");
        assert_eq!(bleu.ref_len, case["ref_len"].as_u64().unwrap(), "{name}");
    }
}

#[test]
fn rouge_l_matches_rouge_score() {
    for case in fixture()["rouge_l"].as_array().unwrap() {
        let (p, r) = (
            case["prediction"].as_str().unwrap(),
            case["reference"].as_str().unwrap(),
        );
        let score = rouge_l(p, r);
        close(
            score.precision,
            &case["precision"],
            &format!("{p:?} precision"),
        );
        close(score.recall, &case["recall"], &format!("{p:?} recall"));
        close(
            score.fmeasure,
            &case["fmeasure"],
            &format!("{p:?} fmeasure"),
        );
    }
}

#[test]
fn squad_exact_match_and_f1_match_the_official_rules() {
    for case in fixture()["squad"].as_array().unwrap() {
        let (p, r) = (
            case["prediction"].as_str().unwrap(),
            case["reference"].as_str().unwrap(),
        );
        assert_eq!(
            exact_match(p, r),
            case["exact_match"].as_bool().unwrap(),
            "{p:?} vs {r:?}"
        );
        close(token_f1(p, r), &case["f1"], &format!("{p:?} vs {r:?} f1"));
    }
}
