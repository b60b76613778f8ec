//! The tokenizer and chat template the Data tab checks samples with: the
//! Train form's model and template (what a run would train on), loaded once
//! by a worker and shared by the jobs after it.

use crate::model::ChatTokenizer;
use crate::model::template::BuiltinTemplate;
use crate::tui::action::TokenSettings;
use std::sync::{Arc, Mutex};

type Loaded = (String, Option<String>, Arc<ChatTokenizer>);

/// The last tokenizer loaded, by model and template.
static LAST: Mutex<Option<Loaded>> = Mutex::new(None);

/// The tokenizer for `settings`, loading it when it is not the last one
/// (call from a worker: loading reads the model's files).
pub fn load(settings: &TokenSettings) -> Result<Arc<ChatTokenizer>, String> {
    let mut last = LAST
        .lock()
        .map_err(|_| "tokenizer lock poisoned".to_string())?;
    if let Some(found) = matching(last.as_ref(), settings) {
        return Ok(found);
    }
    let mut tokenizer = ChatTokenizer::load(&settings.model)
        .map_err(|e| format!("loading the tokenizer of {}: {e}", settings.model))?;
    if let Some(name) = &settings.template {
        let builtin: BuiltinTemplate = name.parse()?;
        tokenizer
            .use_builtin_template(builtin)
            .map_err(|e| e.to_string())?;
    }
    let tokenizer = Arc::new(tokenizer);
    *last = Some((
        settings.model.clone(),
        settings.template.clone(),
        Arc::clone(&tokenizer),
    ));
    Ok(tokenizer)
}

/// The tokenizer for `settings` if a worker loaded it already; never waits
/// (safe on the UI thread).
pub fn loaded(settings: &TokenSettings) -> Option<Arc<ChatTokenizer>> {
    let last = LAST.try_lock().ok()?;
    matching(last.as_ref(), settings)
}

fn matching(last: Option<&Loaded>, settings: &TokenSettings) -> Option<Arc<ChatTokenizer>> {
    let (model, template, tokenizer) = last?;
    (*model == settings.model && *template == settings.template).then(|| Arc::clone(tokenizer))
}
