//! Writing small GGUF files the way llama.cpp's converter lays them out
//! (its tensor names, q/k rows permuted for Llama-family models, Llama 3
//! RoPE as `rope_freqs`, the tokenizer as `tokenizer.ggml.*` metadata), from a
//! model directory, for tests of reading them. Written here independently of
//! the reader under test.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::Value as Json;
use std::path::Path;
use tunebench::model::config::{Arch, ModelConfig};
use tunebench::model::weights::{TensorSource, Weights};

/// transformers' module names and llama.cpp's.
const NAMES: [(&str, &str); 14] = [
    ("model.embed_tokens", "token_embd"),
    ("model.norm", "output_norm"),
    ("lm_head", "output"),
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

fn llama_cpp_name(name: &str) -> String {
    let (module, kind) = name.rsplit_once('.').unwrap();
    let (prefix, module) = match module.strip_prefix("model.layers.") {
        Some(rest) => {
            let (layer, module) = rest.split_once('.').unwrap();
            (format!("blk.{layer}."), module)
        }
        None => (String::new(), module),
    };
    let short = NAMES.iter().find(|(hf, _)| *hf == module).unwrap().1;
    format!("{prefix}{short}.{kind}")
}

/// llama.cpp's `permute`: each head's rows from (first half, second half) to
/// interleaved pairs.
fn permute(t: &Tensor, heads: usize) -> Tensor {
    let dims = t.dims().to_vec();
    let mut split = vec![heads, 2, dims[0] / heads / 2];
    split.extend_from_slice(&dims[1..]);
    t.reshape(split)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape(dims)
        .unwrap()
}

/// Llama 3's per-frequency RoPE divisors, as llama.cpp's converter computes them.
fn llama3_rope_factors(config: &ModelConfig) -> Vec<f32> {
    let s = config.rope_scaling.as_ref().unwrap();
    let d = config.head_dim;
    let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    (0..d / 2)
        .map(|i| {
            let freq = 1.0 / config.rope_theta.powf((2 * i) as f64 / d as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                s.factor as f32
            } else {
                let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                (1.0 / ((1.0 - smooth) / s.factor + smooth)) as f32
            }
        })
        .collect()
}

/// Tokenizer metadata from a model directory's tokenizer.json.
/// BOS and EOS ids come from config.json, else tokenizer_config.json's
/// tokens (as llama.cpp's converter reads them).
fn tokenizer_metadata(dir: &Path, model: &ModelConfig, pre: &str) -> Vec<(String, Value)> {
    let json: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    let mut tokens: Vec<(u64, String, u32)> = json["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, id)| (id.as_u64().unwrap(), t.clone(), 1))
        .collect();
    for added in json["added_tokens"].as_array().unwrap() {
        let id = added["id"].as_u64().unwrap();
        let kind = if added["special"].as_bool().unwrap() {
            3
        } else {
            4
        };
        tokens.retain(|(i, _, _)| *i != id);
        tokens.push((id, added["content"].as_str().unwrap().into(), kind));
    }
    tokens.sort();
    let merges: Vec<Value> = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Json::String(s) => Value::String(s.clone()),
            Json::Array(pair) => Value::String(format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            )),
            other => panic!("merge {other}"),
        })
        .collect();
    let config: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    let id_of = |key: &str| {
        let text = config[key].as_str()?;
        tokens
            .iter()
            .find(|(_, t, _)| t == text)
            .map(|(id, _, _)| *id as u32)
    };
    let template = std::fs::read_to_string(dir.join("chat_template.jinja"))
        .ok()
        .or_else(|| config["chat_template"].as_str().map(str::to_string));
    let mut metadata = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(
                tokens
                    .iter()
                    .map(|(_, t, _)| Value::String(t.clone()))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                tokens
                    .iter()
                    .map(|(_, _, k)| Value::I32(*k as i32))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(merges)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ];
    let from_config = [model.bos_token_id, model.eos_token_ids.first().copied()];
    for ((key, hf), id) in [
        ("tokenizer.ggml.bos_token_id", "bos_token"),
        ("tokenizer.ggml.eos_token_id", "eos_token"),
    ]
    .into_iter()
    .zip(from_config)
    {
        if let Some(id) = id.or_else(|| id_of(hf)) {
            metadata.push((key.into(), Value::U32(id)));
        }
    }
    if let Some(template) = template {
        metadata.push(("tokenizer.chat_template".into(), Value::String(template)));
    }
    metadata
}

/// Writes `dir`'s model as the GGUF file `out`, its matrices as `quant`
/// (norms and biases stay f32, as llama.cpp keeps them), with the byte-level
/// BPE tokenizer under the pre-tokenizer name `pre`.
pub fn write(dir: &Path, out: &Path, quant: GgmlDType, pre: &str) {
    let config = ModelConfig::load(dir).unwrap();
    let weights = Weights::open(dir, DType::F32, &Device::Cpu).unwrap();
    let arch = match config.arch {
        Arch::Llama | Arch::Mistral => "llama",
        Arch::Qwen2 => "qwen2",
        Arch::Qwen3 => "qwen3",
    };
    let key = |k: &str| format!("{arch}.{k}");
    let counts = [
        ("block_count", config.num_layers),
        ("context_length", config.max_position_embeddings),
        ("embedding_length", config.hidden_size),
        ("feed_forward_length", config.intermediate_size),
        ("attention.head_count", config.num_heads),
        ("attention.head_count_kv", config.num_kv_heads),
        ("attention.key_length", config.head_dim),
        ("attention.value_length", config.head_dim),
        ("rope.dimension_count", config.head_dim),
    ];
    let mut metadata: Vec<(String, Value)> =
        vec![("general.architecture".into(), Value::String(arch.into()))];
    metadata.extend(counts.map(|(k, n)| (key(k), Value::U32(n as u32))));
    metadata.push((key("rope.freq_base"), Value::F32(config.rope_theta as f32)));
    metadata.push((
        key("attention.layer_norm_rms_epsilon"),
        Value::F32(config.rms_norm_eps as f32),
    ));
    metadata.extend(tokenizer_metadata(dir, &config, pre));
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    if config.rope_scaling.is_some() {
        let factors = llama3_rope_factors(&config);
        let n = factors.len();
        let t = Tensor::from_vec(factors, n, &Device::Cpu).unwrap();
        tensors.push((
            "rope_freqs.weight".into(),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    }
    for name in config.tensor_names() {
        let mut t = weights.get(&name).unwrap();
        if arch == "llama" && name.contains("self_attn.q_proj.") {
            t = permute(&t, config.num_heads);
        } else if arch == "llama" && name.contains("self_attn.k_proj.") {
            t = permute(&t, config.num_kv_heads);
        }
        // Like llama.cpp, rows that do not split into whole blocks stay f32.
        let whole_blocks = t.dims().last().unwrap() % quant.block_size() == 0;
        let dtype = if t.rank() == 2 && whole_blocks {
            quant
        } else {
            GgmlDType::F32
        };
        tensors.push((llama_cpp_name(&name), QTensor::quantize(&t, dtype).unwrap()));
    }
    let metadata_refs: Vec<(&str, &Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(out).unwrap();
    gguf_file::write(&mut file, &metadata_refs, &tensor_refs).unwrap();
}
