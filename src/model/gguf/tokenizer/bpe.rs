//! Byte-level BPE vocabularies (`tokenizer.ggml.model = gpt2`): the merges
//! as listed, and the text split by the pre-tokenizer `tokenizer.ggml.pre`
//! names, with llama.cpp's patterns for each.

use super::Vocab;
use crate::model::ModelError;
use crate::model::gguf::GgufFile;
use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// Llama 3's split: letters, numbers of up to three digits, punctuation runs.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Mistral's tekken split (Mistral Nemo and later).
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How text is cut before the merges apply.
enum Pretokenize {
    /// GPT-2's own pattern (ByteLevel's built-in regex).
    Gpt2,
    /// Each digit alone, then GPT-2's pattern (StarCoder, SmolLM).
    DigitsThenGpt2,
    /// A model's own pattern, then bytes.
    Pattern(&'static str),
}

/// `tokenizer.ggml.pre` values and how each splits text.
const PRE_TYPES: [(&str, Pretokenize); 11] = [
    ("default", Pretokenize::Gpt2),
    ("gpt-2", Pretokenize::Gpt2),
    ("gpt2", Pretokenize::Gpt2),
    ("smollm", Pretokenize::DigitsThenGpt2),
    ("starcoder", Pretokenize::DigitsThenGpt2),
    ("llama-bpe", Pretokenize::Pattern(LLAMA3_SPLIT)),
    ("llama3", Pretokenize::Pattern(LLAMA3_SPLIT)),
    ("smaug-bpe", Pretokenize::Pattern(LLAMA3_SPLIT)),
    (
        "qwen2",
        Pretokenize::Pattern(crate::model::tiny::QWEN2_SPLIT),
    ),
    (
        "deepseek-r1-qwen",
        Pretokenize::Pattern(crate::model::tiny::QWEN2_SPLIT),
    ),
    ("tekken", Pretokenize::Pattern(TEKKEN_SPLIT)),
];

pub(super) fn build(file: &GgufFile, vocab: &Vocab) -> Result<Tokenizer, ModelError> {
    let pre_name = file.string("tokenizer.ggml.pre")?.unwrap_or("default");
    let pretokenize = PRE_TYPES
        .iter()
        .find(|(name, _)| *name == pre_name)
        .map(|(_, p)| p)
        .ok_or_else(|| {
            let known: Vec<&str> = PRE_TYPES.iter().map(|(name, _)| *name).collect();
            file.error(format!(
                "tokenizer.ggml.pre `{pre_name}` is not supported (supported: {})",
                known.join(", ")
            ))
        })?;
    let merges = file
        .array("tokenizer.ggml.merges", |v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })?
        .ok_or_else(|| file.error("metadata key `tokenizer.ggml.merges` is missing"))?;
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    file.error(format!(
                        "tokenizer.ggml.merges[{i}] `{m}` is not two tokens"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ids: tokenizers::models::bpe::Vocab = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (byte_level_spelling(token), id as u32))
        .collect();
    let model = BPE::builder()
        .vocab_and_merges(ids, merges)
        .build()
        .map_err(|e| file.error(format!("building the BPE vocabulary: {e}")))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(pretokenize).map_err(|e| file.error(e))?));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    Ok(tokenizer)
}

fn pre_tokenizer(how: &Pretokenize) -> Result<PreTokenizerWrapper, String> {
    let bytes = |use_regex: bool| ByteLevel::new(false, true, use_regex);
    Ok(match how {
        Pretokenize::Gpt2 => bytes(true).into(),
        Pretokenize::DigitsThenGpt2 => {
            Sequence::new(vec![Digits::new(true).into(), bytes(true).into()]).into()
        }
        Pretokenize::Pattern(pattern) => {
            let split = Split::new(
                SplitPattern::Regex(pattern.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| format!("pre-tokenizer pattern: {e}"))?;
            Sequence::new(vec![split.into(), bytes(false).into()]).into()
        }
    })
}

/// Whether every character of `token` is one of the 256 byte-level symbols.
pub(super) fn is_byte_level(token: &str) -> bool {
    token.chars().all(|c| byte_of(c).is_some())
}

/// The token in byte-level symbols: as stored, or respelled byte by byte
/// when the file stores it as plain text (some converters do for added
/// tokens).
fn byte_level_spelling(token: &str) -> String {
    if is_byte_level(token) {
        return token.to_string();
    }
    token.bytes().map(symbol_of).collect()
}

/// GPT-2's byte-to-symbol table: printable Latin-1 bytes stand for
/// themselves, the other 68 take the code points from U+0100 on, in order.
fn symbol_of(byte: u8) -> char {
    if printable(byte) {
        return byte as char;
    }
    let shifted = (0..byte).filter(|&b| !printable(b)).count() as u32;
    char::from_u32(256 + shifted).unwrap_or('\u{fffd}')
}

fn printable(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

fn byte_of(symbol: char) -> Option<u8> {
    let code = symbol as u32;
    if code < 256 && printable(code as u8) {
        return Some(code as u8);
    }
    let shifted = code.checked_sub(256)? as usize;
    (0..=255u8).filter(|&b| !printable(b)).nth(shifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_symbols_are_gpt2s() {
        assert_eq!(symbol_of(b' '), '\u{120}');
        assert_eq!(symbol_of(b'\n'), '\u{10a}');
        assert_eq!(symbol_of(b'a'), 'a');
        assert_eq!(symbol_of(0xAD), '\u{143}');
        for byte in 0..=255u8 {
            assert_eq!(byte_of(symbol_of(byte)), Some(byte));
        }
        assert!(is_byte_level("\u{120}hello"));
        assert!(!is_byte_level("hello world"));
        assert_eq!(byte_level_spelling("a b"), "a\u{120}b");
    }
}
