//! What a training run will cost, before it starts: peak memory from the
//! model's shape and the configuration, time from the data's token count and
//! a throughput figure. `train --dry-run`, the trainer's automatic
//! checkpointing and the workbench's Train form share these.
//!
//! The memory figures follow what the trainer holds (checked against the
//! peak resident memory of real runs in tests/estimate.rs): the weights, the
//! adapter with its gradients and AdamW moments, the activations the
//! backward pass needs, the attention scores, the logits of one chunk, and
//! the process itself.

use super::config::TrainConfig;
use crate::model::base_weight::{Quantize, type_for_rows};
use crate::model::config::ModelConfig;
use crate::model::lora::{ALL_TARGETS, LoraSpec};

/// Effective training FLOP/s assumed when no run on the model was measured.
const ASSUMED_CPU_FLOPS: f64 = 25e9;
const ASSUMED_CUDA_FLOPS: f64 = 25e12;

/// Resident memory of the process before the model: the binary, its
/// libraries, the tokenizer and the prepared data.
const PROCESS_BASELINE: f64 = 25e6;

/// The dataset as the trainer will see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataSize {
    /// Training rows (samples, or packed rows).
    pub rows: usize,
    /// Tokens in all training rows (one epoch).
    pub tokens: usize,
    pub eval_tokens: usize,
    pub truncated: usize,
}

/// (in, out) features of each projection LoRA can target.
fn projection_shape(model: &ModelConfig, name: &str) -> (usize, usize) {
    let h = model.hidden_size;
    let q = model.num_heads * model.head_dim;
    let kv = model.num_kv_heads * model.head_dim;
    let i = model.intermediate_size;
    match name {
        "q_proj" => (h, q),
        "k_proj" | "v_proj" => (h, kv),
        "o_proj" => (q, h),
        "gate_proj" | "up_proj" => (h, i),
        "down_proj" => (i, h),
        _ => (0, 0),
    }
}

/// Parameters of the base model: (all, those in matrix products per token).
pub fn base_params(model: &ModelConfig) -> (usize, usize) {
    let h = model.hidden_size;
    let per_layer: usize = ALL_TARGETS
        .iter()
        .map(|p| {
            let (i, o) = projection_shape(model, p);
            i * o
        })
        .sum::<usize>()
        + 2 * h;
    let embed = model.vocab_size * h;
    let head = if model.tie_word_embeddings { 0 } else { embed };
    let all = model.num_layers * per_layer + embed + head + h;
    // The output head multiplies every token whether tied or not.
    let matmul = model.num_layers * per_layer + embed;
    (all, matmul)
}

/// Trainable LoRA parameters: r × (in + out) per targeted projection.
pub fn lora_params(model: &ModelConfig, r: usize, targets: &[String]) -> usize {
    let names = LoraSpec::resolve_targets(targets).unwrap_or_default();
    let per_layer: usize = names
        .iter()
        .map(|n| {
            let (i, o) = projection_shape(model, n);
            r * (i + o)
        })
        .sum();
    per_layer * model.num_layers
}

/// Peak memory of a run, in bytes, by what holds it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Memory {
    pub weights: f64,
    /// LoRA parameters (f32).
    pub lora: f64,
    /// Their gradients (and the step's accumulated copy) and AdamW's two moments.
    pub optimizer: f64,
    /// Kept for the backward pass, one micro-batch of max_seq_len rows.
    pub activations: f64,
    /// Attention's score and probability matrices at the peak.
    pub attention: f64,
    /// The peak of the backward pass above what forward kept, and one chunk of logits.
    pub transient: f64,
    /// The process before the model (binary, tokenizer, data).
    pub baseline: f64,
    /// Loading: the weight files are mapped while their tensors are copied,
    /// so for a moment the weights are held twice. The peak is the larger of
    /// this and training.
    pub loading: f64,
}

impl Memory {
    /// Peak resident memory.
    pub fn total(&self) -> f64 {
        let training =
            self.lora + self.optimizer + self.activations + self.attention + self.transient;
        self.baseline + self.weights + training.max(self.loading)
    }
}

/// Whether decoder layers are recomputed in the backward pass: as the
/// config says, or, when it says nothing, exactly when the run would not
/// fit in the memory available without it.
pub fn checkpointing(model: &ModelConfig, config: &TrainConfig) -> bool {
    match config.training.gradient_checkpointing {
        Some(on) => on,
        None => needs_checkpointing(model, config, available_memory()),
    }
}

/// The automatic choice: the estimate without checkpointing exceeds what
/// is available (unknown: never).
fn needs_checkpointing(model: &ModelConfig, config: &TrainConfig, available: Option<f64>) -> bool {
    available.is_some_and(|bytes| memory_with(model, config, false).total() > bytes)
}

/// `MemAvailable` from /proc/meminfo, in bytes (Linux).
fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kb: f64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024.0)
}

/// The checkpointing setting as `train --dry-run` and the Train form show it.
pub fn checkpointing_text(model: &ModelConfig, config: &TrainConfig) -> String {
    let on = checkpointing(model, config);
    let word = if on { "on" } else { "off" };
    match config.training.gradient_checkpointing {
        Some(_) => word.to_string(),
        None => format!(
            "auto: {word} (≈ {:.1} GB without it, {} available)",
            memory_with(model, config, false).total() / 1e9,
            available_memory().map_or("unknown".into(), |b| format!("{:.1} GB", b / 1e9))
        ),
    }
}

/// f32 values kept for backward per token and layer, for the shape: what
/// the graph holds until the backward pass reaches the layer.
fn kept_per_token_layer(model: &ModelConfig, r: usize, targets: &[String]) -> f64 {
    let (h, i) = (model.hidden_size as f64, model.intermediate_size as f64);
    let q = (model.num_heads * model.head_dim) as f64;
    let kv = (model.num_kv_heads * model.head_dim) as f64;
    // Hidden-sized: both norms' outputs, o_proj's and down_proj's outputs,
    // both residual sums. Queries: the projection, its per-head copy, the
    // rotated copy, attention's output and its merged-heads copy; keys and
    // values the same but attention's output. The MLP: gate, up and their
    // SwiGLU product. (The fused norm, RoPE and SwiGLU ops keep nothing
    // else; the LoRA op keeps no output copy.)
    let base = 6.0 * h + 5.0 * q + 5.0 * kv + 3.0 * i;
    // An adapted projection keeps its `[tokens, r]` down-projection.
    let adapted = LoraSpec::resolve_targets(targets)
        .unwrap_or_default()
        .iter()
        .filter(|name| ALL_TARGETS.contains(&name.as_str()))
        .count();
    base + (adapted * r) as f64
}

/// One layer's kept values, in copies, alive at once in its backward pass
/// (the gradients flowing through it beside the values it reads; fitted to
/// the measured peaks of tests/estimate.rs). 3 until the SwiGLU backward
/// became one pass (it made eight intermediate-sized tensors).
const BACKWARD_LAYER_COPIES: f64 = 1.5;
/// `[heads, seq, seq]` matrices per layer at the peak: attention keeps six
/// (scores, scaled, masked, shifted, exponentials, probabilities) and the
/// backward pass holds their gradients beside them; fitted to measured
/// peaks (tests/estimate.rs).
const SCORE_MATRICES_KEPT: f64 = 16.0;
/// The same, alive at once in one layer's backward.
const SCORE_MATRICES_BACKWARD: f64 = 8.0;
/// Rows of logits the loss computes at once, and the `[rows, vocab]`
/// matrices alive per chunk.
const LOGIT_ROWS: f64 = 64.0;
const LOGIT_MATRICES: f64 = 5.0;

pub fn memory(model: &ModelConfig, config: &TrainConfig) -> Memory {
    memory_with(model, config, checkpointing(model, config))
}

fn memory_with(model: &ModelConfig, config: &TrainConfig, checkpointing: bool) -> Memory {
    let width = if config.model.dtype == "bf16" {
        2.0
    } else {
        4.0
    };
    let weights = weight_bytes(model, config, width);
    let lora = lora_params(model, config.lora.r, &config.lora.targets) as f64;
    let seq = config.data.max_seq_len as f64;
    let tokens = config.training.batch_size as f64 * seq;
    let layers = model.num_layers as f64;
    let per_layer = kept_per_token_layer(model, config.lora.r, &config.lora.targets) * tokens * 4.0;
    let h = model.hidden_size as f64;
    let (activations, layers_with_scores) = if checkpointing {
        // Each layer's input, and one layer's own activations recomputed.
        (layers * tokens * h * 4.0 + per_layer, 1.0)
    } else {
        (layers * per_layer, layers)
    };
    let batch = config.training.batch_size as f64;
    // On the CPU attention goes in tiles (model/flash): no `[heads, seq,
    // seq]` matrix is ever held. Elsewhere the whole matrix still is.
    let score_matrix = if whole_score_matrices(config) {
        batch * model.num_heads as f64 * seq * seq * 4.0
    } else {
        0.0
    };
    let attention = score_matrix * (SCORE_MATRICES_KEPT * layers_with_scores);
    let logits = LOGIT_ROWS * model.vocab_size as f64 * 4.0 * LOGIT_MATRICES;
    let backward = score_matrix * SCORE_MATRICES_BACKWARD + per_layer * BACKWARD_LAYER_COPIES;
    Memory {
        weights,
        lora: lora * 4.0,
        // Gradient, its accumulated copy, two moments.
        optimizer: lora * 16.0,
        activations,
        attention,
        transient: logits.max(backward),
        baseline: PROCESS_BASELINE,
        loading: weights,
    }
}

/// The base's bytes: every tensor in the working dtype (`width` bytes), or
/// the projections in the GGUF file's own types (`quantize = "keep"`) or
/// the type they are quantized to on load.
fn weight_bytes(model: &ModelConfig, config: &TrainConfig, width: f64) -> f64 {
    let dense = base_params(model).0 as f64 * width;
    let quantize = config.model.quantize.as_deref().map(str::parse::<Quantize>);
    let layers = model.num_layers as f64;
    let shapes = ALL_TARGETS.map(|p| projection_shape(model, p));
    let projections: f64 = shapes.iter().map(|(i, o)| (i * o) as f64).sum::<f64>() * layers;
    let kept = match quantize {
        Some(Ok(Quantize::Keep)) => match model.stored_projection_bytes {
            Some(bytes) => bytes as f64,
            None => return dense,
        },
        Some(Ok(Quantize::To(wanted))) => {
            let per_layer: f64 = shapes
                .iter()
                .map(|&(i, o)| match type_for_rows(wanted, i) {
                    Some(t) => (i * o / t.block_size() * t.type_size()) as f64,
                    None => (i * o) as f64 * width,
                })
                .sum();
            per_layer * layers
        }
        _ => return dense,
    };
    dense - projections * width + kept
}

/// Whether training attention holds whole score matrices: only off the
/// CPU, where the blockwise kernel does not run yet.
fn whole_score_matrices(config: &TrainConfig) -> bool {
    config.model.device != "cpu"
}

/// Where the throughput figure came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Speed {
    /// Median tokens/s of an earlier run on this model.
    Measured { run: String },
    /// FLOPs per token over an assumed device speed.
    Assumed { flops_per_token: f64, flops: f64 },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Time {
    pub steps: usize,
    pub epochs: f64,
    /// Training tokens over the whole run.
    pub tokens: f64,
    pub tok_s: f64,
    pub seconds: f64,
    pub speed: Speed,
}

pub fn time(
    data: &DataSize,
    model: &ModelConfig,
    config: &TrainConfig,
    measured: Option<(f64, String)>,
) -> Time {
    let t = &config.training;
    let micro = data.rows.div_ceil(t.batch_size.max(1));
    let per_epoch = micro.div_ceil(t.grad_accum.max(1)).max(1);
    let steps = if t.max_steps > 0 {
        t.max_steps
    } else {
        t.epochs * per_epoch
    };
    let epochs = steps as f64 / per_epoch as f64;
    let tokens = data.tokens as f64 * epochs;
    let (tok_s, speed) = match measured {
        Some((tok_s, run)) if tok_s > 0.0 => (tok_s, Speed::Measured { run }),
        _ => {
            let (_, matmul) = base_params(model);
            let avg_len = data.tokens as f64 / data.rows.max(1) as f64;
            // Forward 2N, backward 2N (frozen weights need no weight
            // gradient), plus attention over the average row.
            let attention = 6.0 * (model.num_layers * model.num_heads * model.head_dim) as f64;
            let flops_per_token = 4.0 * matmul as f64 + attention * avg_len;
            let flops = if config.model.device == "cuda" {
                ASSUMED_CUDA_FLOPS
            } else {
                ASSUMED_CPU_FLOPS
            };
            (
                flops / flops_per_token,
                Speed::Assumed {
                    flops_per_token,
                    flops,
                },
            )
        }
    };
    // Evaluations run forward only: about twice as fast per token.
    let evals = (steps / t.eval_every.max(1)) as f64;
    let seconds = tokens / tok_s + evals * data.eval_tokens as f64 / (2.0 * tok_s);
    Time {
        steps,
        epochs,
        tokens,
        tok_s,
        seconds,
        speed,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    fn tiny() -> ModelConfig {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny/config.json"),
        );
        let json = match text {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => serde_json::json!({
                "architectures": ["Qwen2ForCausalLM"], "hidden_size": 256,
                "intermediate_size": 688, "num_hidden_layers": 4,
                "num_attention_heads": 8, "num_key_value_heads": 4,
                "vocab_size": 4096, "tie_word_embeddings": true
            }),
        };
        ModelConfig::from_json(&json).unwrap()
    }

    pub(crate) fn config() -> TrainConfig {
        TrainConfig::load(
            None,
            &[
                "model.name=\"m\"".into(),
                "data.train=\"d\"".into(),
                "lora.r=8".into(),
                "data.max_seq_len=128".into(),
                "training.epochs=2".into(),
                "training.grad_accum=2".into(),
                "training.eval_every=5".into(),
            ],
        )
        .unwrap()
    }

    #[test]
    fn checkpointing_is_automatic_only_when_the_config_says_nothing() {
        let (m, mut c) = (tiny(), config());
        let without = memory_with(&m, &c, false).total();
        assert!(needs_checkpointing(&m, &c, Some(without * 0.9)));
        assert!(!needs_checkpointing(&m, &c, Some(without * 1.1)));
        assert!(!needs_checkpointing(&m, &c, None));
        assert!(memory_with(&m, &c, true).total() < without);
        c.training.gradient_checkpointing = Some(false);
        assert!(!checkpointing(&m, &c));
        assert_eq!(checkpointing_text(&m, &c), "off");
        c.training.gradient_checkpointing = None;
        assert!(checkpointing_text(&m, &c).starts_with("auto: "));
    }

    #[test]
    fn parameter_counts_follow_the_shape() {
        let m = tiny();
        let (all, matmul) = base_params(&m);
        // 4 layers × (q 256² + k,v 256·128 each + o 256² + 3·256·688 + 2 norms) + embed + norm.
        let layer = 65536 + 2 * 32768 + 65536 + 3 * 256 * 688 + 512;
        assert_eq!(all, 4 * layer + 4096 * 256 + 256);
        assert_eq!(matmul, 4 * layer + 4096 * 256);
        // r·(in+out) per projection per layer.
        let q_only = lora_params(&m, 8, &["q_proj".into()]);
        assert_eq!(q_only, 4 * 8 * (256 + 256));
        let all_linear = lora_params(&m, 8, &["all-linear".into()]);
        assert!(all_linear > q_only * 5);
    }

    #[test]
    fn memory_and_time_add_up() {
        let m = tiny();
        let c = config();
        let mem = memory(&m, &c);
        assert_eq!(mem.weights, base_params(&m).0 as f64 * 4.0);
        assert_eq!(mem.optimizer, mem.lora * 4.0);
        assert!(mem.activations > 0.0 && mem.total() > mem.weights);
        let data = DataSize {
            rows: 9,
            tokens: 900,
            eval_tokens: 100,
            truncated: 0,
        };
        // 9 rows, batch 1, accum 2: 5 steps an epoch, 10 in all, 2 evals.
        let t = time(&data, &m, &c, Some((100.0, "r".into())));
        assert_eq!((t.steps, t.epochs, t.tokens), (10, 2.0, 1800.0));
        assert_eq!(t.seconds, 18.0 + 2.0 * 100.0 / 200.0);
        assert_eq!(t.speed, Speed::Measured { run: "r".into() });
        let guess = time(&data, &m, &c, None);
        assert!(matches!(guess.speed, Speed::Assumed { .. }));
        assert!(guess.tok_s > 100.0 && guess.tok_s < 1e5, "{}", guess.tok_s);
    }
}
