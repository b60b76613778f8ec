//! Text generation with a KV cache: sampling, stop conditions, streaming and
//! cancellation from another thread.

use super::decoder::{Cache, Mode};
use super::loaded::Model;
use super::sampler::{Sampler, SamplingParams};
use candle_core::{Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    /// Generation stops when the text ends with one of these (not included).
    pub stop_strings: Vec<String>,
    /// Goes on past the end-of-turn token (benchmarks: a fixed number of
    /// new tokens, as vLLM's `ignore_eos`).
    pub ignore_eos: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            sampling: SamplingParams::default(),
            max_new_tokens: 256,
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfTurn,
    StopString,
    MaxTokens,
    /// The model's last position (`max_position_embeddings`) was reached.
    ContextFull,
    Cancelled,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    pub prefill_s: f64,
    pub decode_s: f64,
    /// Where the prompts' reading spent its time and memory, when profiling
    /// (`--profile`); the decoding's is what the profile holds at the end.
    #[serde(skip)]
    pub prefill_profile: Option<crate::profile::Report>,
}

impl Generation {
    pub fn tokens_per_s(&self) -> f64 {
        if self.decode_s > 0.0 {
            self.tokens.len().saturating_sub(1) as f64 / self.decode_s
        } else {
            0.0
        }
    }
}

/// Why a prompt of no tokens cannot be answered.
pub const EMPTY_PROMPT: &str =
    "the prompt is empty: it renders to 0 tokens; give it some text (or a chat template)";

/// Generates a continuation of `prompt` (token ids). `on_text` receives each
/// new piece of text as soon as it decodes to whole characters.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    params: &GenerateParams,
    mode: Mode,
    cancel: &AtomicBool,
    mut on_text: impl FnMut(&str),
) -> Result<Generation> {
    let request = Request {
        prompt,
        params,
        mode,
        on_text: &mut on_text,
        on_end: None,
    };
    let mut answers = generate_together(model, vec![request], cancel)?;
    Ok(answers.pop().expect("one answer per request"))
}

/// One answer of [`generate_together`].
pub struct Request<'a> {
    pub prompt: &'a [u32],
    pub params: &'a GenerateParams,
    /// Only `adapter` matters: whether this answer uses the adapter.
    pub mode: Mode,
    /// Receives each new piece of this answer's text.
    pub on_text: &'a mut dyn FnMut(&str),
    /// Receives the answer as soon as it ends, while others may go on.
    pub on_end: Option<&'a mut dyn FnMut(&Generation)>,
}

/// Answers several requests (the base and the adapter, side by side) from
/// the one copy of the weights: after each prompt is read, every step
/// decodes one token of each unfinished answer in one batch, so the weights
/// are read once per step for all of them. Each answer keeps its own
/// sampler, stop conditions and text, and leaves the batch when it ends.
/// The generations come back in the order of `requests`.
pub fn generate_together(
    model: &Model,
    requests: Vec<Request<'_>>,
    cancel: &AtomicBool,
) -> Result<Vec<Generation>> {
    let decoder = &model.decoder;
    let context_limit = decoder.config.max_position_embeddings;
    for request in &requests {
        if request.prompt.is_empty() {
            return Err(candle_core::Error::Msg(EMPTY_PROMPT.into()));
        }
        check_prompt_fits(request.prompt.len(), context_limit)?;
    }
    let mut answers: Vec<Answer> = requests
        .into_iter()
        .map(|r| Answer::new(r, decoder.layers.len()))
        .collect();
    // Prompts are read one by one: they differ in length (each Chat column
    // has its own history), and reading a prompt is bound by arithmetic,
    // not by reading the weights, so a batch would gain little there.
    for answer in &mut answers {
        answer.started = Instant::now();
        if !answer.goes_on(cancel, context_limit) {
            continue;
        }
        let ids = Tensor::new(answer.request.prompt, decoder.device())?.unsqueeze(0)?;
        let hidden = decoder.hidden(&ids, Some(&mut answer.cache), None, answer.request.mode)?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?;
        let mut logits = decoder
            .logits(&last, false)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        answer.prefill_s = answer.started.elapsed().as_secs_f64();
        answer.take(&mut logits, model);
    }
    let prefill_profile = crate::profile::enabled().then(|| {
        let report = crate::profile::report(0);
        crate::profile::reset();
        report
    });
    loop {
        let mut active: Vec<&mut Answer> = answers
            .iter_mut()
            .filter_map(|a| a.goes_on(cancel, context_limit).then_some(a))
            .collect();
        if active.is_empty() {
            break;
        }
        // Base rows first: the adapter's delta applies to the rows after them.
        active.sort_by_key(|a| a.request.mode.adapter);
        let base_rows = active.iter().filter(|a| !a.request.mode.adapter).count();
        let mode = Mode {
            adapter: base_rows < active.len(),
            base_rows,
            ..Mode::BASE
        };
        let tokens: Vec<u32> = active.iter().map(|a| a.last_token()).collect();
        let mut caches: Vec<&mut Cache> = active.iter_mut().map(|a| &mut a.cache).collect();
        let hidden = decoder.step_rows(&tokens, &mut caches, mode)?;
        let logits = decoder
            .logits(&hidden, false)?
            .squeeze(0)?
            .to_vec2::<f32>()?;
        for (answer, mut row) in active.into_iter().zip(logits) {
            answer.take(&mut row, model);
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| Generation {
            prefill_profile: prefill_profile.clone(),
            ..a.into_generation()
        })
        .collect())
}

/// One answer in progress.
struct Answer<'a> {
    request: Request<'a>,
    sampler: Sampler,
    cache: Cache,
    /// Prompt and answer so far.
    context: Vec<u32>,
    generated: Vec<u32>,
    /// The text streamed so far.
    text: String,
    stop: Option<StopReason>,
    started: Instant,
    prefill_s: f64,
    /// Seconds from `started` to the end.
    ended_s: f64,
}

impl<'a> Answer<'a> {
    fn new(request: Request<'a>, layers: usize) -> Self {
        Answer {
            sampler: Sampler::new(request.params.sampling.clone()),
            cache: Cache::new(layers),
            context: request.prompt.to_vec(),
            generated: Vec::new(),
            text: String::new(),
            stop: None,
            started: Instant::now(),
            prefill_s: 0.0,
            ended_s: 0.0,
            request,
        }
    }

    /// Whether the answer needs another token; if not, records why.
    fn goes_on(&mut self, cancel: &AtomicBool, context_limit: usize) -> bool {
        if self.stop.is_some() {
            return false;
        }
        let stop = if self.generated.len() >= self.request.params.max_new_tokens {
            StopReason::MaxTokens
        } else if cancel.load(Ordering::Relaxed) {
            StopReason::Cancelled
        } else if self.context.len() >= context_limit {
            StopReason::ContextFull
        } else {
            return true;
        };
        self.finish(stop);
        false
    }

    fn last_token(&self) -> u32 {
        *self.context.last().expect("a prompt is never empty")
    }

    /// Samples the next token from `logits` and streams the text it adds.
    fn take(&mut self, logits: &mut [f32], model: &Model) {
        let prompt_len = self.request.prompt.len();
        let token = self.sampler.sample(logits, &self.context, prompt_len);
        if model.stop_ids.contains(&token) && !self.request.params.ignore_eos {
            self.finish(StopReason::EndOfTurn);
            return;
        }
        self.generated.push(token);
        self.context.push(token);
        let decoded = model.tokenizer.decode(&self.generated);
        // Emit only whole characters; a byte-level token may end mid-character.
        if decoded.ends_with('\u{FFFD}')
            || decoded.len() <= self.text.len()
            || !decoded.starts_with(&self.text)
        {
            return;
        }
        let piece = &decoded[self.text.len()..];
        if let Some((cut, _)) = find_stop(&decoded, &self.request.params.stop_strings) {
            let visible = cut.saturating_sub(self.text.len());
            (self.request.on_text)(&piece[..visible.min(piece.len())]);
            self.text = decoded[..cut].to_string();
            self.finish(StopReason::StopString);
            return;
        }
        (self.request.on_text)(piece);
        self.text = decoded;
    }

    fn finish(&mut self, stop: StopReason) {
        self.stop = Some(stop);
        self.ended_s = self.started.elapsed().as_secs_f64();
        // The other answers go on without this one's keys and values.
        self.cache = Cache::default();
        if self.request.on_end.is_some() {
            let generation = Generation {
                text: self.text.clone(),
                tokens: self.generated.clone(),
                ..self.summary()
            };
            if let Some(on_end) = &mut self.request.on_end {
                on_end(&generation);
            }
        }
    }

    /// The generation without its text and tokens.
    fn summary(&self) -> Generation {
        Generation {
            text: String::new(),
            tokens: Vec::new(),
            stop: self.stop.unwrap_or(StopReason::MaxTokens),
            prompt_tokens: self.request.prompt.len(),
            prefill_s: self.prefill_s,
            decode_s: (self.ended_s - self.prefill_s).max(0.0),
            prefill_profile: None,
        }
    }

    fn into_generation(self) -> Generation {
        let summary = self.summary();
        Generation {
            text: self.text,
            tokens: self.generated,
            ..summary
        }
    }
}

/// Refuses a prompt the model has no positions for: past
/// `max_position_embeddings` RoPE extrapolates into noise and attention
/// memory keeps growing.
pub fn check_prompt_fits(prompt_tokens: usize, context_limit: usize) -> Result<()> {
    if prompt_tokens > context_limit {
        candle_core::bail!(
            "the prompt is {prompt_tokens} tokens, more than the model's {context_limit} positions \
             (max_position_embeddings in its config.json); shorten the prompt or the chat history"
        );
    }
    Ok(())
}

/// Where the first stop string starts, if the text holds one.
fn find_stop(text: &str, stops: &[String]) -> Option<(usize, usize)> {
    stops
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .filter_map(|(i, s)| text.find(s.as_str()).map(|at| (at, i)))
        .min()
}
