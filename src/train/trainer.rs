//! The training loop: micro-batches, gradient accumulation, clipping, AdamW
//! and the schedule; evaluation, early stopping, checkpoints and resume.

use super::batches::{Batch, Example, Prepared, epoch_order, make_batch, prepare};
use super::config::TrainConfig;
use super::optim::{AdamW, AdamWParams, Param, accumulate, clip_global_norm, collect};
use super::run_dir::{RunLog, checkpoints, publish_adapter, rotate, write_checkpoint};
use super::schedule::Schedule;
use crate::model::checkpoint::RecomputedGrads;
use crate::model::decoder::Mode;
use crate::model::lora::LoraSpec;
use crate::model::loss::{sample_loss, summed_nll};
use crate::model::st_write::{named, write_f32};
use crate::model::{LoadOptions, Model, adapter};
use crate::profile::{self, Label};
use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Stopped,
    Failed(String),
}

/// Trainer state saved with every checkpoint.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: usize,
    pub best_eval_loss: Option<f64>,
    pub best_step: Option<usize>,
    pub evals_without_improvement: usize,
}

pub struct Trainer {
    pub config: TrainConfig,
    pub model: Model,
    pub data: Prepared,
    pub spec: LoraSpec,
    optimizer: AdamW,
    schedule: Schedule,
    pub state: TrainerState,
    steps_per_epoch: usize,
    pub total_steps: usize,
    pad_id: u32,
    /// Damaged checkpoints a resume passed over, each with the reason.
    pub skipped_checkpoints: Vec<String>,
    /// Layers recomputed in backward (the config's choice, or the estimate's).
    pub checkpointing: bool,
}

fn load_options(config: &TrainConfig) -> Result<LoadOptions, String> {
    let dtype = if config.model.dtype == "bf16" {
        DType::BF16
    } else {
        DType::F32
    };
    let device = crate::model::device::parse(&config.model.device)
        .map_err(|e| format!("model.device {e}"))?;
    let template = config
        .model
        .template
        .as_deref()
        .map(str::parse)
        .transpose()?;
    let quantize = config
        .model
        .quantize
        .as_deref()
        .map(str::parse)
        .transpose()?;
    Ok(LoadOptions {
        dtype,
        device,
        template,
        quantize,
    })
}

/// The adapter's tensors as optimizer parameters, named as in the adapter file.
pub fn lora_params(decoder: &crate::model::decoder::Decoder) -> Vec<Param> {
    let mut params = Vec::new();
    for (path, _, linear) in decoder.projections() {
        if let Some(lora) = &linear.lora {
            let prefix = format!("base_model.model.{path}");
            params.push(Param {
                name: format!("{prefix}.lora_A.weight"),
                var: lora.a.clone(),
            });
            params.push(Param {
                name: format!("{prefix}.lora_B.weight"),
                var: lora.b.clone(),
            });
        }
    }
    params
}

impl Trainer {
    /// Loads the model and data and attaches the adapter: fresh, or from the
    /// last checkpoint in `resume_from`.
    pub fn new(config: TrainConfig, resume_from: Option<&Path>) -> Result<Trainer, String> {
        let mut model =
            Model::load(&config.model.name, &load_options(&config)?).map_err(|e| e.to_string())?;
        model
            .decoder
            .prepare_for_training()
            .map_err(|e| e.to_string())?;
        let positions = model.decoder.config.max_position_embeddings;
        if config.data.max_seq_len > positions {
            return Err(format!(
                "data.max_seq_len {} is more than the model's {positions} positions \
                 (max_position_embeddings); use at most {positions}",
                config.data.max_seq_len
            ));
        }
        let data = prepare(&model.tokenizer, &config.data, config.training.seed)?;
        let targets = LoraSpec::resolve_targets(&config.lora.targets)?;
        let mut spec = LoraSpec {
            r: config.lora.r,
            alpha: config.lora.alpha,
            dropout: config.lora.dropout,
            targets,
            use_rslora: config.lora.use_rslora,
        };
        let t = &config.training;
        let hyper = AdamWParams {
            beta1: t.adam_beta1,
            beta2: t.adam_beta2,
            eps: t.adam_eps,
            weight_decay: t.weight_decay,
        };
        let mut skipped_checkpoints = Vec::new();
        let resumed = match resume_from {
            Some(run) => resume(&mut model, run, hyper, &mut skipped_checkpoints)?,
            None => None,
        };
        let (state, optimizer) = match resumed {
            Some(resumed) => resumed,
            None => {
                if let Some(init) = &config.lora.init_from {
                    spec = adapter::load(&mut model.decoder, Path::new(init))
                        .map_err(|e| e.to_string())?;
                    spec.dropout = config.lora.dropout;
                    let dropout = spec.dropout as f32;
                    model.decoder.for_each_projection_mut(|_, _, linear| {
                        if let Some(lora) = &mut linear.lora {
                            lora.dropout = dropout;
                        }
                    });
                } else {
                    adapter::attach_new(&mut model.decoder, &spec, t.seed)
                        .map_err(|e| e.to_string())?;
                }
                let optimizer =
                    AdamW::new(lora_params(&model.decoder), hyper).map_err(|e| e.to_string())?;
                (TrainerState::default(), optimizer)
            }
        };
        let micro_per_epoch = data.train.len().div_ceil(t.batch_size);
        let steps_per_epoch = micro_per_epoch.div_ceil(t.grad_accum).max(1);
        let total_steps = if t.max_steps > 0 {
            t.max_steps
        } else {
            t.epochs * steps_per_epoch
        };
        let schedule = Schedule::new(
            t.lr,
            &t.schedule,
            t.warmup_steps,
            t.warmup_ratio,
            total_steps,
        );
        let tok = &model.tokenizer.tokenizer;
        let pad_id = ["<|endoftext|>", "<pad>", "<|finetune_right_pad_id|>"]
            .iter()
            .find_map(|t| tok.token_to_id(t))
            .or_else(|| model.stop_ids.first().copied())
            .unwrap_or(0);
        let checkpointing = super::estimate::checkpointing(&model.decoder.config, &config);
        Ok(Trainer {
            checkpointing,
            config,
            model,
            data,
            spec,
            optimizer,
            schedule,
            state,
            steps_per_epoch,
            total_steps,
            pad_id,
            skipped_checkpoints,
        })
    }

    /// The examples of optimizer step `step`, as micro-batches.
    fn micro_batches(&self, step: usize) -> Vec<Vec<&Example>> {
        let t = &self.config.training;
        let epoch = step / self.steps_per_epoch;
        let within = step % self.steps_per_epoch;
        let order = epoch_order(self.data.train.len(), t.seed, epoch);
        let per_step = t.batch_size * t.grad_accum;
        order[(within * per_step).min(order.len())..((within + 1) * per_step).min(order.len())]
            .chunks(t.batch_size)
            .map(|chunk| chunk.iter().map(|&i| &self.data.train[i]).collect())
            .collect()
    }

    /// One optimizer step; returns (loss, grad norm before clipping, tokens seen).
    fn step(&mut self, step: usize) -> candle_core::Result<(f64, f64, usize)> {
        let micro = self.micro_batches(step);
        let device = self.model.decoder.device().clone();
        let batches = micro
            .iter()
            .map(|examples| make_batch(examples, self.pad_id, &device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let tokens = micro.iter().flatten().map(|e| e.encoded.ids.len()).sum();
        let seed = self.config.training.seed ^ ((step as u64) << 20);
        let (loss, norm) = optimizer_step(
            &self.model.decoder,
            &mut self.optimizer,
            &batches,
            self.schedule.lr(step),
            self.config.training.max_grad_norm,
            seed,
            self.checkpointing,
        )?;
        Ok((loss, norm, tokens))
    }

    /// Token-weighted loss on the eval split.
    pub fn evaluate(&self) -> candle_core::Result<Option<f64>> {
        if self.data.eval.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut count) = (0.0, 0);
        for e in &self.data.eval {
            let (s, n) = sample_loss(&self.model.decoder, &e.encoded, Mode::ADAPTED)?;
            sum += s;
            count += n;
        }
        Ok(Some(sum / count.max(1) as f64))
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<PathBuf, String> {
        let step = self.state.step;
        write_checkpoint(dir, step, |temp| {
            adapter::save(
                &self.model.decoder,
                &self.spec,
                &self.config.model.name,
                temp,
            )
            .map_err(|e| e.to_string())?;
            let mut tensors = Vec::new();
            for p in &self.optimizer.params {
                let (m, v) = &self.optimizer.moments[&p.name];
                tensors.push(named(format!("{}.exp_avg", p.name), m).map_err(|e| e.to_string())?);
                tensors
                    .push(named(format!("{}.exp_avg_sq", p.name), v).map_err(|e| e.to_string())?);
            }
            write_f32(&temp.join("optimizer.safetensors"), &tensors)?;
            let state = serde_json::to_string_pretty(&self.state).map_err(|e| e.to_string())?;
            std::fs::write(temp.join("trainer_state.json"), state).map_err(|e| e.to_string())
        })
    }

    /// Runs to the end (or until `stop` is raised), logging to `log`.
    pub fn run(
        &mut self,
        log: &mut RunLog,
        stop: &AtomicBool,
        mut progress: impl FnMut(&Value) -> Option<String>,
    ) -> Result<Outcome, String> {
        let io = |e: std::io::Error| e.to_string();
        // What `progress` asks to keep goes to train.log too.
        let mut report = |log: &mut RunLog, event: &Value| match progress(event) {
            Some(line) => log.line(&line).map_err(io),
            None => Ok(()),
        };
        let started = Instant::now();
        let t = self.config.training.clone();
        if t.eval_at_start && self.state.step == 0 {
            self.evaluate_base(log, &mut report)?;
        }
        // Profiling: memory over the first step, time over the next
        // TIMED_STEPS (the first pays for warming up).
        let first_step = self.state.step;
        let mut reclaimer = crate::alloc::Reclaimer::default();
        while self.state.step < self.total_steps {
            let step = self.state.step;
            let step_started = Instant::now();
            let heap_at_start = profile::live();
            let k = step - first_step;
            if profile::enabled() && k <= 1 {
                profile::reset();
            }
            let (loss, norm, tokens) = self.step(step).map_err(|e| e.to_string())?;
            if profile::enabled() {
                let mut events = Vec::new();
                if k == 0 {
                    events.push(profile_event(step + 1, profile::report(heap_at_start)));
                }
                // Steps 2 to 1 + TIMED_STEPS, or as many as the run has.
                if k == TIMED_STEPS || (k < TIMED_STEPS && step + 1 == self.total_steps) {
                    events.push(time_profile_event(step + 1, k.max(1)));
                }
                for event in events {
                    log.event(&event).map_err(io)?;
                    report(log, &event)?;
                }
            }
            if let Some((held, left)) = reclaimer.after_step() {
                log.line(&format!(
                    "step {}: gave {:.0} MB of freed memory back ({:.0} MB kept)",
                    step + 1,
                    (held - left.min(held)) as f64 / 1e6,
                    left as f64 / 1e6
                ))
                .map_err(io)?;
            }
            if !loss.is_finite() {
                let last = checkpoints(&log.dir)
                    .pop()
                    .map_or("none".into(), |(s, _)| format!("step-{s}"));
                let message = format!(
                    "loss became {loss} at step {}; stopping. The last good checkpoint is {last}",
                    step + 1
                );
                log.line(&message).map_err(io)?;
                return Ok(Outcome::Failed(message));
            }
            self.state.step += 1;
            let elapsed = step_started.elapsed().as_secs_f64();
            let event = json!({
                "event": "step",
                "step": self.state.step,
                "epoch": self.state.step as f64 / self.steps_per_epoch as f64,
                "loss": loss,
                "lr": self.schedule.lr(step),
                "grad_norm": norm,
                "tokens": tokens,
                "tokens_per_s": tokens as f64 / elapsed.max(1e-9),
                "elapsed_s": started.elapsed().as_secs_f64(),
                "total_steps": self.total_steps,
                "peak_rss": crate::alloc::rss().map(|r| r.peak),
            });
            log.event(&event).map_err(io)?;
            report(log, &event)?;
            let last = self.state.step == self.total_steps;
            let mut early_stop = false;
            if (self.state.step.is_multiple_of(t.eval_every) || last)
                && let Some(eval_loss) = self.evaluate().map_err(|e| e.to_string())?
            {
                let improved = self.state.best_eval_loss.is_none_or(|b| eval_loss < b);
                if improved {
                    self.state.best_eval_loss = Some(eval_loss);
                    self.state.best_step = Some(self.state.step);
                    self.state.evals_without_improvement = 0;
                } else {
                    self.state.evals_without_improvement += 1;
                }
                let event = json!({"event": "eval", "step": self.state.step, "eval_loss": eval_loss, "best": improved});
                log.event(&event).map_err(io)?;
                log.line(&format!(
                    "step {}: eval loss {eval_loss:.4}{}",
                    self.state.step,
                    if improved { " (best)" } else { "" }
                ))
                .map_err(io)?;
                report(log, &event)?;
                // The best model must be on disk to be kept.
                if improved && !self.state.step.is_multiple_of(t.checkpoint_every) && !last {
                    self.checkpoint(log)?;
                }
                early_stop = t.early_stopping_patience > 0
                    && self.state.evals_without_improvement >= t.early_stopping_patience;
            }
            let stopping = stop.load(Ordering::Relaxed);
            if self.state.step.is_multiple_of(t.checkpoint_every) || last || early_stop || stopping
            {
                self.checkpoint(log)?;
            }
            if early_stop {
                log.line(&format!(
                    "early stopping: no eval improvement in {} evaluations",
                    t.early_stopping_patience
                ))
                .map_err(io)?;
                break;
            }
            if stopping {
                return Ok(Outcome::Stopped);
            }
        }
        Ok(Outcome::Completed)
    }

    /// The eval loss before any step (the adapter's B is zero, so this is
    /// the base model): step 0 of the eval curve. It is not a candidate for
    /// the best checkpoint, which must be a trained adapter.
    fn evaluate_base(
        &self,
        log: &mut RunLog,
        report: &mut impl FnMut(&mut RunLog, &Value) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(eval_loss) = self.evaluate().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let event = json!({"event": "eval", "step": 0, "eval_loss": eval_loss, "base": true});
        log.event(&event).map_err(|e| e.to_string())?;
        log.line(&format!(
            "step 0: eval loss {eval_loss:.4} (the base model)"
        ))
        .map_err(|e| e.to_string())?;
        report(log, &event)
    }

    fn checkpoint(&self, log: &mut RunLog) -> Result<(), String> {
        let path = self.save_checkpoint(&log.dir)?;
        rotate(
            &log.dir,
            self.config.training.keep_checkpoints,
            self.state.best_step,
        )?;
        log.event(&json!({"event": "checkpoint", "step": self.state.step, "path": path.display().to_string()})).map_err(|e| e.to_string())?;
        log.line(&format!("checkpoint {}", path.display()))
            .map_err(|e| e.to_string())
    }

    /// Publishes the best checkpoint's adapter (else the last) to `adapter/`.
    pub fn finish(&self, dir: &Path) -> Result<PathBuf, String> {
        let all = checkpoints(dir);
        let chosen = self
            .state
            .best_step
            .and_then(|b| all.iter().find(|(s, _)| *s == b))
            .or(all.last())
            .ok_or("no checkpoint to publish")?;
        publish_adapter(dir, &chosen.1).map_err(|e| e.to_string())?;
        if let Some(best) = self.state.best_step {
            let record = json!({"step": best, "eval_loss": self.state.best_eval_loss, "checkpoint": format!("checkpoints/step-{best}")});
            std::fs::write(dir.join("best.json"), record.to_string()).map_err(|e| e.to_string())?;
        }
        Ok(chosen.1.clone())
    }
}

/// Steps whose time `--profile` reports, after the first.
const TIMED_STEPS: usize = 3;

/// The `profile` event of the time per label over the last `steps` steps.
fn time_profile_event(step: usize, steps: usize) -> Value {
    let report = profile::report(0);
    let table = format!(
        "over steps {}-{step}: {}",
        step + 1 - steps,
        report.time_table()
    );
    json!({"event": "profile", "kind": "time", "step": step, "steps": steps, "report": report, "table": table})
}

/// The `profile` event: the step's per-label heap profile, the resident
/// memory and the allocator's own figures, and the table of them all.
fn profile_event(step: usize, report: profile::Report) -> Value {
    let rss = crate::alloc::rss();
    let heap = crate::alloc::heap_stats();
    let mut table = report.table();
    if let Some(rss) = rss {
        table.push_str(&format!(
            "\nresident: peak {:.1} MB (VmHWM), now {:.1} MB (VmRSS), heap part {:.1} MB (RssAnon)",
            rss.peak as f64 / 1e6,
            rss.now as f64 / 1e6,
            rss.anon as f64 / 1e6
        ));
    }
    if let Some(h) = heap {
        table.push_str(&format!(
            "\nallocator (mallinfo2): arena {:.1} MB, in use {:.1} MB, free held {:.1} MB",
            h.arena as f64 / 1e6,
            h.in_use as f64 / 1e6,
            h.free_held as f64 / 1e6
        ));
    }
    json!({"event": "profile", "step": step, "report": report, "rss": rss, "heap": heap, "table": table})
}

/// Forward and backward over the micro-batches of one optimizer step
/// (accumulating gradients of the token-weighted mean loss), clipping, and
/// the AdamW update at `lr`. Returns (loss, gradient norm before clipping);
/// a non-finite loss skips the update. `checkpointing` recomputes each
/// layer in backward instead of keeping its activations.
pub fn optimizer_step(
    decoder: &crate::model::decoder::Decoder,
    optimizer: &mut AdamW,
    batches: &[Batch],
    lr: f64,
    max_grad_norm: f64,
    dropout_seed: u64,
    checkpointing: bool,
) -> candle_core::Result<(f64, f64)> {
    // The whole step on a pool thread: each of its parallel sections (a
    // few thousand a step) is then shared with the other pool threads
    // instead of handed over while the caller sleeps (`crate::pool`).
    // SmolLM2 bf16 at 1,024 tokens on 2 cores: 1.03-1.18x over 5
    // alternating pairs; allocating on a pool thread costs no RSS with one
    // allocator arena (`alloc::keep_freed_memory`).
    crate::pool::on_pool(|| {
        let (loss, mut grads) = summed_gradients(
            decoder,
            &optimizer.params,
            batches,
            dropout_seed,
            checkpointing,
        )?;
        if !loss.is_finite() {
            return Ok((loss, f64::NAN));
        }
        let _label = profile::scope(Label::Optimizer);
        let norm = clip_global_norm(&mut grads, max_grad_norm)?;
        optimizer.step(&grads, lr)?;
        Ok((loss, norm))
    })
}

/// The token-weighted mean loss over `batches` and its gradients for
/// `params`, summed over the micro-batches.
fn summed_gradients(
    decoder: &crate::model::decoder::Decoder,
    params: &[Param],
    batches: &[Batch],
    dropout_seed: u64,
    checkpointing: bool,
) -> candle_core::Result<(f64, HashMap<String, Tensor>)> {
    let window: usize = batches.iter().map(|b| b.targets.len()).sum();
    let mut grads = HashMap::new();
    let mut loss_sum = 0.0;
    for (k, batch) in batches.iter().enumerate() {
        let mode = Mode::training(dropout_seed ^ k as u64);
        let segments = batch.segments.as_deref();
        let recomputed = checkpointing.then(RecomputedGrads::default);
        let hidden = match &recomputed {
            Some(side) => decoder.hidden_checkpointed(&batch.ids, segments, mode, side)?,
            None => decoder.hidden(&batch.ids, None, segments, mode)?,
        };
        let (b, t, h) = hidden.dims3()?;
        let rows = hidden.reshape((b * t, h))?;
        let sum = summed_nll(decoder, &rows, &batch.positions, &batch.targets, true)?;
        loss_sum += sum.to_scalar::<f32>()? as f64;
        let backward = profile::scope(Label::Backward);
        let mut store = (sum / window.max(1) as f64)?.backward()?;
        drop(backward);
        if let Some(side) = &recomputed {
            side.drain_into(&mut store)?;
        }
        let _label = profile::scope(Label::Optimizer);
        accumulate(&mut grads, collect(params, &store)?)?;
    }
    Ok((loss_sum / window.max(1) as f64, grads))
}

/// Loads the newest checkpoint of `run` that reads whole (its adapter onto
/// the model, the trainer state, the optimizer moments), passing over damaged
/// ones with the reason in `skipped`. None when the run has no checkpoint.
fn resume(
    model: &mut Model,
    run: &Path,
    hyper: AdamWParams,
    skipped: &mut Vec<String>,
) -> Result<Option<(TrainerState, AdamW)>, String> {
    let all = checkpoints(run);
    if all.is_empty() {
        return Ok(None);
    }
    for (_, path) in all.iter().rev() {
        match load_checkpoint(model, path, hyper) {
            Ok(loaded) => return Ok(Some(loaded)),
            Err(why) => {
                let name = path.strip_prefix(run).unwrap_or(path);
                skipped.push(format!("skipped {}: {why}", name.display()));
            }
        }
    }
    Err(format!(
        "{}: no intact checkpoint to resume from ({})",
        run.display(),
        skipped.join("; ")
    ))
}

fn load_checkpoint(
    model: &mut Model,
    path: &Path,
    hyper: AdamWParams,
) -> Result<(TrainerState, AdamW), String> {
    adapter::load(&mut model.decoder, path).map_err(|e| match e {
        adapter::AdapterError::File { .. } => e.to_string(),
        // Errors from reading the tensors do not say which file they read.
        _ => format!("{}: {e}", path.join("adapter_model.safetensors").display()),
    })?;
    let state_file = path.join("trainer_state.json");
    let state: TrainerState = std::fs::read_to_string(&state_file)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", state_file.display()))?;
    let mut optimizer =
        AdamW::new(lora_params(&model.decoder), hyper).map_err(|e| e.to_string())?;
    restore_moments(&mut optimizer, path, state.step)?;
    Ok((state, optimizer))
}

fn restore_moments(optimizer: &mut AdamW, checkpoint: &Path, steps: usize) -> Result<(), String> {
    let path = checkpoint.join("optimizer.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for p in &optimizer.params {
        let get = |suffix: &str| -> Result<Tensor, String> {
            tensors
                .get(&format!("{}.{suffix}", p.name))
                .ok_or_else(|| format!("{}: no {suffix} for {}", path.display(), p.name))?
                .to_device(p.var.device())
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        let moments = (get("exp_avg")?, get("exp_avg_sq")?);
        optimizer.moments.insert(p.name.clone(), moments);
    }
    optimizer.steps = steps as u64;
    Ok(())
}

/// A handler that raises the returned flag on SIGINT or SIGTERM.
pub fn stop_signal() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let raised = flag.clone();
    // A second handler cannot be installed; training runs once per process.
    let _ = ctrlc::set_handler(move || raised.store(true, Ordering::Relaxed));
    flag
}
