//! Runs trained elsewhere: an HF Trainer output folder (Axolotl, LLaMA-Factory,
//! TRL and plain `transformers` all write one) read as the events of a
//! tunebench metrics.jsonl, so the Train tab and `tunebench runs` show it
//! beside native runs.
//!
//! What such a folder holds: `trainer_state.json` (at the root when training
//! ended, and in each `checkpoint-N/` as of that save) whose `log_history`
//! lists training logs (`loss`, `learning_rate`, `grad_norm`, `epoch`,
//! `step`), evaluations (`eval_loss`) and a final summary (`train_runtime`);
//! LLaMA-Factory also appends `trainer_log.jsonl` at every log (`current_steps`,
//! `total_steps`, `loss`, `eval_loss`, `lr`, `epoch`, `elapsed_time` and
//! `remaining_time` as `H:MM:SS`, `throughput` in tokens/s). A folder is
//! only as live as those files: a mirror that copies them every few seconds
//! makes the charts follow.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const STATE: &str = "trainer_state.json";
pub const LOG: &str = "trainer_log.jsonl";
const CHECKPOINT_PREFIX: &str = "checkpoint-";

/// Whether `dir` is an HF Trainer output folder.
pub fn is_trainer_folder(dir: &Path) -> bool {
    dir.join(STATE).is_file() || dir.join(LOG).is_file() || !checkpoints(dir).is_empty()
}

/// `checkpoint-N/` folders with a trainer state, by step.
pub fn checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()?;
            let path = e.path();
            path.join(STATE).is_file().then_some((step, path))
        })
        .collect();
    found.sort();
    found
}

/// The files whose change means new data: the run is re-read when one of
/// them changes size or time.
pub fn watched_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![dir.join(STATE), dir.join(LOG)];
    files.extend(checkpoints(dir).into_iter().map(|(_, p)| p.join(STATE)));
    files
}

/// The folder as tunebench events: a start, steps, evals, checkpoints and,
/// once the final summary is there, an end.
pub fn events(dir: &Path) -> Vec<Value> {
    let state = latest_state(dir);
    let history: Vec<Value> = state
        .as_ref()
        .and_then(|s| s.get("log_history"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let log = read_log(dir);
    let total_steps = state
        .as_ref()
        .and_then(|s| s.get("max_steps"))
        .and_then(Value::as_u64)
        .or_else(|| {
            log.iter()
                .rev()
                .find_map(|l| l.get("total_steps")?.as_u64())
        })
        .unwrap_or(0);

    let mut steps: BTreeMap<u64, Map<String, Value>> = BTreeMap::new();
    let mut evals: BTreeMap<u64, f64> = BTreeMap::new();
    let mut summary = None;
    for entry in &history {
        let Some(step) = entry.get("step").and_then(Value::as_u64) else {
            continue;
        };
        if let Some(eval) = entry.get("eval_loss").and_then(Value::as_f64) {
            evals.insert(step, eval);
        } else if entry.get("train_runtime").is_some() {
            summary = Some(entry.clone());
        } else if let Some(loss) = entry.get("loss").and_then(Value::as_f64) {
            let record = steps.entry(step).or_default();
            record.insert("loss".into(), loss.into());
            copy(entry, "learning_rate", record, "lr");
            copy(entry, "grad_norm", record, "grad_norm");
            copy(entry, "epoch", record, "epoch");
        }
    }
    for line in &log {
        let Some(step) = line.get("current_steps").and_then(Value::as_u64) else {
            continue;
        };
        if let Some(eval) = line.get("eval_loss").and_then(Value::as_f64) {
            evals.insert(step, eval);
        }
        let Some(loss) = line.get("loss").and_then(Value::as_f64) else {
            continue;
        };
        let record = steps.entry(step).or_default();
        record.entry("loss").or_insert(loss.into());
        if !record.contains_key("lr") {
            copy(line, "lr", record, "lr");
        }
        if !record.contains_key("epoch") {
            copy(line, "epoch", record, "epoch");
        }
        copy(line, "throughput", record, "tokens_per_s");
        if let Some(elapsed) = line
            .get("elapsed_time")
            .and_then(Value::as_str)
            .and_then(seconds)
        {
            record.insert("elapsed_s".into(), elapsed.into());
        }
    }

    let mut events = vec![json!({
        "event": "start",
        "run": dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "model": base_model(dir).unwrap_or_default(),
        "dataset": "",
        "total_steps": total_steps,
        "engine": "hf-trainer",
    })];
    let mut timeline: Vec<(u64, u8, Value)> = Vec::new();
    for (step, mut record) in steps {
        record.insert("event".into(), "step".into());
        record.insert("step".into(), step.into());
        record.insert("total_steps".into(), total_steps.into());
        timeline.push((step, 0, Value::Object(record)));
    }
    for (step, loss) in evals {
        timeline.push((
            step,
            1,
            json!({"event": "eval", "step": step, "eval_loss": loss}),
        ));
    }
    for (step, _) in checkpoints(dir) {
        timeline.push((step as u64, 2, json!({"event": "checkpoint", "step": step})));
    }
    timeline.sort_by_key(|(step, order, _)| (*step, *order));
    events.extend(timeline.into_iter().map(|(_, _, event)| event));
    if let Some(summary) = summary {
        let mut end = json!({"event": "end", "status": "completed"});
        if let Some(runtime) = summary.get("train_runtime").and_then(Value::as_f64) {
            end["elapsed_s"] = runtime.into();
        }
        events.push(end);
    }
    events
}

fn copy(from: &Value, key: &str, to: &mut Map<String, Value>, as_key: &str) {
    if let Some(value) = from.get(key).and_then(Value::as_f64) {
        to.insert(as_key.into(), value.into());
    }
}

/// The trainer state with the most steps: the root one (written when
/// training ends) or the latest checkpoint's.
fn latest_state(dir: &Path) -> Option<Value> {
    let mut candidates: Vec<PathBuf> = checkpoints(dir)
        .into_iter()
        .map(|(_, p)| p.join(STATE))
        .collect();
    candidates.push(dir.join(STATE));
    candidates
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            serde_json::from_str::<Value>(&text).ok()
        })
        .max_by_key(|state| {
            let step = state
                .get("global_step")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let entries = state
                .get("log_history")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            (step, entries)
        })
}

/// LLaMA-Factory's trainer_log.jsonl, skipping a half-written last line.
fn read_log(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join(LOG))
        .map(|text| {
            text.lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(Value::is_object)
                .collect()
        })
        .unwrap_or_default()
}

/// The base model the saved adapter names.
fn base_model(dir: &Path) -> Option<String> {
    let mut places = vec![dir.to_path_buf()];
    places.extend(checkpoints(dir).into_iter().rev().map(|(_, p)| p));
    places.iter().find_map(|place| {
        let text = std::fs::read_to_string(place.join("adapter_config.json")).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        value
            .get("base_model_name_or_path")?
            .as_str()
            .map(str::to_string)
    })
}

/// Python's `str(timedelta)`: `H:MM:SS`, or `N day(s), H:MM:SS`.
fn seconds(text: &str) -> Option<f64> {
    let (days, clock) = match text.split_once(", ") {
        Some((days, clock)) => (days.split_whitespace().next()?.parse::<f64>().ok()?, clock),
        None => (0.0, text),
    };
    let parts: Vec<f64> = clock
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    let [h, m, s] = parts.as_slice() else {
        return None;
    };
    Some(days * 86_400.0 + h * 3600.0 + m * 60.0 + s)
}

/// The adapters a Trainer folder holds: the final one at its root and each
/// checkpoint's, newest first, for the adapter pickers.
pub fn adapters(dir: &Path) -> Vec<PathBuf> {
    let is_adapter = |p: &Path| {
        p.join("adapter_config.json").is_file() && p.join("adapter_model.safetensors").is_file()
    };
    let mut found: Vec<PathBuf> = Vec::new();
    if is_adapter(dir) {
        found.push(dir.to_path_buf());
    }
    found.extend(
        checkpoints(dir)
            .into_iter()
            .rev()
            .map(|(_, p)| p)
            .filter(|p| is_adapter(p)),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedelta_text_becomes_seconds() {
        assert_eq!(seconds("0:01:05"), Some(65.0));
        assert_eq!(seconds("12:00:00"), Some(43_200.0));
        assert_eq!(seconds("1 day, 0:00:10"), Some(86_410.0));
        assert_eq!(seconds("2 days, 1:00:00"), Some(176_400.0));
        assert_eq!(seconds("soon"), None);
    }
}
