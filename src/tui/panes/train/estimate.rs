//! What a run will cost, before it starts: memory from the model's shape
//! (config.json) and the form, time from the dataset's token count and a
//! throughput figure (the last run's on this model, else a FLOP guess).
//! Both are estimates and are shown as such.

use crate::data::store::Store;
use crate::model::config::ModelConfig;
use crate::model::lora::LoraSpec;
use crate::model::tokenize::ChatTokenizer;
use crate::train::batches::prepare;
use crate::train::config::{DataSection, TrainConfig};
use std::path::{Path, PathBuf};

/// Records longer than this are not tokenised for an estimate: the
/// tokenizer takes about 250 bytes of memory per byte of text, so one huge
/// record would take GBs.
const MEASURE_RECORD_BYTES: usize = 1_000_000;

/// Effective training FLOP/s assumed when no run on the model was measured.
const ASSUMED_CPU_FLOPS: f64 = 25e9;
const ASSUMED_CUDA_FLOPS: f64 = 25e12;

/// The dataset as the trainer will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSize {
    /// Training rows (samples, or packed rows).
    pub rows: usize,
    /// Tokens in all training rows (one epoch).
    pub tokens: usize,
    pub eval_tokens: usize,
    pub truncated: usize,
}

/// What a measurement is for: the settings the token count depends on.
#[derive(Debug, Clone)]
pub struct MeasureJob {
    pub fingerprint: String,
    pub model: String,
    pub template: Option<String>,
    pub data: DataSection,
    pub seed: u64,
}

impl MeasureJob {
    pub fn of(config: &TrainConfig) -> MeasureJob {
        MeasureJob {
            fingerprint: fingerprint(config),
            model: config.model.name.clone(),
            template: config.model.template.clone(),
            data: config.data.clone(),
            seed: config.training.seed,
        }
    }
}

pub fn fingerprint(config: &TrainConfig) -> String {
    format!(
        "{}|{:?}|{:?}|{}",
        config.model.name, config.model.template, config.data, config.training.seed
    )
}

#[derive(Debug, Clone)]
pub struct Measured {
    pub fingerprint: String,
    pub model: Result<ModelConfig, String>,
    pub data: Result<DataSize, String>,
}

/// Reads the model's config.json and tokenises the data (a worker's job).
pub fn measure(job: &MeasureJob) -> Measured {
    let dir = resolve_local(&job.model).ok_or_else(|| {
        format!(
            "{}: not a local directory or cached model (estimates need its config.json)",
            job.model
        )
    });
    let model = dir
        .clone()
        .and_then(|d| ModelConfig::load(&d).map_err(|e| e.to_string()));
    let data = dir.and_then(|dir| {
        let mut tokenizer = ChatTokenizer::load_dir(&dir).map_err(|e| e.to_string())?;
        if let Some(name) = &job.template {
            tokenizer
                .use_builtin_template(name.parse()?)
                .map_err(|e| e.to_string())?;
        }
        check_record_sizes(&job.data)?;
        let prepared = prepare(&tokenizer, &job.data, job.seed)?;
        let tokens = |rows: &[crate::train::batches::Example]| -> usize {
            rows.iter().map(|e| e.encoded.ids.len()).sum()
        };
        Ok(DataSize {
            rows: prepared.train.len(),
            tokens: tokens(&prepared.train),
            eval_tokens: tokens(&prepared.eval),
            truncated: prepared.report.truncated,
        })
    });
    Measured {
        fingerprint: job.fingerprint.clone(),
        model,
        data,
    }
}

/// Refuses data with a record over `MEASURE_RECORD_BYTES`, naming it (the
/// lengths come from the index: nothing is read).
fn check_record_sizes(data: &DataSection) -> Result<(), String> {
    let files = std::iter::once(data.train.as_str()).chain(data.eval.as_deref());
    for file in files {
        let Ok(store) = Store::open(file) else {
            continue; // preparing the data names what is wrong with it
        };
        for i in 0..store.len() {
            let (_, len) = store.raw_head(i, 0).map_err(|e| format!("{file}: {e}"))?;
            if len > MEASURE_RECORD_BYTES {
                return Err(format!(
                    "{file}: the record at line {} is {:.1} MB; estimates tokenise records up \
                     to {} MB (training needs as much memory for it: split or trim it)",
                    store.line(i).unwrap_or(i + 1),
                    len as f64 / 1e6,
                    MEASURE_RECORD_BYTES / 1_000_000
                ));
            }
        }
    }
    Ok(())
}

/// A model directory, or a repo id's snapshot already in the Hugging Face
/// cache; never a download.
pub fn resolve_local(model: &str) -> Option<PathBuf> {
    let local = Path::new(model);
    if local.join("config.json").exists() {
        return Some(local.to_path_buf());
    }
    let repo = crate::model::hub::cache_dir().join(format!("models--{}", model.replace('/', "--")));
    let hash = std::fs::read_to_string(repo.join("refs").join("main")).ok()?;
    let dir = repo.join("snapshots").join(hash.trim());
    dir.join("config.json").exists().then_some(dir)
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

use crate::model::lora::ALL_TARGETS as PROJECTIONS;

/// Parameters of the base model: (all, those in matrix products per token).
pub fn base_params(model: &ModelConfig) -> (usize, usize) {
    let h = model.hidden_size;
    let per_layer: usize = PROJECTIONS
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    pub weights: f64,
    /// LoRA parameters (f32).
    pub lora: f64,
    /// Their gradients and AdamW's two moments (f32).
    pub optimizer: f64,
    /// Saved for the backward pass, one micro-batch of max_seq_len rows.
    pub activations: f64,
}

impl Memory {
    pub fn total(&self) -> f64 {
        self.weights + self.lora + self.optimizer + self.activations
    }
}

pub fn memory(model: &ModelConfig, config: &TrainConfig) -> Memory {
    let width = if config.model.dtype == "bf16" {
        2.0
    } else {
        4.0
    };
    let (all, _) = base_params(model);
    let lora = lora_params(model, config.lora.r, &config.lora.targets) as f64;
    let (h, i) = (model.hidden_size, model.intermediate_size);
    let q = model.num_heads * model.head_dim;
    let kv = model.num_kv_heads * model.head_dim;
    let seq = config.data.max_seq_len;
    // Per token per layer: norms, residuals and projections' outputs,
    // rotated q/k, the attention scores and their softmax, the MLP's four
    // intermediate-sized tensors.
    let per_token_layer = 5 * h + 3 * q + 3 * kv + 2 * model.num_heads * seq + 4 * i;
    let tokens = config.training.batch_size * seq;
    let activations = (per_token_layer * model.num_layers * tokens) as f64 * width;
    Memory {
        weights: all as f64 * width,
        lora: lora * 4.0,
        optimizer: lora * 12.0,
        activations,
    }
}

/// Where the throughput figure came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Speed {
    /// Median tokens/s of an earlier run on this model.
    Measured { run: String },
    /// FLOPs per token over an assumed device speed.
    Assumed { flops_per_token: f64, flops: f64 },
}

#[derive(Debug, Clone, PartialEq)]
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
mod tests {
    use super::*;

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

    fn config() -> TrainConfig {
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
        assert_eq!(mem.optimizer, mem.lora * 3.0);
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

    #[test]
    fn a_record_too_large_to_tokenise_is_named_not_measured() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let big = serde_json::json!({"text": "z".repeat(MEASURE_RECORD_BYTES)});
        std::fs::write(&path, format!("{{\"text\": \"small\"}}\n{big}\n")).unwrap();
        let mut c = config();
        c.data.train = path.to_string_lossy().into_owned();
        let error = check_record_sizes(&c.data).unwrap_err();
        assert!(error.contains("the record at line 2 is 1.0 MB"), "{error}");
        c.data.train = dir.path().join("none.jsonl").to_string_lossy().into_owned();
        assert!(check_record_sizes(&c.data).is_ok(), "left to preparing");
    }

    #[test]
    fn measures_the_tiny_model_and_sample_data() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let model = root.join("models/tiny");
        let data = root.join("sample-data/fastapi_projects.jsonl");
        if !model.exists() || !data.exists() {
            return;
        }
        let mut c = config();
        c.data.max_seq_len = 384;
        c.model.name = model.to_string_lossy().into_owned();
        c.data.train = data.to_string_lossy().into_owned();
        let measured = measure(&MeasureJob::of(&c));
        assert!(measured.model.is_ok());
        let size = measured.data.unwrap();
        assert!(size.rows > 10 && size.tokens <= size.rows * 384, "{size:?}");
        assert!(size.truncated > 0 && size.eval_tokens > 0);
        let missing = measure(&MeasureJob {
            model: "no/such-model-here".into(),
            ..MeasureJob::of(&c)
        });
        assert!(missing.model.unwrap_err().contains("no/such-model-here"));
    }
}
