//! Samples to token ids and the trained-token mask, by the rule of
//! DESIGN.md ("Samples to tokens"), which `shared/reference/hf_loss.py`
//! implements on the PyTorch side.

use super::ModelError;
use super::gguf::GgufFile;
use super::hub::{self, ModelSource};
use super::template::{BuiltinTemplate, ChatTemplate};
use crate::data::sample::{Conversation, Message, Role, Sample};
use serde_json::Value;
use std::ops::Range;
use std::path::Path;
use tokenizers::Tokenizer;

/// Token ids and, for each, whether the loss is computed on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub trained: Vec<bool>,
}

/// A tokenizer with the chat template that goes with it.
pub struct ChatTokenizer {
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub bos_token: String,
    pub eos_token: String,
}

impl ChatTokenizer {
    /// The tokenizer and chat template of a model directory, GGUF file,
    /// `ollama:` name or cached repo id.
    pub fn load(model: &str) -> Result<Self, ModelError> {
        match hub::resolve(model)? {
            ModelSource::Dir(dir) => Self::load_dir(&dir),
            ModelSource::Gguf(path) => GgufFile::open(&path)?.chat_tokenizer(),
        }
    }

    /// Loads `tokenizer.json`, `tokenizer_config.json` and the chat template
    /// of a model directory.
    pub fn load_dir(dir: &Path) -> Result<Self, ModelError> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| ModelError::File {
            path: tokenizer_path.display().to_string(),
            message: e.to_string(),
        })?;
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ModelError::File {
                path: config_path.display().to_string(),
                message: e.to_string(),
            })?,
            Err(_) => Value::Null,
        };
        let bos = special_token(&config, "bos_token").unwrap_or_default();
        let eos = special_token(&config, "eos_token").unwrap_or_default();
        let template = chat_template_text(&config)
            .or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok());
        Self::from_parts(tokenizer, template, bos, eos)
    }

    /// A tokenizer with its chat template (ChatML when the model has none).
    pub fn from_parts(
        tokenizer: Tokenizer,
        template: Option<String>,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, ModelError> {
        let source = template.unwrap_or_else(|| BuiltinTemplate::ChatMl.source().to_string());
        let template = ChatTemplate::new(&source, &bos_token, &eos_token)?;
        Ok(ChatTokenizer {
            tokenizer,
            template,
            bos_token,
            eos_token,
        })
    }

    /// Replaces the model's chat template with a built-in layout.
    pub fn use_builtin_template(&mut self, builtin: BuiltinTemplate) -> Result<(), ModelError> {
        self.template = ChatTemplate::new(builtin.source(), &self.bos_token, &self.eos_token)?;
        Ok(())
    }

    /// Replaces the model's chat template with the built-in layout a config
    /// names (`model.template`), when it names one.
    pub fn use_template_named(&mut self, name: Option<&str>) -> Result<(), String> {
        let Some(name) = name else { return Ok(()) };
        let builtin: BuiltinTemplate = name.parse().map_err(|e| format!("model.template: {e}"))?;
        self.use_builtin_template(builtin)
            .map_err(|e| e.to_string())
    }

    fn encode_text(&self, text: &str, special: bool) -> Result<tokenizers::Encoding, ModelError> {
        self.tokenizer
            .encode(text, special)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    fn eos_id(&self) -> Result<u32, ModelError> {
        self.tokenizer.token_to_id(&self.eos_token).ok_or_else(|| {
            ModelError::Tokenizer(format!(
                "EOS token `{}` is not in the vocabulary",
                self.eos_token
            ))
        })
    }

    /// Token ids and the trained mask of a sample (not truncated).
    pub fn encode(&self, sample: &Sample, train_on_inputs: bool) -> Result<Encoded, ModelError> {
        match sample {
            Sample::Text(text) => {
                let mut ids = self.encode_text(text, true)?.get_ids().to_vec();
                ids.push(self.eos_id()?);
                let trained = vec![true; ids.len()];
                Ok(Encoded { ids, trained })
            }
            Sample::Chat(conv) => {
                let (_, encoding, trained) = self.encode_chat(conv, train_on_inputs)?;
                Ok(Encoded {
                    ids: encoding.get_ids().to_vec(),
                    trained,
                })
            }
        }
    }

    /// The rendered conversation, its encoding and, per token, whether it
    /// is trained (its first character lies in an answer's region).
    fn encode_chat(
        &self,
        conv: &Conversation,
        train_on_inputs: bool,
    ) -> Result<(String, tokenizers::Encoding, Vec<bool>), ModelError> {
        let messages = conv.with_system_message();
        let tools = conv.tools.as_ref();
        let full = self.template.render(&messages, tools, false)?;
        let mut regions: Vec<Range<usize>> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != Role::Assistant {
                continue;
            }
            let prefix = self.template.render(&messages[..i], tools, true)?;
            let upto = self.template.render(&messages[..=i], tools, false)?;
            if !(full.starts_with(&upto) && upto.starts_with(&prefix)) {
                return Err(ModelError::Template(
                    "the chat template is not prefix-consistent for this sample, so answers cannot be located".into(),
                ));
            }
            regions.push(prefix.len()..upto.len());
        }
        let encoding = self.encode_text(&full, false)?;
        let trained = encoding
            .get_offsets()
            .iter()
            .map(|&(start, _)| train_on_inputs || regions.iter().any(|r| r.contains(&start)))
            .collect();
        Ok((full, encoding, trained))
    }

    /// A sample's text cut into pieces that start and end on token
    /// boundaries, each with whether its tokens are trained: what an engine
    /// that takes pre-rendered segments (Axolotl's `input_output`, which
    /// tokenises each piece without special tokens) needs to train exactly
    /// the tokens [`Self::encode`] marks. [`Self::segment_ids`] checks it.
    pub fn segments(
        &self,
        sample: &Sample,
        train_on_inputs: bool,
    ) -> Result<Vec<(String, bool)>, ModelError> {
        let conv = match sample {
            Sample::Text(text) => return Ok(vec![(self.spelled_with_specials(text)?, true)]),
            Sample::Chat(conv) => conv,
        };
        let (full, encoding, trained) = self.encode_chat(conv, train_on_inputs)?;
        let mut pieces: Vec<(String, bool)> = Vec::new();
        let mut start = 0;
        for (i, (&(token_start, _), &is_trained)) in
            encoding.get_offsets().iter().zip(&trained).enumerate()
        {
            // A piece ends where the next token's training flag flips.
            if i > 0 && is_trained != trained[i - 1] {
                pieces.push((full[start..token_start].to_string(), trained[i - 1]));
                start = token_start;
            }
        }
        if let Some(&last) = trained.last() {
            pieces.push((full[start..].to_string(), last));
        }
        Ok(pieces)
    }

    /// Raw text as its tokens spell it: the special tokens the tokenizer
    /// adds around it (BOS, for Llama) written out, and the EOS after.
    fn spelled_with_specials(&self, text: &str) -> Result<String, ModelError> {
        let with = self.encode_text(text, true)?.get_ids().to_vec();
        let without = self.encode_text(text, false)?.get_ids().to_vec();
        let lead = (0..=with.len().saturating_sub(without.len()))
            .find(|&k| with[k..].starts_with(&without))
            .unwrap_or(0);
        let spell = |ids: &[u32]| -> String {
            ids.iter()
                .filter_map(|&id| self.tokenizer.id_to_token(id))
                .collect()
        };
        Ok(format!(
            "{}{text}{}{}",
            spell(&with[..lead]),
            spell(&with[lead + without.len()..]),
            self.eos_token
        ))
    }

    /// The ids pieces of text give when each is tokenised on its own
    /// without special tokens, as an engine reading [`Self::segments`] does.
    pub fn segment_ids(&self, pieces: &[(String, bool)]) -> Result<Vec<u32>, ModelError> {
        let mut ids = Vec::new();
        for (text, _) in pieces {
            ids.extend_from_slice(self.encode_text(text, false)?.get_ids());
        }
        Ok(ids)
    }

    /// Text of token ids, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }

    /// Token ids of a conversation so far, ending where the assistant's reply starts.
    pub fn prompt_ids(
        &self,
        messages: &[Message],
        tools: Option<&Value>,
    ) -> Result<Vec<u32>, ModelError> {
        let text = self.template.render(messages, tools, true)?;
        Ok(self.encode_text(&text, false)?.get_ids().to_vec())
    }

    /// Token ids of raw text, with the tokenizer's own special tokens.
    pub fn text_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.encode_text(text, true)?.get_ids().to_vec())
    }

    /// How many tokens a sample takes (cheaper than [`Self::encode`]).
    pub fn count_tokens(&self, sample: &Sample) -> Result<usize, ModelError> {
        match sample {
            Sample::Text(text) => Ok(self.encode_text(text, true)?.len() + 1),
            Sample::Chat(conv) => {
                let full = self.template.render(
                    &conv.with_system_message(),
                    conv.tools.as_ref(),
                    false,
                )?;
                Ok(self.encode_text(&full, false)?.len())
            }
        }
    }
}

/// A special token from tokenizer_config.json: a string or `{"content": ...}`.
fn special_token(config: &Value, key: &str) -> Option<String> {
    match config.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(obj) => obj.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `chat_template` is a string, or a list of named templates ("default" wins).
fn chat_template_text(config: &Value) -> Option<String> {
    match config.get("chat_template")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let named = |name: &str| {
                items
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
                    .and_then(|t| t.get("template")?.as_str())
            };
            named("default")
                .or_else(|| items.first()?.get("template")?.as_str())
                .map(str::to_string)
        }
        _ => None,
    }
}
