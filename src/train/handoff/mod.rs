//! `export-run`: a tunebench training config handed to another engine (for
//! runs too big for one machine): the same samples, rendered as tunebench
//! renders them, in the engine's dataset format, the engine's own config
//! with every setting that maps, a launch script, and a README naming what
//! could not be carried over and why.

pub mod axolotl;
pub mod import;
pub mod llamafactory;
pub mod yaml;

use super::batches::choose_samples;
use super::config::TrainConfig;
use crate::data::convert::{Target, convert_sample};
use crate::model::ChatTokenizer;
use crate::model::hub::{self, ModelSource};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    LlamaFactory,
    Axolotl,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "llamafactory" | "llama-factory" => Ok(Engine::LlamaFactory),
            "axolotl" => Ok(Engine::Axolotl),
            other => Err(format!(
                "`{other}`: export-run writes for axolotl or llamafactory"
            )),
        }
    }
}

/// Where and for how many devices.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub engine: Engine,
    pub out: PathBuf,
    pub gpus: usize,
    pub nodes: usize,
}

impl Handoff {
    /// Processes that train: GPUs on every node.
    pub fn devices(&self) -> usize {
        self.gpus * self.nodes
    }
}

/// What was written, for the command's report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub files: Vec<String>,
    pub train_samples: usize,
    pub eval_samples: usize,
    /// Settings not carried over, each with why.
    pub not_carried: Vec<String>,
    pub launch: String,
}

pub fn export_run(config: &TrainConfig, handoff: &Handoff) -> Result<Exported, String> {
    let model = hf_model(&config.model.name)?;
    let mut tokenizer = ChatTokenizer::load(&config.model.name).map_err(|e| e.to_string())?;
    tokenizer.use_template_named(config.model.template.as_deref())?;
    let chosen = choose_samples(&config.data, config.training.seed)?;
    let data_dir = handoff.out.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let mut not_carried = Vec::new();
    let train = write_chat_jsonl(
        &data_dir.join("train.jsonl"),
        &chosen.train,
        &mut not_carried,
    )?;
    let eval = write_chat_jsonl(&data_dir.join("eval.jsonl"), &chosen.eval, &mut not_carried)?;
    if handoff.engine == Engine::Axolotl {
        for (name, samples) in [
            (TRAIN_SEGMENTS, &chosen.train),
            (EVAL_SEGMENTS, &chosen.eval),
        ] {
            let path = handoff.out.join(name);
            let on_inputs = config.data.train_on_inputs;
            write_segments_jsonl(&path, samples, &tokenizer, on_inputs, &mut not_carried)?;
        }
    }
    let data = Data {
        has_eval: eval.records > 0,
        has_tools: train.tools || eval.tools,
    };
    let (train, eval) = (train.records, eval.records);
    let max = config.data.max_seq_len;
    let long = chosen
        .train
        .iter()
        .filter(|(_, s)| tokenizer.count_tokens(s).is_ok_and(|n| n > max))
        .count();
    // Axolotl is told to cut as tunebench does (excess_length_strategy).
    if long > 0 && handoff.engine == Engine::LlamaFactory {
        not_carried.push(format!(
            "{long} training samples are longer than max_seq_len {max}: tunebench keeps their first {max} tokens, LLaMA-Factory shares cutoff_len between prompt and answer, so what they train on differs"
        ));
    }
    for (file, line, why) in &chosen.report.skipped {
        not_carried.push(format!(
            "{file}:{line}: skipped as tunebench skips it: {why}"
        ));
    }
    let written = match handoff.engine {
        Engine::LlamaFactory => {
            llamafactory::write(config, &model, &tokenizer, handoff, data, &mut not_carried)?
        }
        Engine::Axolotl => axolotl::write(config, &model, handoff, data, &mut not_carried)?,
    };
    let mut files = vec!["data/train.jsonl".to_string()];
    if eval > 0 {
        files.push("data/eval.jsonl".into());
    }
    if handoff.engine == Engine::Axolotl {
        files.push(TRAIN_SEGMENTS.into());
        if eval > 0 {
            files.push(EVAL_SEGMENTS.into());
        }
    }
    files.extend(written.files);
    let readme = readme(config, handoff, &written.launch, &not_carried);
    write_file(&handoff.out.join("README.md"), &readme)?;
    files.push("README.md".into());
    Ok(Exported {
        files,
        train_samples: train,
        eval_samples: eval,
        not_carried,
        launch: written.launch,
    })
}

/// Axolotl's data: the chat records' text as tunebench renders it, in
/// trained and untrained pieces (`input_output`).
const TRAIN_SEGMENTS: &str = "data/train.segments.jsonl";
const EVAL_SEGMENTS: &str = "data/eval.segments.jsonl";

/// What the exported data holds, for the engine's dataset description.
#[derive(Debug, Clone, Copy)]
pub struct Data {
    pub has_eval: bool,
    /// Some record declares tools (a `tools` column exists).
    pub has_tools: bool,
}

/// Records written, and whether any carries tools.
struct Wrote {
    records: usize,
    tools: bool,
}

/// What an engine's writer produced.
pub struct Written {
    pub files: Vec<String>,
    pub launch: String,
}

/// The model as the engines take it: a hub repo id, or a folder's absolute
/// path. A GGUF base has no weights they read.
fn hf_model(name: &str) -> Result<String, String> {
    match hub::resolve_offline(name) {
        Some(ModelSource::Gguf(path)) => Err(format!(
            "{}: a GGUF base; Axolotl and LLaMA-Factory read Hugging Face folders: `tunebench merge` writes one (f32) to name in [model] instead",
            path.display()
        )),
        _ if Path::new(name).is_dir() => std::fs::canonicalize(name)
            .map(|p| p.display().to_string())
            .map_err(|e| format!("{name}: {e}")),
        _ => Ok(name.to_string()),
    }
}

/// The samples as OpenAI-style chat records (a multi-file answer as the
/// system prompt, request and JSON answer tunebench trains on).
fn write_chat_jsonl(
    path: &Path,
    samples: &[(usize, crate::data::Sample)],
    not_carried: &mut Vec<String>,
) -> Result<Wrote, String> {
    let mut text = String::new();
    let mut written = 0;
    let mut tools = false;
    for (index, sample) in samples {
        let (record, notes) = convert_sample(sample, Target::Chat);
        match record {
            Some(record) => {
                tools |= record.get("tools").is_some();
                text.push_str(&record.to_string());
                text.push('\n');
                written += 1;
            }
            None => not_carried.push(format!("record {}: {}", index + 1, notes.join("; "))),
        }
    }
    write_file(path, &text)?;
    Ok(Wrote {
        records: written,
        tools,
    })
}

/// The samples as Axolotl `input_output` records: the text tunebench
/// trains on, rendered by its chat template and cut where training starts
/// and stops, so Axolotl trains exactly tunebench's tokens. A record whose
/// pieces would tokenise differently on their own is said.
fn write_segments_jsonl(
    path: &Path,
    samples: &[(usize, crate::data::Sample)],
    tokenizer: &ChatTokenizer,
    train_on_inputs: bool,
    not_carried: &mut Vec<String>,
) -> Result<(), String> {
    let mut text = String::new();
    for (index, sample) in samples {
        let record = index + 1;
        let pieces = tokenizer
            .segments(sample, train_on_inputs)
            .map_err(|e| format!("record {record}: {e}"))?;
        let expected = tokenizer
            .encode(sample, train_on_inputs)
            .map_err(|e| format!("record {record}: {e}"))?;
        if tokenizer.segment_ids(&pieces).ok() != Some(expected.ids) {
            not_carried.push(format!(
                "record {record}: its pieces tokenise differently one by one than whole, so Axolotl's tokens for it differ slightly from tunebench's"
            ));
        }
        let segments: Vec<serde_json::Value> = pieces
            .iter()
            .map(|(text, trained)| json!({"label": trained, "text": text}))
            .collect();
        text.push_str(&json!({ "segments": segments }).to_string());
        text.push('\n');
    }
    write_file(path, &text)
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn readme(config: &TrainConfig, handoff: &Handoff, launch: &str, not_carried: &[String]) -> String {
    let mut text = format!(
        "# {} run exported by tunebench\n\nBase model: {}. Devices: {} GPU(s) on {} node(s).\n\n\
         Launch from this folder:\n\n```sh\n{launch}\n```\n\n\
         The data in `data/` is what tunebench trains on, rendered as tunebench renders it \
         (same system prompt, request layout and JSON answers), split as tunebench splits it \
         (seed {}).\n\n## Not carried over\n\n",
        match handoff.engine {
            Engine::LlamaFactory => "LLaMA-Factory",
            Engine::Axolotl => "Axolotl",
        },
        config.model.name,
        handoff.gpus,
        handoff.nodes,
        config.training.seed,
    );
    if not_carried.is_empty() {
        text.push_str("Everything in the tunebench config has its counterpart.\n");
    }
    for note in not_carried {
        text.push_str(&format!("- {note}\n"));
    }
    text
}

/// The DeepSpeed file an engine's config names when several devices train.
const ZERO3: &str = "ds_z3_config.json";

/// The engine's config, the ZeRO-3 file when several devices train, and
/// `launch.sh` (the command, run from the export's folder).
fn write_engine_files(
    handoff: &Handoff,
    engine: &str,
    config_name: &str,
    config: yaml::Yaml,
    launch: String,
) -> Result<Written, String> {
    let mut files = vec![config_name.to_string()];
    write_file(&handoff.out.join(config_name), &config.finish())?;
    if handoff.devices() > 1 {
        write_file(&handoff.out.join(ZERO3), &zero3())?;
        files.push(ZERO3.into());
    }
    let path = handoff.out.join("launch.sh");
    let script = format!(
        "#!/bin/sh\n# {engine} run exported by tunebench: run it from this folder.\nset -e\ncd \"$(dirname \"$0\")\"\n{launch}\n"
    );
    write_file(&path, &script)?;
    make_executable(&path);
    files.push("launch.sh".into());
    Ok(Written { files, launch })
}

/// DeepSpeed ZeRO-3 with every size left to the engine ("auto").
fn zero3() -> String {
    let config = json!({
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": true,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": {
            "stage": 3,
            "overlap_comm": true,
            "contiguous_gradients": true,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": true
        }
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mut permissions = meta.permissions();
        permissions.set_mode(0o755);
        let _ = std::fs::set_permissions(path, permissions);
    }
}
