//! The sampling flags `generate`, `chat` and `eval --generate` share.

use crate::model::sampler::SamplingParams;
use serde::Serialize;

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct SamplingArgs {
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than this share of the most likely one (vLLM's min_p).
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Above 1 discourages every token already in prompt or answer (transformers' meaning).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Subtracted from the logit of each token the answer already holds (OpenAI/vLLM).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtracted once per earlier occurrence in the answer (OpenAI/vLLM).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// No run of this many tokens appears twice (transformers' no_repeat_ngram_size; 0 is off).
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            seed: self.seed,
        }
    }
}
