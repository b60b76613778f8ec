//! Sampling settings and the small popup that edits them: ↑/↓ picks a
//! field, ←/→ nudges it, typing or Enter edits its value.

use crate::model::generate::GenerateParams;
use crate::model::sampler::SamplingParams;
use crossterm::event::{KeyCode, KeyEvent};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// 0 is greedy.
    pub temperature: f32,
    /// 1.0 is off.
    pub top_p: f32,
    /// 0 is off.
    pub top_k: usize,
    /// 0 is off.
    pub min_p: f32,
    /// 1.0 is off.
    pub repetition_penalty: f32,
    /// 0 is off.
    pub presence_penalty: f32,
    /// 0 is off.
    pub frequency_penalty: f32,
    /// 0 is off.
    pub no_repeat_ngram_size: usize,
    pub max_new_tokens: usize,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            min_p: 0.0,
            repetition_penalty: 1.1,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            no_repeat_ngram_size: 0,
            max_new_tokens: 256,
            seed: 42,
        }
    }
}

impl Settings {
    pub fn params(&self) -> GenerateParams {
        GenerateParams {
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: (self.top_k > 0).then_some(self.top_k),
                top_p: (self.top_p < 1.0).then_some(self.top_p),
                min_p: (self.min_p > 0.0).then_some(self.min_p),
                repetition_penalty: self.repetition_penalty,
                presence_penalty: self.presence_penalty,
                frequency_penalty: self.frequency_penalty,
                no_repeat_ngram_size: self.no_repeat_ngram_size,
                seed: self.seed,
            },
            max_new_tokens: self.max_new_tokens,
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }

    /// One line: `temp 0.70  top-p 0.90  ...`; the optional penalties only
    /// when they are on.
    pub fn summary(&self) -> String {
        Field::ALL
            .iter()
            .filter(|f| !f.is_off(self))
            .map(|f| format!("{} {}", f.short(), f.get(self)))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Temperature,
    TopP,
    TopK,
    MinP,
    RepetitionPenalty,
    PresencePenalty,
    FrequencyPenalty,
    NoRepeatNgram,
    MaxNewTokens,
    Seed,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Temperature,
        Field::TopP,
        Field::TopK,
        Field::MinP,
        Field::RepetitionPenalty,
        Field::PresencePenalty,
        Field::FrequencyPenalty,
        Field::NoRepeatNgram,
        Field::MaxNewTokens,
        Field::Seed,
    ];

    /// The controls that are usually off, when they are.
    fn is_off(self, s: &Settings) -> bool {
        match self {
            Field::MinP => s.min_p == 0.0,
            Field::PresencePenalty => s.presence_penalty == 0.0,
            Field::FrequencyPenalty => s.frequency_penalty == 0.0,
            Field::NoRepeatNgram => s.no_repeat_ngram_size == 0,
            _ => false,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Field::Temperature => "temperature (0 = greedy)",
            Field::TopP => "top-p (1 = off)",
            Field::TopK => "top-k (0 = off)",
            Field::MinP => "min-p (0 = off)",
            Field::RepetitionPenalty => "repetition penalty (1 = off)",
            Field::PresencePenalty => "presence penalty (0 = off)",
            Field::FrequencyPenalty => "frequency penalty (0 = off)",
            Field::NoRepeatNgram => "no-repeat n-gram size (0 = off)",
            Field::MaxNewTokens => "max new tokens",
            Field::Seed => "seed",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Field::Temperature => "temp",
            Field::TopP => "top-p",
            Field::TopK => "top-k",
            Field::MinP => "min-p",
            Field::RepetitionPenalty => "rep",
            Field::PresencePenalty => "pres",
            Field::FrequencyPenalty => "freq",
            Field::NoRepeatNgram => "ngram",
            Field::MaxNewTokens => "max",
            Field::Seed => "seed",
        }
    }

    pub fn get(self, s: &Settings) -> String {
        match self {
            Field::Temperature => format!("{:.2}", s.temperature),
            Field::TopP => format!("{:.2}", s.top_p),
            Field::TopK => s.top_k.to_string(),
            Field::MinP => format!("{:.2}", s.min_p),
            Field::RepetitionPenalty => format!("{:.2}", s.repetition_penalty),
            Field::PresencePenalty => format!("{:.2}", s.presence_penalty),
            Field::FrequencyPenalty => format!("{:.2}", s.frequency_penalty),
            Field::NoRepeatNgram => s.no_repeat_ngram_size.to_string(),
            Field::MaxNewTokens => s.max_new_tokens.to_string(),
            Field::Seed => s.seed.to_string(),
        }
    }

    /// Sets the field from text; says what a valid value is otherwise.
    pub fn set(self, s: &mut Settings, text: &str) -> Result<(), String> {
        let text = text.trim();
        let float = |lo: f32, hi: f32| -> Result<f32, String> {
            match text.parse::<f32>() {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(format!("{}: a number from {lo} to {hi}", self.short())),
            }
        };
        let int = |lo: u64, hi: u64| -> Result<u64, String> {
            match text.parse::<u64>() {
                Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                _ => Err(format!(
                    "{}: a whole number from {lo} to {hi}",
                    self.short()
                )),
            }
        };
        match self {
            Field::Temperature => s.temperature = float(0.0, 5.0)?,
            Field::TopP => s.top_p = float(0.01, 1.0)?,
            Field::TopK => s.top_k = int(0, 100_000)? as usize,
            Field::MinP => s.min_p = float(0.0, 1.0)?,
            Field::RepetitionPenalty => s.repetition_penalty = float(0.5, 3.0)?,
            Field::PresencePenalty => s.presence_penalty = float(-2.0, 2.0)?,
            Field::FrequencyPenalty => s.frequency_penalty = float(-2.0, 2.0)?,
            Field::NoRepeatNgram => s.no_repeat_ngram_size = int(0, 64)? as usize,
            Field::MaxNewTokens => s.max_new_tokens = int(1, 32_768)? as usize,
            Field::Seed => s.seed = int(0, u64::MAX)?,
        }
        Ok(())
    }

    /// One step up (`up`) or down, kept in range.
    fn nudge(self, s: &mut Settings, up: bool) {
        let sign = if up { 1.0 } else { -1.0 };
        let step_f = |v: f32, step: f32, lo: f32, hi: f32| {
            (((v + sign * step) / step).round() * step).clamp(lo, hi)
        };
        match self {
            Field::Temperature => s.temperature = step_f(s.temperature, 0.1, 0.0, 5.0),
            Field::TopP => s.top_p = step_f(s.top_p, 0.05, 0.05, 1.0),
            Field::TopK => {
                s.top_k = if up {
                    s.top_k + 5
                } else {
                    s.top_k.saturating_sub(5)
                }
            }
            Field::MinP => s.min_p = step_f(s.min_p, 0.05, 0.0, 1.0),
            Field::RepetitionPenalty => {
                s.repetition_penalty = step_f(s.repetition_penalty, 0.05, 0.5, 3.0)
            }
            Field::PresencePenalty => {
                s.presence_penalty = step_f(s.presence_penalty, 0.1, -2.0, 2.0)
            }
            Field::FrequencyPenalty => {
                s.frequency_penalty = step_f(s.frequency_penalty, 0.1, -2.0, 2.0)
            }
            Field::NoRepeatNgram => {
                s.no_repeat_ngram_size = if up {
                    (s.no_repeat_ngram_size + 1).min(64)
                } else {
                    s.no_repeat_ngram_size.saturating_sub(1)
                }
            }
            Field::MaxNewTokens => {
                s.max_new_tokens = if up {
                    (s.max_new_tokens * 2).min(32_768)
                } else {
                    (s.max_new_tokens / 2).max(1)
                }
            }
            Field::Seed => {
                s.seed = if up {
                    s.seed.wrapping_add(1)
                } else {
                    s.seed.wrapping_sub(1)
                }
            }
        }
    }
}

/// The open settings popup.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SettingsEditor {
    pub selected: usize,
    /// Text being typed for the selected field.
    pub editing: Option<String>,
    pub error: Option<String>,
}

impl SettingsEditor {
    pub fn field(&self) -> Field {
        Field::ALL[self.selected]
    }

    /// Handles a key; returns false when the popup closes.
    pub fn key(&mut self, key: KeyEvent, settings: &mut Settings) -> bool {
        if let Some(text) = &mut self.editing {
            match key.code {
                KeyCode::Esc => self.editing = None,
                KeyCode::Enter | KeyCode::Tab => {
                    let text = text.clone();
                    match self.field().set(settings, &text) {
                        Ok(()) => {
                            self.editing = None;
                            self.error = None;
                        }
                        Err(message) => self.error = Some(message),
                    }
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if c.is_ascii_digit() || c == '.' || c == '-' => text.push(c),
                _ => {}
            }
            return true;
        }
        self.error = None;
        match key.code {
            KeyCode::Esc | KeyCode::Char('s') | KeyCode::Char('q') => return false,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => {
                self.selected = (self.selected + 1).min(Field::ALL.len() - 1)
            }
            KeyCode::Left | KeyCode::Char('h') | KeyCode::Char('-') => {
                self.field().nudge(settings, false)
            }
            KeyCode::Right | KeyCode::Char('l') | KeyCode::Char('+') => {
                self.field().nudge(settings, true)
            }
            KeyCode::Enter => self.editing = Some(self.field().get(settings)),
            KeyCode::Char(c) if c.is_ascii_digit() || c == '.' => {
                self.editing = Some(c.to_string())
            }
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn press(editor: &mut SettingsEditor, settings: &mut Settings, code: KeyCode) -> bool {
        editor.key(KeyEvent::new(code, KeyModifiers::NONE), settings)
    }

    #[test]
    fn nudging_typing_and_bad_values() {
        let mut s = Settings::default();
        let mut e = SettingsEditor::default();
        press(&mut e, &mut s, KeyCode::Right);
        assert!((s.temperature - 0.8).abs() < 1e-6);
        press(&mut e, &mut s, KeyCode::Down);
        press(&mut e, &mut s, KeyCode::Down);
        for c in "0.".chars() {
            // Digits start editing the selected field (top-k).
            press(&mut e, &mut s, KeyCode::Char(c));
        }
        press(&mut e, &mut s, KeyCode::Enter);
        assert!(e.error.as_deref().unwrap().contains("whole number"));
        press(&mut e, &mut s, KeyCode::Backspace);
        press(&mut e, &mut s, KeyCode::Enter);
        assert_eq!(
            (s.top_k, e.editing.clone(), e.error.clone()),
            (0, None, None)
        );
        let params = s.params();
        assert_eq!(params.sampling.top_k, None);
        assert_eq!(params.sampling.top_p, Some(0.9));
        assert!(!press(&mut e, &mut s, KeyCode::Esc));
        assert!(
            s.summary()
                .starts_with("temp 0.80  top-p 0.90  top-k 0  rep 1.10")
        );
    }
}
