//! Reading another engine's LoRA config (`train --config X.yaml`): an
//! Axolotl or LLaMA-Factory YAML, or the flat `config.yml` of a plain PEFT
//! script, turned into a tunebench TOML config. Every key is mapped, known
//! to be the engine's bookkeeping (paths of its own, logging), or refused:
//! the refusal lists every key that cannot be honoured, so nothing is
//! silently dropped.

use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// Where a foreign key goes: `section.key` and how its value converts.
enum Map {
    To(&'static str, &'static str),
    /// An engine's own business (output folders, logging, caching).
    Ignore,
}

/// Keys of all three shapes, by engine name.
fn mapping(key: &str) -> Option<Map> {
    use Map::{Ignore, To};
    Some(match key {
        // Axolotl
        "base_model" | "model_name_or_path" | "model_name" | "model" => To("model", "name"),
        "lora_r" | "lora_rank" | "r" => To("lora", "r"),
        "lora_alpha" | "alpha" => To("lora", "alpha"),
        "lora_dropout" | "dropout" => To("lora", "dropout"),
        "lora_target_modules" | "lora_target" | "target_modules" => To("lora", "targets"),
        "lora_target_linear" => To("lora", "targets"),
        "peft_use_rslora" | "use_rslora" => To("lora", "use_rslora"),
        "lora_model_dir" | "adapter_name_or_path" => To("lora", "init_from"),
        "sequence_len" | "cutoff_len" | "max_length" | "max_seq_length" | "max_seq_len" => {
            To("data", "max_seq_len")
        }
        "sample_packing" | "packing" => To("data", "packing"),
        "train_on_inputs" | "train_on_prompt" => To("data", "train_on_inputs"),
        "micro_batch_size" | "per_device_train_batch_size" | "batch_size" => {
            To("training", "batch_size")
        }
        "gradient_accumulation_steps" => To("training", "grad_accum"),
        "num_epochs" | "num_train_epochs" | "epochs" => To("training", "epochs"),
        "max_steps" => To("training", "max_steps"),
        "learning_rate" | "lr" => To("training", "lr"),
        "lr_scheduler" | "lr_scheduler_type" => To("training", "schedule"),
        "warmup_ratio" => To("training", "warmup_ratio"),
        "warmup_steps" => To("training", "warmup_steps"),
        "weight_decay" => To("training", "weight_decay"),
        "max_grad_norm" => To("training", "max_grad_norm"),
        "adam_epsilon" => To("training", "adam_eps"),
        "seed" => To("training", "seed"),
        "eval_steps" => To("training", "eval_every"),
        "eval_on_start" => To("training", "eval_at_start"),
        "save_steps" => To("training", "checkpoint_every"),
        "save_total_limit" => To("training", "keep_checkpoints"),
        "early_stopping_patience" => To("training", "early_stopping_patience"),
        "gradient_checkpointing" => To("training", "gradient_checkpointing"),
        "disable_gradient_checkpointing" => To("training", "gradient_checkpointing"),
        "bf16" => To("model", "dtype"),
        "adapter"
        | "finetuning_type"
        | "stage"
        | "do_train"
        | "optimizer"
        | "optim"
        | "output_dir"
        | "logging_steps"
        | "dataset_prepared_path"
        | "val_set_size"
        | "overwrite_cache"
        | "overwrite_output_dir"
        | "preprocessing_num_workers"
        | "plot_loss"
        | "report_to"
        | "per_device_eval_batch_size"
        | "eval_strategy"
        | "data_seed"
        | "ddp_timeout"
        | "excess_length_strategy"
        | "neat_packing"
        | "dataset_dir"
        | "dataset"
        | "eval_dataset"
        | "datasets"
        | "test_datasets"
        | "chat_template"
        | "template"
        | "default_system"
        | "load_in_4bit"
        | "load_in_8bit"
        | "quantization_bit"
        | "deepspeed"
        | "train"
        | "eval" => Ignore,
        _ => return None,
    })
}

/// The YAML at `path` as a tunebench TOML config, with notes on what was
/// read loosely (a template name for the model's own template).
pub fn to_toml(path: &Path) -> Result<(String, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(Yaml::Hash(doc)) = docs.into_iter().next() else {
        return Err(format!("{}: not a YAML mapping", path.display()));
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut sections: [(&str, toml::Table); 4] = [
        ("model", toml::Table::new()),
        ("lora", toml::Table::new()),
        ("data", toml::Table::new()),
        ("training", toml::Table::new()),
    ];
    let mut refused = Vec::new();
    let mut notes = Vec::new();
    for (key, value) in &doc {
        let Some(key) = key.as_str() else { continue };
        if value.is_null() {
            continue;
        }
        let Some(read) = to_toml_value(value) else {
            refused.push(format!("{key} (a value tunebench cannot read)"));
            continue;
        };
        match mapping(key) {
            None => refused.push(key.to_string()),
            Some(Map::Ignore) => {}
            Some(Map::To(section, name)) => {
                let Some(converted) = convert(key, read) else {
                    refused.push(format!("{key} = {}", scalar_text(value)));
                    continue;
                };
                let table = &mut sections
                    .iter_mut()
                    .find(|(s, _)| *s == section)
                    .expect("section")
                    .1;
                table.insert(name.to_string(), converted);
            }
        }
    }
    let quantize = quantize_of(&doc);
    if let Some(kind) = quantize {
        sections[0]
            .1
            .insert("quantize".into(), toml::Value::String(kind.into()));
        notes.push(format!(
            "the base is kept at {kind} (GGUF blocks), where the engine would use bitsandbytes"
        ));
    }
    let (train, eval) = data_files(&doc, folder)?;
    if let Some(train) = train {
        sections[2]
            .1
            .insert("train".into(), toml::Value::String(train));
    }
    if let Some(eval) = eval {
        sections[2]
            .1
            .insert("eval".into(), toml::Value::String(eval));
    }
    // Axolotl's `chat_template: chatml` replaces the tokenizer's template, as
    // tunebench's built-in layout does; LLaMA-Factory names a template for
    // every model, so its `template` stands for the model's own.
    for key in ["template", "chat_template"] {
        if let Some(name) = doc.get(&Yaml::String(key.into())).and_then(Yaml::as_str) {
            match name {
                "chatml" | "alpaca" if key == "chat_template" => {
                    sections[0]
                        .1
                        .insert("template".into(), toml::Value::String(name.into()));
                }
                other => notes.push(format!(
                    "{key} = {other:?}: the model's own chat template is used"
                )),
            }
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "{}: tunebench cannot honour these keys, so it does not start: {}",
            path.display(),
            refused.join(", ")
        ));
    }
    let mut out = toml::Table::new();
    for (name, table) in sections {
        if !table.is_empty() {
            out.insert(name.to_string(), toml::Value::Table(table));
        }
    }
    Ok((toml::to_string(&out).map_err(|e| e.to_string())?, notes))
}

/// The value in tunebench's terms for keys whose meaning differs.
fn convert(key: &str, value: toml::Value) -> Option<toml::Value> {
    use toml::Value::{Boolean, Float, Integer, String as Str};
    Some(match (key, value) {
        ("lora_target_linear", Boolean(true)) => toml::Value::Array(vec![Str("all-linear".into())]),
        ("lora_target_linear", _) => return None,
        ("lora_target", Str(list)) if list == "all" => {
            toml::Value::Array(vec![Str("all-linear".into())])
        }
        ("lora_target" | "lora_target_modules" | "target_modules", Str(list)) => {
            toml::Value::Array(list.split(',').map(|t| Str(t.trim().to_string())).collect())
        }
        ("bf16", Boolean(on)) => Str(if on { "bf16" } else { "f32" }.into()),
        ("bf16", Str(auto)) if auto == "auto" => Str("bf16".into()),
        ("disable_gradient_checkpointing", Boolean(off)) => Boolean(!off),
        ("lr_scheduler" | "lr_scheduler_type", Str(name)) => Str(match name.as_str() {
            "cosine" => "cosine",
            "linear" => "linear",
            "constant" | "constant_with_warmup" => "constant",
            _ => return None,
        }
        .into()),
        (
            "lora_alpha" | "alpha" | "learning_rate" | "lr" | "lora_dropout" | "dropout"
            | "warmup_ratio" | "weight_decay" | "max_grad_norm" | "adam_epsilon",
            Integer(n),
        ) => Float(n as f64),
        ("num_epochs" | "num_train_epochs" | "epochs", Float(f)) if f.fract() == 0.0 => {
            Integer(f as i64)
        }
        ("num_epochs" | "num_train_epochs" | "epochs", Float(_)) => return None,
        (_, value) => value,
    })
}

/// QLoRA settings as a kept-quantized base.
fn quantize_of(doc: &yaml_rust2::yaml::Hash) -> Option<&'static str> {
    let get = |k: &str| doc.get(&Yaml::String(k.into()));
    if get("load_in_4bit").and_then(Yaml::as_bool) == Some(true)
        || get("quantization_bit").and_then(Yaml::as_i64) == Some(4)
    {
        return Some("q4_k");
    }
    if get("load_in_8bit").and_then(Yaml::as_bool) == Some(true)
        || get("quantization_bit").and_then(Yaml::as_i64) == Some(8)
    {
        return Some("q8_0");
    }
    None
}

/// The training and eval files: Axolotl's `datasets`/`test_datasets` local
/// paths, LLaMA-Factory's dataset names looked up in its dataset_info.json,
/// or a plain `train`/`eval` path.
fn data_files(
    doc: &yaml_rust2::yaml::Hash,
    folder: &Path,
) -> Result<(Option<String>, Option<String>), String> {
    let get = |k: &str| doc.get(&Yaml::String(k.into()));
    let local = |p: &str| folder.join(p).display().to_string();
    let first_path = |k: &str| -> Result<Option<String>, String> {
        let Some(list) = get(k) else { return Ok(None) };
        let items = list.as_vec().cloned().unwrap_or_default();
        if items.len() > 1 {
            return Err(format!(
                "{k}: tunebench trains on one file; merge the {} datasets first",
                items.len()
            ));
        }
        let Some(entry) = items.first() else {
            return Ok(None);
        };
        let path = entry["path"].as_str().map(local);
        if entry["type"].as_str() != Some("input_output") {
            return Ok(path);
        }
        // Pre-rendered text: tunebench reads the chat records it exported
        // beside the segments instead.
        let twin = path
            .as_deref()
            .and_then(|p| p.strip_suffix(".segments.jsonl"))
            .map(|p| format!("{p}.jsonl"))
            .filter(|p| Path::new(p).is_file());
        twin.map(Some).ok_or_else(|| {
            format!(
                "{k}: an `input_output` dataset is text already rendered with a template; tunebench trains on conversations (chat, ShareGPT, Alpaca records)"
            )
        })
    };
    if get("datasets").is_some() {
        return Ok((first_path("datasets")?, first_path("test_datasets")?));
    }
    if let Some(name) = get("dataset").and_then(Yaml::as_str) {
        let dir = folder.join(get("dataset_dir").and_then(Yaml::as_str).unwrap_or("data"));
        let info_path = dir.join("dataset_info.json");
        let info: serde_json::Value = std::fs::read_to_string(&info_path)
            .map_err(|e| format!("{}: {e}", info_path.display()))
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| format!("{}: {e}", info_path.display()))
            })?;
        let file = |name: &str| -> Result<String, String> {
            info[name]["file_name"]
                .as_str()
                .map(|f| dir.join(f).display().to_string())
                .ok_or_else(|| {
                    format!(
                        "{}: no dataset `{name}` with a file_name",
                        info_path.display()
                    )
                })
        };
        let eval = get("eval_dataset")
            .and_then(Yaml::as_str)
            .map(file)
            .transpose()?;
        return Ok((Some(file(name)?), eval));
    }
    Ok((
        get("train").and_then(Yaml::as_str).map(local),
        get("eval").and_then(Yaml::as_str).map(local),
    ))
}

fn to_toml_value(value: &Yaml) -> Option<toml::Value> {
    Some(match value {
        Yaml::String(s) => toml::Value::String(s.clone()),
        Yaml::Integer(i) => toml::Value::Integer(*i),
        Yaml::Real(r) => toml::Value::Float(r.parse().ok()?),
        Yaml::Boolean(b) => toml::Value::Boolean(*b),
        Yaml::Array(items) => toml::Value::Array(items.iter().filter_map(to_toml_value).collect()),
        Yaml::Hash(_) => toml::Value::String("(mapping)".into()),
        Yaml::Null => return None,
        _ => return None,
    })
}

fn scalar_text(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => format!("{s:?}"),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Boolean(b) => b.to_string(),
        _ => "(value)".into(),
    }
}
