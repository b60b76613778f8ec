//! Decode benchmark: greedy decoding on the Qwen2.5-0.5B shape with random
//! weights (24 layers, hidden 896, vocab 151,936, tied), 128-token prompt,
//! 64 new tokens, like shared/reference/hf_generate_bench.py. Each new
//! token is a `Decoder::step_rows` step, as `generate`, `eval --generate`
//! and the Chat tab take it (until 2026-12-07 the bench decoded through
//! the tensor form of `Decoder::hidden`, 3-6% slower on SmolLM2 bf16).
//!
//! It runs `TUNEBENCH_ROUNDS` rounds (default 3), each a fresh prompt and
//! 64 tokens between two memory-bandwidth probes, each followed by the
//! reference's run when `TUNEBENCH_REF_PYTHON` is set (transformers on the
//! same folder for `TUNEBENCH_MODEL`, `scripts/gpu/peft_bench.py decode`),
//! and reports per round and the medians: tokens/s, the share of the
//! bandwidth limit against the round's own probes (the weights and the
//! cached keys and values a step reads), the same share for the round's
//! median step (the speed between the host's pauses), the ratio to the
//! reference's round beside it.
//!
//!     cargo bench --bench decode                       # f32
//!     TUNEBENCH_DTYPE=bf16 cargo bench --bench decode
//!     TUNEBENCH_REF_PYTHON=~/.venvs/ref/bin/python cargo bench --bench decode   # also run the reference
//!     TUNEBENCH_PAIR=1 cargo bench --bench decode      # also base + adapter side by side
//!     TUNEBENCH_MODEL=/path/to/model cargo bench --bench decode   # a real model instead
//!     TUNEBENCH_PROMPT=4096 ...                       # decoding deep into a long answer
//!     TUNEBENCH_MODEL=M.gguf TUNEBENCH_QUANTIZE=keep cargo bench --bench decode   # on its blocks
//!
//! With `TUNEBENCH_PAIR`, a random rank-16 adapter on all seven projections
//! is attached and 64 tokens are decoded by the base alone, by the adapter
//! alone and by both as one batch of two rows (what the Chat tab and
//! `eval --generate` do), the three taking their steps in turn; it reports
//! both answers' tokens/s together against one after the other, and the
//! adapter's step time over the base's, from the median step of each.
//! With `TUNEBENCH_PROFILE=1` it prints the prefill's time under each
//! profile label (frozen, lora, attention, ...), and with `TUNEBENCH_PAIR`
//! each batch's mean time per step under each label.

mod common;
use candle_core::{DType, Device, Tensor};
use common::{count_from_env, peak_rss_mb};
use std::time::Instant;
use tunebench::model::adapter;
use tunebench::model::config::ModelConfig;
use tunebench::model::decoder::{Cache, Decoder, Mode};
use tunebench::model::lora::LoraSpec;
use tunebench::model::weights::RandomWeights;
use tunebench::model::{LoadOptions, Model};

/// Prompt tokens unless `TUNEBENCH_PROMPT` says otherwise.
const PROMPT: usize = 128;
const NEW: usize = 64;

/// The prompt's length: `TUNEBENCH_PROMPT` (a long answer's context, e.g.
/// 4096), else [`PROMPT`].
fn prompt_len() -> usize {
    count_from_env("TUNEBENCH_PROMPT", PROMPT)
}

fn main() -> anyhow::Result<()> {
    tunebench::pool::one_pool_owns_the_cores();
    tunebench::alloc::keep_freed_memory();
    let dtype_name = std::env::var("TUNEBENCH_DTYPE").unwrap_or_else(|_| "f32".into());
    let dtype = match dtype_name.as_str() {
        "bf16" => DType::BF16,
        _ => DType::F32,
    };
    let started = Instant::now();
    let (mut decoder, model_name) = match std::env::var("TUNEBENCH_MODEL") {
        Ok(name) => {
            // TUNEBENCH_QUANTIZE=keep decodes on a GGUF file's own blocks.
            let quantize = match std::env::var("TUNEBENCH_QUANTIZE") {
                Ok(q) => Some(q.parse().map_err(anyhow::Error::msg)?),
                Err(_) => None,
            };
            let options = LoadOptions {
                dtype,
                quantize,
                ..LoadOptions::default()
            };
            (Model::load(&name, &options)?.decoder, name)
        }
        Err(_) => (random_qwen(dtype)?, "Qwen2.5-0.5B shape".to_string()),
    };
    eprintln!(
        "{model_name}: weights ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let layers = decoder.layers.len();
    let vocab = decoder.vocab_size() as u32;

    let prompt: Vec<u32> = (0..prompt_len() as u32)
        .map(|i| (i * 7919) % vocab)
        .collect();
    let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    // Warm-up, as the reference does.
    decoder.hidden(&ids, Some(&mut Cache::new(layers)), None, Mode::BASE)?;

    // Rounds, each between two bandwidth probes and followed by the
    // reference's: on a shared host both the memory bandwidth and the
    // reference's speed drift by 10-15% within a minute, so each round is
    // held against what was measured beside it, and the median reported.
    let rounds = count_from_env("TUNEBENCH_ROUNDS", 3).max(1);
    let reference = reference_command(dtype);
    let bytes = weight_bytes_per_token(&decoder)? + cache_bytes_per_token(&decoder, dtype);
    let mut probes = vec![read_bandwidth()?];
    let (mut ours, mut of_limit, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut of_limit_by_step = Vec::new();
    for round in 1..=rounds {
        let (prefill_s, tokens_per_s, median_step_s) =
            decode_round(&decoder, &ids, layers, round == 1)?;
        probes.push(read_bandwidth()?);
        let bandwidth = (probes[round - 1] + probes[round]) / 2.0;
        let pct = 100.0 * tokens_per_s * bytes / bandwidth;
        let step_pct = 100.0 * bytes / median_step_s / bandwidth;
        println!(
            "{{\"impl\": \"tunebench\", \"round\": {round}, \"model\": \"{model_name}\", \"dtype\": \"{dtype_name}\", \"prefill_s\": {prefill_s:.3}, \"decode_tokens_per_s\": {tokens_per_s:.2}, \"read_bandwidth_gb_s\": {:.2}, \"of_limit_pct\": {pct:.1}, \"median_step_ms\": {:.2}, \"median_step_of_limit_pct\": {step_pct:.1}, \"peak_rss_mb\": {:.0}}}",
            bandwidth / 1e9,
            median_step_s * 1e3,
            peak_rss_mb()
        );
        ours.push(tokens_per_s);
        of_limit.push(pct);
        of_limit_by_step.push(step_pct);
        if let Some((python, args)) = &reference {
            let out = std::process::Command::new(python).args(args).output()?;
            let line = String::from_utf8_lossy(&out.stdout);
            print!("{line}");
            if let Some(theirs) = reference_tokens_per_s(&line) {
                ratios.push(tokens_per_s / theirs);
            }
        }
    }
    // A decoding step reads every weight once and the cache's keys and
    // values: its ceiling is the memory bandwidth over those bytes.
    println!(
        "{{\"impl\": \"tunebench\", \"what\": \"decode against the bandwidth limit, median of {rounds} rounds\", \"read_per_token_mb\": {:.1}, \"decode_tokens_per_s\": {:.2}, \"of_limit_pct\": {:.1}, \"of_limit_pct_range\": [{:.1}, {:.1}], \"median_step_of_limit_pct\": {:.1}{}}}",
        bytes / 1e6,
        median(ours),
        median(of_limit.clone()),
        of_limit.iter().copied().fold(f64::INFINITY, f64::min),
        of_limit.iter().copied().fold(0.0, f64::max),
        median(of_limit_by_step),
        if ratios.is_empty() {
            String::new()
        } else {
            format!(", \"over_reference\": {:.2}", median(ratios))
        }
    );
    if std::env::var_os("TUNEBENCH_PAIR").is_some() {
        side_by_side(&mut decoder, &prompt, &model_name, &dtype_name)?;
    }
    Ok(())
}

/// One round: the prompt read into a fresh cache, then `NEW` greedy steps
/// as users take them; (prefill seconds, decode tokens/s, the median
/// step's seconds). The tokens/s count every pause the host makes the
/// process take (on the shared development host, a round of 64 steps of
/// about 9 ms had up to four of 16-50 ms); the median step is the speed
/// between them. With `TUNEBENCH_PROFILE=1` and `profile`, the prefill's
/// time table on stderr.
fn decode_round(
    decoder: &Decoder,
    ids: &Tensor,
    layers: usize,
    profile: bool,
) -> anyhow::Result<(f64, f64, f64)> {
    let profiling = profile && tunebench::profile::requested_by_env();
    if profiling {
        tunebench::profile::enable();
        tunebench::profile::reset();
    }
    let t = Instant::now();
    let mut cache = Cache::new(layers);
    let hidden = decoder.hidden(ids, Some(&mut cache), None, Mode::BASE)?;
    let mut next = argmax_last(decoder, &hidden)?;
    let prefill_s = t.elapsed().as_secs_f64();
    if profiling {
        eprint!("prefill: {}", tunebench::profile::report(0).time_table());
    }
    let t = Instant::now();
    let mut steps_s = Vec::with_capacity(NEW);
    for _ in 0..NEW {
        let step = Instant::now();
        let hidden = decoder.step_rows(&[next], &mut [&mut cache], Mode::BASE)?;
        next = argmax_last(decoder, &hidden)?;
        steps_s.push(step.elapsed().as_secs_f64());
    }
    let tokens_per_s = NEW as f64 / t.elapsed().as_secs_f64();
    Ok((prefill_s, tokens_per_s, median(steps_s)))
}

/// The reference's interpreter and arguments under `TUNEBENCH_REF_PYTHON`:
/// transformers on the same model folder (`scripts/gpu/peft_bench.py
/// decode`), or on the random Qwen2.5-0.5B shape (`hf_generate_bench.py`),
/// with the same prompt length and new tokens; `None` without the variable
/// or for a source transformers does not read here (a GGUF file).
fn reference_command(dtype: DType) -> Option<(String, Vec<String>)> {
    let python = std::env::var("TUNEBENCH_REF_PYTHON").ok()?;
    let bf16 = dtype == DType::BF16;
    let mut args: Vec<String> = match std::env::var("TUNEBENCH_MODEL") {
        Ok(model) if std::path::Path::new(&model).join("config.json").is_file() => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu/peft_bench.py");
            let dtype = if bf16 { "bf16" } else { "f32" };
            [
                script, "decode", &model, "--device", "cpu", "--dtype", dtype,
            ]
            .map(String::from)
            .into()
        }
        Ok(model) => {
            eprintln!("no reference for {model}: transformers takes a model folder here");
            return None;
        }
        Err(_) => {
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/reference/hf_generate_bench.py"
            );
            let dtype = if bf16 { "bfloat16" } else { "float32" };
            [script, "--dtype", dtype].map(String::from).into()
        }
    };
    args.extend(["--prompt".into(), prompt_len().to_string()]);
    args.extend(["--new".into(), NEW.to_string()]);
    Some((python, args))
}

/// The decode rate in a reference's JSON line (`tokens_per_s` from
/// peft_bench.py, `decode_tokens_per_s` from hf_generate_bench.py).
fn reference_tokens_per_s(line: &str) -> Option<f64> {
    let json: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    ["tokens_per_s", "decode_tokens_per_s"]
        .iter()
        .find_map(|key| json.get(key)?.as_f64())
}

/// The Qwen2.5-0.5B shape with random weights.
fn random_qwen(dtype: DType) -> anyhow::Result<Decoder> {
    let config = ModelConfig::from_json(&serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "vocab_size": 151936, "tie_word_embeddings": true, "rope_theta": 1000000.0,
        "max_position_embeddings": 4096
    }))
    .map_err(anyhow::Error::msg)?;
    let source = RandomWeights {
        config: config.clone(),
        device: Device::Cpu,
        dtype,
        seed: 0,
    };
    Ok(Decoder::load(config, &source)?)
}

/// Bytes of the weights one decoding step reads: every projection and the
/// output projection (norms and one embedding row are noise).
fn weight_bytes_per_token(decoder: &Decoder) -> candle_core::Result<f64> {
    let projections: usize = decoder
        .projections()
        .map(|(_, _, linear)| linear.weight.byte_size())
        .sum();
    let head = decoder.output_weight();
    Ok((projections + head.elem_count() * head.dtype().size_in_bytes()) as f64)
}

/// Bytes of cached keys and values a step reads on average over a round:
/// every layer's, for the prompt and half the new tokens. 1.4% of
/// SmolLM2's weights at 128 tokens, a third of them at 4,096.
fn cache_bytes_per_token(decoder: &Decoder, dtype: DType) -> f64 {
    let c = &decoder.config;
    let positions = prompt_len() as f64 + NEW as f64 / 2.0;
    let per_position = 2 * c.num_layers * c.num_kv_heads * c.head_dim * dtype.size_in_bytes();
    per_position as f64 * positions
}

/// Bytes per second this machine reads from memory with every core (the
/// best of five sums of a 1 GiB buffer, far larger than any cache), from
/// huge pages where the weights are in them.
fn read_bandwidth() -> anyhow::Result<f64> {
    use rayon::prelude::*;
    let ones = Tensor::ones(1 << 28, DType::F32, &Device::Cpu)?;
    if tunebench::model::huge_pages::wanted() {
        tunebench::model::huge_pages::hold([&ones]);
    }
    let (storage, _) = ones.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        anyhow::bail!("the bandwidth probe's buffer is not on the CPU");
    };
    let buffer = cpu.as_slice::<f32>()?;
    Ok((0..5)
        .map(|_| {
            let t = Instant::now();
            let sum: f32 = buffer
                .par_chunks(1 << 16)
                .map(|c| {
                    let mut lanes = [0f32; 16];
                    for block in c.chunks_exact(16) {
                        for k in 0..16 {
                            lanes[k] += block[k];
                        }
                    }
                    lanes.iter().sum::<f32>()
                })
                .sum();
            std::hint::black_box(sum);
            (buffer.len() * 4) as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max))
}

fn argmax_last(decoder: &Decoder, hidden: &Tensor) -> candle_core::Result<u32> {
    let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?;
    decoder
        .logits(&last, false)?
        .flatten_all()?
        .argmax(0)?
        .to_scalar::<u32>()
}

/// Rows decoded as one batch, one per mode, each with its own cache and
/// next token.
struct Batch {
    modes: Vec<Mode>,
    caches: Vec<Cache>,
    next: Vec<u32>,
}

impl Batch {
    /// Reads the prompt into each row's cache.
    fn new(decoder: &Decoder, prompt: &[u32], modes: &[Mode]) -> anyhow::Result<Batch> {
        let ids = Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?;
        let mut caches: Vec<Cache> = modes
            .iter()
            .map(|_| Cache::new(decoder.layers.len()))
            .collect();
        let mut next = Vec::new();
        for (cache, &mode) in caches.iter_mut().zip(modes) {
            let hidden = decoder.hidden(&ids, Some(cache), None, mode)?;
            next.push(argmax_last(decoder, &hidden)?);
        }
        Ok(Batch {
            modes: modes.to_vec(),
            caches,
            next,
        })
    }

    /// One decoding step of every row: (wall, CPU) seconds.
    fn step(&mut self, decoder: &Decoder) -> anyhow::Result<(f64, f64)> {
        let base_rows = self.modes.iter().filter(|m| !m.adapter).count();
        let mode = Mode {
            adapter: base_rows < self.modes.len(),
            base_rows,
            ..Mode::BASE
        };
        let (t, cpu) = (Instant::now(), cpu_s());
        let mut rows: Vec<&mut Cache> = self.caches.iter_mut().collect();
        let hidden = decoder.step_rows(&self.next, &mut rows, mode)?;
        let logits = decoder.logits(&hidden, false)?.squeeze(0)?;
        self.next = logits.argmax(1)?.to_vec1::<u32>()?;
        Ok((t.elapsed().as_secs_f64(), cpu_s() - cpu))
    }
}

/// Median seconds per step of decoding `NEW` tokens for each batch of
/// modes in `batches`, wall-clock and CPU time (which counts waiting on
/// memory but not waiting for a core). The batches take their steps in
/// turn, so a machine that speeds up or slows down meanwhile (a neighbour
/// on a shared host) weighs on each alike, and the median drops the steps
/// a neighbour interrupted.
fn steps_s(
    decoder: &Decoder,
    prompt: &[u32],
    batches: &[&[Mode]],
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut running = batches
        .iter()
        .map(|modes| Batch::new(decoder, prompt, modes))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut times = vec![(Vec::new(), Vec::new()); batches.len()];
    let profiling = tunebench::profile::requested_by_env();
    if profiling {
        tunebench::profile::enable();
    }
    let mut by_label = vec![std::collections::BTreeMap::<&str, f64>::new(); batches.len()];
    for _ in 0..NEW {
        for ((batch, (wall, cpu)), labels) in running.iter_mut().zip(&mut times).zip(&mut by_label)
        {
            tunebench::profile::reset();
            let (w, c) = batch.step(decoder)?;
            wall.push(w);
            cpu.push(c);
            for row in tunebench::profile::report(0).rows {
                *labels.entry(row.label).or_default() += row.seconds;
            }
        }
    }
    for (modes, labels) in batches.iter().zip(by_label).filter(|_| profiling) {
        let ms: Vec<String> = labels
            .iter()
            .map(|(label, s)| format!("\"{label}\": {:.2}", s * 1e3 / NEW as f64))
            .collect();
        println!(
            "{{\"impl\": \"tunebench profile\", \"rows\": {}, \"ms_per_step\": {{{}}}}}",
            modes.len(),
            ms.join(", ")
        );
    }
    Ok(times
        .into_iter()
        .map(|(w, c)| (median(w), median(c)))
        .collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU time of this process (all threads) so far, in seconds.
fn cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn side_by_side(
    decoder: &mut Decoder,
    prompt: &[u32],
    model_name: &str,
    dtype_name: &str,
) -> anyhow::Result<()> {
    let spec = LoraSpec::all_linear(16, 32.0);
    adapter::attach_new(decoder, &spec, 1)?;
    adapter::randomize(decoder, 0.01, 1)?;
    let batches: [&[Mode]; 3] = [
        &[Mode::BASE],
        &[Mode::ADAPTED],
        &[Mode::BASE, Mode::ADAPTED],
    ];
    let [base, adapted, pair] = <[(f64, f64); 3]>::try_from(steps_s(decoder, prompt, &batches)?)
        .map_err(|_| anyhow::anyhow!("one timing per batch"))?;
    let labels = format!(r#""model": "{model_name}", "dtype": "{dtype_name}""#);
    report(&labels, "wall", base.0, adapted.0, pair.0);
    report(&labels, "cpu", base.1, adapted.1, pair.1);
    Ok(())
}

/// One line of the side-by-side figures from seconds per step; `labels`
/// names the model and dtype (JSON fields).
fn report(labels: &str, clock: &str, base: f64, adapted: f64, pair: f64) {
    println!(
        "{{\"impl\": \"tunebench side by side\", {labels}, \"clock\": \"{clock}\", \"base_step_ms\": {:.1}, \"adapter_step_ms\": {:.1}, \"pair_step_ms\": {:.1}, \"one_after_other_tokens_per_s\": {:.2}, \"together_tokens_per_s\": {:.2}, \"speedup\": {:.2}, \"adapter_overhead_pct\": {:.1}, \"pair_over_base_pct\": {:.1}}}",
        base * 1e3,
        adapted * 1e3,
        pair * 1e3,
        2.0 / (base + adapted),
        2.0 / pair,
        (base + adapted) / pair,
        (adapted / base - 1.0) * 100.0,
        (pair / base - 1.0) * 100.0,
    );
}
