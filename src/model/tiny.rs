//! `init-tiny`: a small Qwen2-architecture model with random weights and a
//! byte-level BPE tokenizer trained on the shipped sample data, written the
//! way the Hub lays models out, so transformers loads it too. Deterministic
//! for a seed.

use super::template::BuiltinTemplate;
use crate::data::builtin::sample_conversations;
use crate::data::rng::SplitMix64;
use crate::data::sample::Sample;
use serde_json::json;
use std::path::Path;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, Tokenizer};

/// The pre-tokenisation pattern Qwen2 tokenizers ship.
pub(crate) const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The tied embeddings' scale. With transformers' usual 0.02 and a
/// 256-wide hidden state no logit can exceed about 5, too flat for an
/// adapter on this random base to say anything with confidence.
const EMBED_STD: f64 = 0.1;

const SPECIAL: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// The tiny model's shape.
#[derive(Debug, Clone)]
pub struct TinyShape {
    pub vocab: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
}

impl Default for TinyShape {
    fn default() -> Self {
        TinyShape {
            vocab: 4096,
            hidden: 256,
            intermediate: 688,
            layers: 4,
            heads: 8,
            kv_heads: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TinyError {
    #[error("writing {path}: {message}")]
    Write { path: String, message: String },
    #[error("training the tokenizer: {0}")]
    Tokenizer(String),
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> TinyError {
    TinyError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes the model directory `out`.
pub fn init_tiny(out: &Path, seed: u64, shape: &TinyShape) -> Result<(), TinyError> {
    std::fs::create_dir_all(out).map_err(|e| write_err(out, e))?;
    let tokenizer = train_tokenizer(shape.vocab)?;
    let vocab = tokenizer.get_vocab_size(true);
    let id = |t: &str| tokenizer.token_to_id(t).unwrap_or(0);
    let tokenizer_path = out.join("tokenizer.json");
    tokenizer
        .save(&tokenizer_path, true)
        .map_err(|e| write_err(&tokenizer_path, e))?;
    let shape = TinyShape {
        vocab,
        ..shape.clone()
    };
    write_json(
        out,
        "config.json",
        &config_json(&shape, id("<|endoftext|>"), id("<|im_end|>")),
    )?;
    write_json(
        out,
        "tokenizer_config.json",
        &json!({
            "tokenizer_class": "Qwen2Tokenizer",
            "chat_template": BuiltinTemplate::ChatMl.source(),
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "bos_token": null,
            "model_max_length": 4096,
            "clean_up_tokenization_spaces": false,
        }),
    )?;
    write_json(
        out,
        "generation_config.json",
        &json!({
            "bos_token_id": id("<|endoftext|>"),
            "eos_token_id": [id("<|im_end|>"), id("<|endoftext|>")],
            "pad_token_id": id("<|endoftext|>"),
        }),
    )?;
    write_weights(out, &shape, seed)
}

fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<(), TinyError> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| write_err(&path, e))?;
    std::fs::write(&path, text + "\n").map_err(|e| write_err(&path, e))
}

fn config_json(s: &TinyShape, bos: u32, eos: u32) -> serde_json::Value {
    json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": s.hidden,
        "intermediate_size": s.intermediate,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": true,
        "vocab_size": s.vocab,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "use_sliding_window": false,
        "attention_dropout": 0.0,
        "torch_dtype": "float32",
    })
}

/// Byte-level BPE on the sample data as the chat template renders it.
fn train_tokenizer(vocab: usize) -> Result<Tokenizer, TinyError> {
    let template =
        super::template::ChatTemplate::new(BuiltinTemplate::ChatMl.source(), "", "<|im_end|>")
            .map_err(|e| TinyError::Tokenizer(e.to_string()))?;
    let corpus: Vec<String> = sample_conversations()
        .iter()
        .map(|s| match s {
            Sample::Text(t) => t.clone(),
            Sample::Chat(c) => template
                .render(&c.with_system_message(), None, false)
                .unwrap_or_default(),
        })
        .collect();
    let specials: Vec<AddedToken> = SPECIAL.iter().map(|t| AddedToken::from(*t, true)).collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    let mut tokenizer = Tokenizer::new(BPE::default());
    // Qwen2's own normaliser and pre-tokeniser (digits split one by one), so
    // transformers' Qwen2Tokenizer and this tokenizer.json tokenise alike.
    tokenizer
        .with_normalizer(Some(NFC))
        .map_err(|e| TinyError::Tokenizer(e.to_string()))?;
    let split = Split::new(
        SplitPattern::Regex(QWEN2_SPLIT.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| TinyError::Tokenizer(e.to_string()))?;
    let byte_level = ByteLevel::default()
        .add_prefix_space(false)
        .use_regex(false);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![split.into(), byte_level.into()])));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
    tokenizer
        .train(&mut trainer, corpus.iter())
        .map_err(|e| TinyError::Tokenizer(e.to_string()))?;
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| TinyError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

/// Normal(0, 0.02) projections and N(0, EMBED_STD) embeddings (Box-Muller
/// on a seeded generator), unit norms.
fn write_weights(out: &Path, s: &TinyShape, seed: u64) -> Result<(), TinyError> {
    let mut rng = SplitMix64::new(seed);
    let mut normal = move |n: usize, std: f64| rng.normal_vec(n, std);
    let head_dim = s.hidden / s.heads;
    let (q, kv) = (s.heads * head_dim, s.kv_heads * head_dim);
    let mut tensors: Vec<super::st_write::NamedF32> = Vec::new();
    let mut add =
        |name: String, shape: Vec<usize>, values: Vec<f32>| tensors.push((name, shape, values));
    add(
        "model.embed_tokens.weight".into(),
        vec![s.vocab, s.hidden],
        normal(s.vocab * s.hidden, EMBED_STD),
    );
    for i in 0..s.layers {
        let p = format!("model.layers.{i}");
        for (name, rows, cols) in [
            ("self_attn.q_proj", q, s.hidden),
            ("self_attn.k_proj", kv, s.hidden),
            ("self_attn.v_proj", kv, s.hidden),
            ("self_attn.o_proj", s.hidden, q),
            ("mlp.gate_proj", s.intermediate, s.hidden),
            ("mlp.up_proj", s.intermediate, s.hidden),
            ("mlp.down_proj", s.hidden, s.intermediate),
        ] {
            add(
                format!("{p}.{name}.weight"),
                vec![rows, cols],
                normal(rows * cols, 0.02),
            );
        }
        for (name, n) in [
            ("self_attn.q_proj", q),
            ("self_attn.k_proj", kv),
            ("self_attn.v_proj", kv),
        ] {
            add(format!("{p}.{name}.bias"), vec![n], vec![0.0; n]);
        }
        add(
            format!("{p}.input_layernorm.weight"),
            vec![s.hidden],
            vec![1.0; s.hidden],
        );
        add(
            format!("{p}.post_attention_layernorm.weight"),
            vec![s.hidden],
            vec![1.0; s.hidden],
        );
    }
    add(
        "model.norm.weight".into(),
        vec![s.hidden],
        vec![1.0; s.hidden],
    );
    let path = out.join("model.safetensors");
    super::st_write::write_f32(&path, &tensors).map_err(|e| write_err(&path, e))
}
