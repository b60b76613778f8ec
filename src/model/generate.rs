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
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            sampling: SamplingParams::default(),
            max_new_tokens: 256,
            stop_strings: Vec::new(),
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
    if prompt.is_empty() {
        return Err(candle_core::Error::Msg(EMPTY_PROMPT.into()));
    }
    let decoder = &model.decoder;
    let context_limit = decoder.config.max_position_embeddings;
    check_prompt_fits(prompt.len(), context_limit)?;
    let mut cache = Cache::new(decoder.layers.len());
    let mut sampler = Sampler::new(params.sampling.clone());
    let mut context = prompt.to_vec();
    let mut generated: Vec<u32> = Vec::new();
    let mut text = String::new();
    let mut stop = StopReason::MaxTokens;
    let start = Instant::now();
    let mut input = Tensor::new(prompt, decoder.device())?.unsqueeze(0)?;
    let mut prefill_s = 0.0;
    for step in 0..params.max_new_tokens {
        if cancel.load(Ordering::Relaxed) {
            stop = StopReason::Cancelled;
            break;
        }
        if context.len() >= context_limit {
            stop = StopReason::ContextFull;
            break;
        }
        let hidden = decoder.hidden(&input, Some(&mut cache), None, mode)?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?;
        let mut logits = decoder
            .logits(&last, false)?
            .squeeze(0)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        if step == 0 {
            prefill_s = start.elapsed().as_secs_f64();
        }
        let token = sampler.sample(&mut logits, &context, prompt.len());
        if model.stop_ids.contains(&token) {
            stop = StopReason::EndOfTurn;
            break;
        }
        generated.push(token);
        context.push(token);
        let decoded = model.tokenizer.decode(&generated);
        // Emit only whole characters; a byte-level token may end mid-character.
        if !decoded.ends_with('\u{FFFD}')
            && decoded.len() > text.len()
            && decoded.starts_with(&text)
        {
            let piece = &decoded[text.len()..];
            if let Some((cut, _)) = find_stop(&decoded, &params.stop_strings) {
                let visible = cut.saturating_sub(text.len());
                on_text(&piece[..visible.min(piece.len())]);
                text = decoded[..cut].to_string();
                stop = StopReason::StopString;
                break;
            }
            on_text(piece);
            text = decoded;
        }
        input = Tensor::new(&[token], decoder.device())?.unsqueeze(0)?;
    }
    Ok(Generation {
        text,
        tokens: generated,
        stop,
        prompt_tokens: prompt.len(),
        prefill_s,
        decode_s: start.elapsed().as_secs_f64() - prefill_s,
    })
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
