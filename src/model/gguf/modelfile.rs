//! The Ollama `Modelfile` written beside an exported GGUF: where the
//! weights are, the prompt layout in Ollama's template language when the
//! model's chat template is one Ollama users know (ChatML, Llama 3), and the
//! tokens that end a turn.

use super::GgufFile;
use crate::model::ModelError;
use crate::model::loaded::Model;
use std::path::Path;

/// ChatML (Qwen2/2.5, SmolLM2 and others) in Ollama's template language.
const CHATML: &str = "{{- range .Messages }}<|im_start|>{{ .Role }}\n\
{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";

/// Llama 3's header layout.
const LLAMA3: &str = "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n\
{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n";

/// The Modelfile for the GGUF at `weights`, exported from `model` (`file`
/// is its source, for the chat template).
pub fn text(model: &Model, file: &GgufFile, weights: &Path) -> Result<String, ModelError> {
    let name = weights
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut text =
        format!("# `ollama create NAME -f Modelfile`, then `ollama run NAME`.\nFROM ./{name}\n");
    let template = file.string("tokenizer.chat_template")?.unwrap_or_default();
    let layout = if template.contains("<|im_start|>") {
        Some(CHATML)
    } else if template.contains("<|start_header_id|>") {
        Some(LLAMA3)
    } else {
        None
    };
    match layout {
        Some(layout) => text.push_str(&format!("TEMPLATE \"\"\"{layout}\"\"\"\n")),
        None => text
            .push_str("# No TEMPLATE: Ollama picks one from the file's tokenizer.chat_template.\n"),
    }
    for id in &model.stop_ids {
        if let Some(token) = model.tokenizer.tokenizer.id_to_token(*id) {
            text.push_str(&format!("PARAMETER stop {token:?}\n"));
        }
    }
    Ok(text)
}
