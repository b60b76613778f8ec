//! The tokenizer a GGUF file describes (`tokenizer.ggml.*`), rebuilt as a
//! `tokenizers::Tokenizer` that encodes like the one transformers' GGUF
//! loader builds from the same metadata, with the chat template, BOS/EOS and
//! end-of-turn tokens beside it.
//!
//! candle-core's `quantized::tokenizer` covers part of this (byte-level BPE
//! only); it is not used because it marks user-defined tokens special, adds
//! a leading space under the default pre-tokenizer, misreads llama.cpp's
//! `unknown_token_id` key and has no SentencePiece vocabularies.

mod bpe;
mod spm;

use super::{GgufFile, as_uint};
use crate::model::ModelError;
use crate::model::tokenize::ChatTokenizer;
use candle_core::quantized::gguf_file::Value;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const CONTROL: u32 = 3;
const USER_DEFINED: u32 = 4;

/// Special tokens named by id in the metadata.
const SPECIAL_IDS: [&str; 4] = [
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
];

/// Tokens that end a turn besides EOS, when the file names them.
const END_OF_TURN_IDS: [&str; 2] = ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"];

/// The vocabulary as the file lists it.
struct Vocab {
    tokens: Vec<String>,
    /// One llama.cpp token type per token (empty when the file has none).
    types: Vec<u32>,
}

impl GgufFile {
    fn vocab(&self) -> Result<Vocab, ModelError> {
        let tokens = self
            .array("tokenizer.ggml.tokens", |v| match v {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })?
            .ok_or_else(|| {
                self.error(
                    "metadata key `tokenizer.ggml.tokens` is missing: the file has no tokenizer",
                )
            })?;
        let types = self
            .array("tokenizer.ggml.token_type", |v| {
                as_uint(v).map(|n| n as u32)
            })?
            .unwrap_or_default();
        Ok(Vocab { tokens, types })
    }

    /// A token's text by the id a metadata key holds.
    fn token_at(&self, key: &str, vocab: &Vocab) -> Result<Option<String>, ModelError> {
        let Some(id) = self.uint(key)? else {
            return Ok(None);
        };
        vocab
            .tokens
            .get(id as usize)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                self.error(format!(
                    "`{key}` is {id}, past the {} tokens of the vocabulary",
                    vocab.tokens.len()
                ))
            })
    }

    /// The tokenizer, for `tokenizer.ggml.model` `gpt2` (byte-level BPE) or
    /// `llama` (SentencePiece BPE with byte fallback).
    pub fn tokenizer(&self) -> Result<Tokenizer, ModelError> {
        let vocab = self.vocab()?;
        let kind = self.string("tokenizer.ggml.model")?.unwrap_or("llama");
        let (mut tokenizer, add_bos_default) = match kind {
            "gpt2" => (bpe::build(self, &vocab)?, false),
            "llama" => (spm::build(self, &vocab)?, true),
            other => {
                return Err(self.error(format!(
                    "tokenizer.ggml.model `{other}` is not supported (supported: gpt2, llama)"
                )));
            }
        };
        self.add_special_tokens(&mut tokenizer, &vocab, kind == "gpt2")?;
        let bos = self
            .bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(add_bos_default)
            .then(|| self.token_at("tokenizer.ggml.bos_token_id", &vocab))
            .transpose()?
            .flatten();
        let eos = self
            .bool("tokenizer.ggml.add_eos_token")?
            .unwrap_or(false)
            .then(|| self.token_at("tokenizer.ggml.eos_token_id", &vocab))
            .transpose()?
            .flatten();
        if bos.is_some() || eos.is_some() {
            let template = added_around(&tokenizer, bos.as_deref(), eos.as_deref())
                .map_err(|e| self.error(format!("tokenizer post-processor: {e}")))?;
            tokenizer.with_post_processor(Some(template));
        }
        Ok(tokenizer)
    }

    /// Control tokens as special tokens and user-defined ones as plain added
    /// tokens (both are matched whole in text, as llama.cpp does), and the
    /// tokens named by id as special.
    fn add_special_tokens(
        &self,
        tokenizer: &mut Tokenizer,
        vocab: &Vocab,
        byte_level: bool,
    ) -> Result<(), ModelError> {
        let mut special: Vec<AddedToken> = Vec::new();
        let mut plain: Vec<AddedToken> = Vec::new();
        for (token, &kind) in vocab.tokens.iter().zip(&vocab.types) {
            // A byte-level control token outside the byte alphabet is a
            // mislabelled one (transformers skips it the same way).
            if kind == CONTROL && (!byte_level || bpe::is_byte_level(token)) {
                special.push(AddedToken::from(token.clone(), true));
            } else if kind == USER_DEFINED {
                plain.push(AddedToken::from(token.clone(), false).normalized(false));
            }
        }
        for key in SPECIAL_IDS {
            if let Some(token) = self.token_at(key, vocab)? {
                special.push(AddedToken::from(token, true));
            }
        }
        let added = tokenizer
            .add_special_tokens(special)
            .and_then(|_| tokenizer.add_tokens(plain));
        added
            .map(|_| ())
            .map_err(|e| self.error(format!("adding the special tokens: {e}")))
    }

    /// The tokenizer with the chat template (`tokenizer.chat_template`, else
    /// ChatML) and BOS/EOS text.
    pub fn chat_tokenizer(&self) -> Result<ChatTokenizer, ModelError> {
        let tokenizer = self.tokenizer()?;
        let vocab = self.vocab()?;
        let bos = self.token_at("tokenizer.ggml.bos_token_id", &vocab)?;
        let eos = self.token_at("tokenizer.ggml.eos_token_id", &vocab)?;
        let template = self.string("tokenizer.chat_template")?.map(str::to_string);
        ChatTokenizer::from_parts(
            tokenizer,
            template,
            bos.unwrap_or_default(),
            eos.unwrap_or_default(),
        )
    }

    /// EOS and the end-of-turn tokens the metadata names.
    pub fn stop_ids(&self) -> Result<Vec<u32>, ModelError> {
        let mut ids = Vec::new();
        for key in std::iter::once("tokenizer.ggml.eos_token_id").chain(END_OF_TURN_IDS) {
            ids.extend(self.uint(key)?.map(|id| id as u32));
        }
        Ok(ids)
    }
}

/// A post-processor that puts `bos` before and `eos` after each sequence.
fn added_around(
    tokenizer: &Tokenizer,
    bos: Option<&str>,
    eos: Option<&str>,
) -> Result<TemplateProcessing, String> {
    let mut specials = Vec::new();
    for token in [bos, eos].into_iter().flatten() {
        let id = tokenizer
            .token_to_id(token)
            .ok_or_else(|| format!("`{token}` is not in the vocabulary"))?;
        specials.push((token.to_string(), id));
    }
    let sequence = |piece: &str, type_id: u32| -> Vec<String> {
        let mut out: Vec<String> = bos.map(|t| format!("{t}:{type_id}")).into_iter().collect();
        out.push(format!("{piece}:{type_id}"));
        out.extend(eos.map(|t| format!("{t}:{type_id}")));
        out
    };
    let mut pair = sequence("$A", 0);
    pair.extend(sequence("$B", 1));
    TemplateProcessing::builder()
        .try_single(sequence("$A", 0))
        .and_then(|b| b.try_pair(pair))
        .map_err(|e| e.to_string())?
        .special_tokens(specials)
        .build()
        .map_err(|e| e.to_string())
}
