//! The Train form's estimate: reads the model's shape (config.json or GGUF
//! metadata) and tokenises the data on a worker; the figures themselves come from
//! `train::estimate` (time from the last run's throughput on this model,
//! else a FLOP guess). Both are estimates and are shown as such.

use crate::data::store::Store;
use crate::model::config::ModelConfig;
use crate::train::batches::prepare;
use crate::train::config::{DataSection, TrainConfig};

use crate::model::hub::resolve_offline;
use crate::model::loaded::shape_and_tokenizer;
pub use crate::train::estimate::{DataSize, Memory, Speed, Time, memory, time};

/// Records longer than this are not tokenised for an estimate: the
/// tokenizer takes about 250 bytes of memory per byte of text, so one huge
/// record would take GBs.
const MEASURE_RECORD_BYTES: usize = 1_000_000;

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

/// Reads the model's shape and tokenizer (config.json, or a GGUF file's
/// metadata) and tokenises the data (a worker's job).
pub fn measure(job: &MeasureJob) -> Measured {
    let parts = resolve_offline(&job.model)
        .ok_or_else(|| {
            format!(
                "{}: not a local directory, GGUF file, Ollama model or cached model \
                 (estimates need its shape)",
                job.model
            )
        })
        .and_then(|source| shape_and_tokenizer(&source).map_err(|e| e.to_string()));
    let (model, tokenizer) = match parts {
        Ok((shape, tokenizer)) => (Ok(shape), Ok(tokenizer)),
        Err(e) => (Err(e.clone()), Err(e)),
    };
    let data = tokenizer.and_then(|mut tokenizer| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::estimate::tests::config;
    use std::path::Path;

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
