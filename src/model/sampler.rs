//! Choosing the next token from logits: greedy, or temperature with top-k,
//! top-p and min-p, after the penalties against repetition; seeded, so runs
//! repeat.
//!
//! The penalties mean what they mean elsewhere: `repetition_penalty` as in
//! transformers (every token of prompt and answer, divided or multiplied),
//! `presence_penalty` and `frequency_penalty` as in OpenAI's API and vLLM
//! (subtracted, counting the answer's tokens only), `no_repeat_ngram_size`
//! as in transformers (prompt and answer), `min_p` as in vLLM.

use crate::data::rng::SplitMix64;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    /// Drops tokens less likely than `min_p` times the most likely one.
    pub min_p: Option<f32>,
    /// 1.0 is off; above 1 discourages tokens already in the context.
    pub repetition_penalty: f32,
    /// Subtracted once from every token the answer already holds.
    pub presence_penalty: f32,
    /// Subtracted once per time the answer already holds the token.
    pub frequency_penalty: f32,
    /// 0 is off; no run of this many tokens appears twice.
    pub no_repeat_ngram_size: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            min_p: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            no_repeat_ngram_size: 0,
            seed: 42,
        }
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: SplitMix64,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = SplitMix64::new(params.seed);
        Sampler { params, rng }
    }

    /// Picks a token; `context` is every token so far, the prompt's first
    /// `prompt_len` of them and then the answer's.
    pub fn sample(&mut self, logits: &mut [f32], context: &[u32], prompt_len: usize) -> u32 {
        self.penalize(logits, context, prompt_len);
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        let t = self.params.temperature;
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, l / t))
            .collect();
        if candidates.is_empty() {
            return argmax(logits);
        }
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(k) = self.params.top_k.filter(|&k| k > 0) {
            candidates.truncate(k);
        }
        let max = candidates[0].1;
        if let Some(min_p) = self.params.min_p.filter(|&p| p > 0.0) {
            // p_i >= min_p * p_max  <=>  l_i / t >= max + ln(min_p)
            let floor = max + min_p.ln();
            candidates.retain(|c| c.1 >= floor);
        }
        let mut probs: Vec<f32> = candidates.iter().map(|c| (c.1 - max).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if let Some(top_p) = self.params.top_p.filter(|&p| p < 1.0) {
            // Keep the smallest prefix whose mass reaches top_p.
            let mut mass = 0.0;
            let keep = probs
                .iter()
                .position(|&p| {
                    mass += p;
                    mass >= top_p
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            let sum: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= sum);
        }
        let draw = (self.rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if draw < acc {
                return candidates[i].0;
            }
        }
        candidates[probs.len() - 1].0
    }
}

impl Sampler {
    /// Applies the repetition, presence, frequency and n-gram penalties in
    /// place.
    pub fn penalize(&self, logits: &mut [f32], context: &[u32], prompt_len: usize) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let mut seen = context.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            let mut counts: HashMap<u32, usize> = HashMap::new();
            for &t in &context[prompt_len.min(context.len())..] {
                *counts.entry(t).or_default() += 1;
            }
            for (t, n) in counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= p.presence_penalty + p.frequency_penalty * n as f32;
                }
            }
        }
        for t in repeated_ngram_ends(context, p.no_repeat_ngram_size) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Tokens that would complete an `n`-gram already present in `context`:
/// those that followed an earlier occurrence of its last `n - 1` tokens.
fn repeated_ngram_ends(context: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || context.len() + 1 < n {
        return Vec::new();
    }
    let prefix = &context[context.len() + 1 - n..];
    context
        .windows(n)
        .filter(|w| &w[..n - 1] == prefix)
        .map(|w| w[n - 1])
        .collect()
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_penalty() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.0], &[], 0), 1);
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 4.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.0], &[1], 1), 2);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: Some(1),
            ..Default::default()
        };
        let mut s = Sampler::new(params);
        assert_eq!(s.sample(&mut [0.0, 5.0, 4.9], &[], 0), 1);
        let params = SamplingParams {
            temperature: 1.0,
            seed: 3,
            ..Default::default()
        };
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..20)
                .map(|_| s.sample(&mut [1.0, 1.0, 1.0, 1.0], &[], 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&params), draw(&params));
        assert!(draw(&params).iter().any(|&t| t != draw(&params)[0]));
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let params = SamplingParams {
            temperature: 1.0,
            top_p: Some(0.5),
            ..Default::default()
        };
        let mut s = Sampler::new(params);
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [10.0, 0.0, 0.0], &[], 0), 0);
        }
    }

    fn sampler(params: SamplingParams) -> Sampler {
        Sampler::new(params)
    }

    #[test]
    fn presence_and_frequency_count_only_the_answer() {
        // Prompt [0, 1]; answer [2, 2, 1]. Token 0 is only in the prompt.
        let s = sampler(SamplingParams {
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            ..Default::default()
        });
        let mut logits = [1.0, 2.0, 3.0, 0.5];
        s.penalize(&mut logits, &[0, 1, 2, 2, 1], 2);
        // 2: 3 - 0.5 - 2 * 0.25; 1: 2 - 0.5 - 0.25; 0 and 3 untouched.
        assert_eq!(logits, [1.0, 1.25, 2.0, 0.5]);
        let mut s = s;
        assert_eq!(s.sample(&mut [2.0, 2.2, 2.5], &[7, 2, 2], 1), 1);
    }

    #[test]
    fn no_repeat_ngram_bans_what_would_repeat_a_trigram() {
        let s = sampler(SamplingParams {
            no_repeat_ngram_size: 3,
            ..Default::default()
        });
        // "5 6 7 ... 5 6" : 7 would repeat "5 6 7"; "6 5 6 8" would not.
        let context = [5, 6, 7, 1, 5, 6];
        let mut logits = [0.0; 9];
        logits[7] = 9.0;
        logits[8] = 1.0;
        s.penalize(&mut logits, &context, 0);
        assert_eq!(logits[7], f32::NEG_INFINITY);
        assert_eq!(logits[8], 1.0);
        assert_eq!(repeated_ngram_ends(&[1, 2], 3), Vec::<u32>::new());
        assert_eq!(repeated_ngram_ends(&[4, 4, 4], 2), vec![4, 4]);
    }

    #[test]
    fn min_p_drops_tokens_below_its_share_of_the_best() {
        // Probabilities at temperature 1: e^0 : e^-1 : e^-3 = 1 : 0.37 : 0.05.
        // min_p 0.2 keeps the first two whatever the seed draws.
        for seed in 0..40 {
            let mut s = sampler(SamplingParams {
                temperature: 1.0,
                min_p: Some(0.2),
                seed,
                ..Default::default()
            });
            assert_ne!(s.sample(&mut [0.0, -1.0, -3.0], &[], 0), 2);
        }
        let mut s = sampler(SamplingParams {
            temperature: 1.0,
            min_p: Some(0.5),
            ..Default::default()
        });
        for _ in 0..40 {
            assert_eq!(s.sample(&mut [0.0, -1.0, -3.0], &[], 0), 0);
        }
    }
}
