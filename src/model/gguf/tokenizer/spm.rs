//! SentencePiece vocabularies (`tokenizer.ggml.model = llama`: Llama 2,
//! Mistral 7B): BPE over `▁`-marked text with byte fallback. The file holds
//! scores, not merges; the merges are recovered from them as transformers
//! does (`generate_merges`), so both tokenise alike.

use super::Vocab;
use crate::model::ModelError;
use crate::model::gguf::GgufFile;
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{DecoderWrapper, Tokenizer};

const SPACE: char = '\u{2581}';

pub(super) fn build(file: &GgufFile, vocab: &Vocab) -> Result<Tokenizer, ModelError> {
    let scores = file
        .array("tokenizer.ggml.scores", |v| match v {
            Value::F32(f) => Some(*f as f64),
            Value::F64(f) => Some(*f),
            _ => None,
        })?
        .ok_or_else(|| file.error("metadata key `tokenizer.ggml.scores` is missing"))?;
    if scores.len() != vocab.tokens.len() {
        return Err(file.error(format!(
            "tokenizer.ggml.scores has {} entries for {} tokens",
            scores.len(),
            vocab.tokens.len()
        )));
    }
    let ids: HashMap<String, u32> = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    let merges = merges_from_scores(&vocab.tokens, &scores, &ids);
    let mut builder = BPE::builder()
        .vocab_and_merges(
            ids.into_iter().collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = file.token_at("tokenizer.ggml.unknown_token_id", vocab)? {
        builder = builder.unk_token(unk);
    }
    let model = builder
        .build()
        .map_err(|e| file.error(format!("building the SentencePiece vocabulary: {e}")))?;
    let prefix_space = file
        .bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let mut tokenizer = Tokenizer::new(model);
    let prepend = if prefix_space {
        PrependScheme::First
    } else {
        PrependScheme::Never
    };
    tokenizer.with_pre_tokenizer(Some(Metaspace::new(SPACE, prepend, false)));
    let replace =
        Replace::new(SPACE.to_string(), " ").map_err(|e| file.error(format!("decoder: {e}")))?;
    let mut steps: Vec<DecoderWrapper> = vec![
        replace.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if prefix_space {
        steps.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(Sequence::new(steps)));
    Ok(tokenizer)
}

/// Every split of a token into two tokens of the vocabulary is a merge,
/// ranked by the merged token's score (best first; among equal scores the
/// longer left part first, then vocabulary order).
fn merges_from_scores(
    tokens: &[String],
    scores: &[f64],
    ids: &HashMap<String, u32>,
) -> Vec<(String, String)> {
    let mut merges: Vec<(String, String, f64)> = Vec::new();
    for (token, &score) in tokens.iter().zip(scores) {
        let mut local: Vec<(String, String, f64)> = token
            .char_indices()
            .skip(1)
            .map(|(at, _)| token.split_at(at))
            .filter(|(left, right)| ids.contains_key(*left) && ids.contains_key(*right))
            .map(|(left, right)| (left.to_string(), right.to_string(), score))
            .collect();
        local.sort_by_key(|(left, right, _)| (ids[left], ids[right]));
        merges.extend(local);
    }
    let chars = |s: &str| s.chars().count();
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| chars(&b.0).cmp(&chars(&a.0)))
            .then_with(|| chars(&b.1).cmp(&chars(&a.1)))
    });
    merges.into_iter().map(|(l, r, _)| (l, r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_merged_tokens_scores() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "abc", "bc"]
            .map(String::from)
            .to_vec();
        let scores = [0.0, 0.0, 0.0, -1.0, -3.0, -2.0];
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = merges_from_scores(&tokens, &scores, &ids);
        let pairs: Vec<(&str, &str)> = merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        // "ab" (-1) before "bc" (-2) before "abc" (-3), whose two splits
        // rank longer-left first.
        assert_eq!(pairs, [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]);
    }
}
