//! `data split`: a deterministic train/eval split, stratified by
//! `context.domain`, that never puts copies of one record on both sides.

use super::parse;
use super::rng::{SplitMix64, stable_hash};
use super::store::{RecordWriter, Store, atomic_write};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalSize {
    Ratio(f64),
    Count(usize),
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    pub train_file: PathBuf,
    pub eval_file: PathBuf,
    pub train: usize,
    pub eval: usize,
    /// Per `context.domain` (empty name for records without one): (train, eval).
    pub strata: BTreeMap<String, (usize, usize)>,
    /// Records that are not valid JSON; they are split like the others.
    pub invalid_json: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Reading the input or writing an output failed; `path` says which.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Size(String),
}

/// Ties an I/O error to the file or folder it happened on.
fn at(path: &Path) -> impl FnOnce(io::Error) -> SplitError + '_ {
    move |source| SplitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Records that are exact copies of each other travel together.
struct Group {
    members: Vec<u32>,
}

/// Which records go to eval (`true` at index i), with counts per stratum.
pub struct Choice {
    pub eval: Vec<bool>,
    pub strata: BTreeMap<String, (usize, usize)>,
    pub invalid_json: usize,
}

/// Chooses which records go to eval.
pub fn choose_eval(store: &Store, size: EvalSize, seed: u64) -> Result<Choice, SplitError> {
    let file_format = parse::detect_file_format(store).map_err(at(store.path()))?;
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of: HashMap<u64, usize> = HashMap::new();
    let mut strata: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut invalid = 0;
    store
        .visit(|record| {
            let parsed = parse::parse_record(record.bytes, file_format, None);
            if parsed.syntax.is_some() {
                invalid += 1;
            }
            let key = match &parsed.sample {
                Some(sample) => sample.fingerprint(),
                None => stable_hash(&String::from_utf8_lossy(record.bytes)) ^ 0x5555,
            };
            let id = *group_of.entry(key).or_insert_with(|| {
                let domain = parsed
                    .value
                    .as_ref()
                    .and_then(|v| {
                        v.get("context")?
                            .get("domain")?
                            .as_str()
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                strata.entry(domain).or_default().push(groups.len());
                groups.push(Group {
                    members: Vec::new(),
                });
                groups.len() - 1
            });
            groups[id].members.push(record.index as u32);
            Ok(())
        })
        .map_err(at(store.path()))?;
    let n = store.len();
    let target = match size {
        EvalSize::Ratio(r) if (0.0..1.0).contains(&r) && r > 0.0 => (r * n as f64).round() as usize,
        EvalSize::Ratio(r) => {
            return Err(SplitError::Size(format!(
                "--eval-ratio {r} must be between 0 and 1 (exclusive)"
            )));
        }
        EvalSize::Count(c) if c < n => c,
        EvalSize::Count(c) => {
            return Err(SplitError::Size(format!(
                "--eval-count {c} leaves no training data: the file has {n} records"
            )));
        }
    };
    let sizes: Vec<usize> = strata
        .values()
        .map(|ids| ids.iter().map(|&g| groups[g].members.len()).sum())
        .collect();
    let quotas = apportion(target, &sizes);
    let mut eval = vec![false; n];
    let mut counts = BTreeMap::new();
    for (((name, ids), quota), size) in strata.iter().zip(quotas).zip(sizes) {
        let mut order = ids.clone();
        SplitMix64::new(seed ^ stable_hash(name)).shuffle(&mut order);
        let mut taken = 0;
        for g in order {
            let size = groups[g].members.len();
            if taken + size <= quota {
                taken += size;
                for &i in &groups[g].members {
                    eval[i as usize] = true;
                }
            }
            if taken == quota {
                break;
            }
        }
        counts.insert(name.clone(), (size - taken, taken));
    }
    Ok(Choice {
        eval,
        strata: counts,
        invalid_json: invalid,
    })
}

/// Splits `target` into parts proportional to `sizes` that add up exactly
/// (largest remainder).
fn apportion(target: usize, sizes: &[usize]) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    if total == 0 {
        return vec![0; sizes.len()];
    }
    let exact: Vec<f64> = sizes
        .iter()
        .map(|&s| target as f64 * s as f64 / total as f64)
        .collect();
    let mut parts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    by_remainder.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let missing = target - parts.iter().sum::<usize>();
    for &i in by_remainder.iter().take(missing) {
        parts[i] += 1;
    }
    parts
}

/// Splits `store` into `<stem>.train.<ext>` and `<stem>.eval.<ext>` in `out_dir`.
pub fn split(
    store: &Store,
    size: EvalSize,
    seed: u64,
    out_dir: &Path,
) -> Result<SplitReport, SplitError> {
    let Choice {
        eval,
        strata,
        invalid_json,
    } = choose_eval(store, size, seed)?;
    std::fs::create_dir_all(out_dir).map_err(at(out_dir))?;
    let (stem, ext) = stem_and_ext(store.path());
    let train_file = out_dir.join(format!("{stem}.train.{ext}"));
    let eval_file = out_dir.join(format!("{stem}.eval.{ext}"));
    store
        .refuse_as_output(&train_file)
        .map_err(at(&train_file))?;
    store.refuse_as_output(&eval_file).map_err(at(&eval_file))?;
    for (path, want_eval) in [(&train_file, false), (&eval_file, true)] {
        atomic_write(path, |out| {
            let mut writer = RecordWriter::like(out, store);
            store.visit(|r| match eval[r.index] == want_eval {
                true => writer.push(r.bytes),
                false => Ok(()),
            })?;
            writer.finish().map(|_| ())
        })
        .map_err(at(path))?;
    }
    let eval_count = eval.iter().filter(|&&e| e).count();
    Ok(SplitReport {
        train_file,
        eval_file,
        train: store.len() - eval_count,
        eval: eval_count,
        strata,
        invalid_json,
    })
}

fn stem_and_ext(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or("jsonl".into(), |s| s.to_string_lossy().into_owned());
    (stem, ext)
}

#[cfg(test)]
mod tests {
    use super::apportion;

    #[test]
    fn apportion_adds_up() {
        assert_eq!(apportion(3, &[10, 10, 10]), vec![1, 1, 1]);
        assert_eq!(apportion(4, &[10, 10, 10]), vec![2, 1, 1]);
        assert_eq!(apportion(5, &[1, 99]), vec![0, 5]);
        assert_eq!(apportion(0, &[]), Vec::<usize>::new());
    }
}
