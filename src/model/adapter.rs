//! LoRA adapters in PEFT's on-disk format, so PEFT, vLLM and llama.cpp's
//! converter load what tunebench writes, and tunebench loads what PEFT writes:
//! `adapter_model.safetensors` (`base_model.model.model.layers.{i}.self_attn.
//! q_proj.lora_A.weight`, ...) and `adapter_config.json`.

use super::decoder::Decoder;
use super::lora::{ALL_TARGETS, Linear, LoraPair, LoraSpec};
use super::st_write::{named, write_f32};
use crate::data::rng::SplitMix64;
use candle_core::{Device, Tensor};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> AdapterError {
    AdapterError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Attaches fresh adapters (A random, B zero) to the targets of `spec`.
pub fn attach_new(decoder: &mut Decoder, spec: &LoraSpec, seed: u64) -> candle_core::Result<()> {
    let device = decoder.device().clone();
    let mut rng = SplitMix64::new(seed);
    let mut result = Ok(());
    decoder.for_each_projection_mut(|module, kind, linear| {
        if result.is_ok() && spec.targets.iter().any(|t| t == kind) {
            let (n_in, n_out) = (linear.in_dim(), linear.out_dim());
            match LoraPair::init(n_in, n_out, spec, &mut rng, &device) {
                Ok(pair) => {
                    linear.lora = Some(LoraPair {
                        id: linear_id(&module),
                        ..pair
                    })
                }
                Err(e) => result = Err(e),
            }
        }
    });
    result
}

/// Fills every attached A and B with seeded values from N(0, std²), so the
/// adapter changes the model (a fresh one has B = 0). For tests and fixtures.
pub fn randomize(decoder: &mut Decoder, std: f64, seed: u64) -> candle_core::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let mut result = Ok(());
    decoder.for_each_projection_mut(|_, _, linear| {
        if let (Some(lora), true) = (&linear.lora, result.is_ok()) {
            result = [&lora.a, &lora.b].iter().try_for_each(|var| {
                let values = rng.normal_vec(var.elem_count(), std);
                var.set(&Tensor::from_vec(values, var.shape(), var.device())?)
            });
        }
    });
    result
}

/// Removes every adapter.
pub fn detach(decoder: &mut Decoder) {
    decoder.for_each_projection_mut(|_, _, linear| linear.lora = None);
}

/// Writes the attached adapters as a PEFT adapter directory.
pub fn save(
    decoder: &Decoder,
    spec: &LoraSpec,
    base_model: &str,
    dir: &Path,
) -> Result<(), AdapterError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    let mut tensors = Vec::new();
    for (path, _, linear) in decoder.projections() {
        if let Some(lora) = &linear.lora {
            let prefix = format!("base_model.model.{path}");
            tensors.push(named(
                format!("{prefix}.lora_A.weight"),
                lora.a.as_tensor(),
            )?);
            tensors.push(named(
                format!("{prefix}.lora_B.weight"),
                lora.b.as_tensor(),
            )?);
        }
    }
    let weights_path = dir.join("adapter_model.safetensors");
    write_f32(&weights_path, &tensors).map_err(|e| file_error(&weights_path, e))?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": spec.r,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": spec.targets,
        "bias": "none",
        "use_rslora": spec.use_rslora,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "revision": null,
    });
    let config_path = dir.join("adapter_config.json");
    let text = serde_json::to_string_pretty(&config).map_err(|e| file_error(&config_path, e))?;
    crate::data::store::atomic_write(&config_path, |w| w.write_all(text.as_bytes()))
        .map_err(|e| file_error(&config_path, e))
}

/// Reads `adapter_config.json` into a spec.
pub fn read_spec(dir: &Path) -> Result<LoraSpec, AdapterError> {
    let path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
    let c: Value = serde_json::from_str(&text).map_err(|e| file_error(&path, e))?;
    let peft_type = c.get("peft_type").and_then(Value::as_str).unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(file_error(
            &path,
            format!("peft_type {peft_type} is not supported; only LORA adapters load"),
        ));
    }
    if c.get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
        return Err(file_error(
            &path,
            "fan_in_fan_out adapters (GPT-2 style Conv1D) do not apply to Llama-family models",
        ));
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if c.get(key)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(file_error(
                &path,
                format!("`{key}` (per-module ranks) is not supported"),
            ));
        }
    }
    if c.get("use_dora").and_then(Value::as_bool) == Some(true) {
        return Err(file_error(&path, "DoRA adapters are not supported"));
    }
    let r = c
        .get("r")
        .and_then(Value::as_u64)
        .ok_or_else(|| file_error(&path, "`r` is missing"))? as usize;
    let targets: Vec<String> = match c.get("target_modules") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Ok(LoraSpec {
        r,
        alpha: c.get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0),
        dropout: c.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        targets,
        use_rslora: c
            .get("use_rslora")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Loads a PEFT adapter directory onto `decoder`, replacing any adapter.
pub fn load(decoder: &mut Decoder, dir: &Path) -> Result<LoraSpec, AdapterError> {
    let spec = read_spec(dir)?;
    check_targets(&spec.targets, &dir.join("adapter_config.json"))?;
    let path = dir.join("adapter_model.safetensors");
    let tensors = if path.exists() {
        candle_core::safetensors::load(&path, &Device::Cpu)?
    } else {
        return Err(file_error(
            dir,
            "no adapter_model.safetensors (adapter_model.bin is not read; re-save it with safe_serialization=True)",
        ));
    };
    if let Some((name, bad)) = tensors
        .iter()
        .find_map(|(name, t)| non_finite(t).transpose().map(|bad| (name, bad)))
    {
        let (count, total) = bad?;
        return Err(file_error(
            &path,
            format!(
                "`{name}` holds {count} NaN or infinite value(s) of {total}; the adapter is broken \
                 (a diverged run?) and would make the model produce nothing"
            ),
        ));
    }
    // PEFT files may carry the adapter name (".default") in tensor names.
    let mut by_name: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| (name.replace(".default.weight", ".weight"), t))
        .collect();
    let device = decoder.device().clone();
    detach(decoder);
    let mut loaded = 0;
    let mut result = Ok(());
    decoder.for_each_projection_mut(|module, kind, linear| {
        if result.is_ok() {
            result = attach_loaded(&mut by_name, &module, kind, linear, &spec, &device, &path)
                .map(|attached| loaded += usize::from(attached));
        }
    });
    result?;
    if let Some(extra) = by_name.keys().min() {
        return Err(file_error(
            &path,
            format!(
                "unexpected tensor `{extra}`: only LoRA on the attention and MLP projections is supported"
            ),
        ));
    }
    if loaded == 0 {
        return Err(file_error(&path, "no LoRA weights for this model's layers"));
    }
    Ok(spec)
}

/// Moves the pair for `module` out of `by_name` onto `linear`; false if the
/// adapter does not touch this module.
fn attach_loaded(
    by_name: &mut HashMap<String, Tensor>,
    module: &str,
    kind: &str,
    linear: &mut Linear,
    spec: &LoraSpec,
    device: &Device,
    path: &Path,
) -> Result<bool, AdapterError> {
    let prefix = format!("base_model.model.{module}");
    let a = by_name.remove(&format!("{prefix}.lora_A.weight"));
    let b = by_name.remove(&format!("{prefix}.lora_B.weight"));
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (None, None) => return Ok(false),
        _ => {
            return Err(file_error(
                path,
                format!("{module}: lora_A and lora_B must both be present"),
            ));
        }
    };
    let (ar, a_in) = a.dims2()?;
    let (b_out, br) = b.dims2()?;
    if ar != spec.r {
        return Err(file_error(
            path,
            format!(
                "{prefix}.lora_A.weight has rank {ar}, but adapter_config.json says r {}",
                spec.r
            ),
        ));
    }
    if targets_cover(&spec.targets, kind) == Some(false) {
        return Err(file_error(
            path,
            format!(
                "the file adapts {module}, but adapter_config.json's target_modules {:?} do not name {kind}",
                spec.targets
            ),
        ));
    }
    if a_in != linear.in_dim() || b_out != linear.out_dim() || ar != br {
        return Err(file_error(
            path,
            format!(
                "{module} ({kind}): adapter shapes A {:?} B {:?} do not fit a [{}, {}] layer; was it trained on another base model?",
                a.dims(),
                b.dims(),
                linear.out_dim(),
                linear.in_dim()
            ),
        ));
    }
    let pair = LoraPair::from_tensors(&a.to_device(device)?, &b.to_device(device)?, spec)?;
    linear.lora = Some(LoraPair {
        id: linear_id(module),
        ..pair
    });
    Ok(true)
}

/// Refuses a target module this model does not have. A target that is a
/// regular expression (PEFT allows one) is left to the tensors to settle.
fn check_targets(targets: &[String], config_path: &Path) -> Result<(), AdapterError> {
    let unknown = targets
        .iter()
        .find(|t| !is_pattern(t) && !is_all_linear(t) && !ALL_TARGETS.contains(&t.as_str()));
    match unknown {
        Some(name) => Err(file_error(
            config_path,
            format!(
                "target_modules names `{name}`, which this model does not have; its projections are {}",
                ALL_TARGETS.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Whether `targets` cover projections named `kind`; `None` when a pattern
/// among them makes that unknowable here.
fn targets_cover(targets: &[String], kind: &str) -> Option<bool> {
    if targets.iter().any(|t| is_pattern(t)) {
        return None;
    }
    Some(targets.iter().any(|t| t == kind || is_all_linear(t)))
}

fn is_all_linear(target: &str) -> bool {
    matches!(target, "all-linear" | "all_linear")
}

fn is_pattern(target: &str) -> bool {
    target.contains(|c| "\\.*+?[](){}|^$".contains(c))
}

/// (non-finite values, all values) of a tensor that has any non-finite one.
fn non_finite(t: &Tensor) -> candle_core::Result<Option<(usize, usize)>> {
    let values = t
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    Ok((bad > 0).then_some((bad, values.len())))
}

/// A stable id for a module path (`model.layers.3.mlp.up_proj`).
fn linear_id(module: &str) -> u64 {
    crate::data::rng::stable_hash(module)
}
