//! Multi-file code samples: a request answered by a whole project, given as
//! `output.files` (path -> content). They render as a chat with a
//! code-generation system prompt, the request with its technical context, and
//! the answer as one JSON object `{"files": {...}}`.

use super::fields::{Fields, join_key, wrong_type};
use crate::data::finding::{FindingKind, Problem};
use crate::data::sample::{Conversation, Message, Role};
use serde_json::{Map, Value};

pub const CODE_SYSTEM_PROMPT: &str = "You are an experienced backend engineer. \
You answer a request for software with a complete, working project: application code, \
tests, dependencies, container setup and a README. Reply with a single JSON object \
{\"files\": {\"<relative path>\": \"<file content>\"}} and nothing else.";

pub fn read(f: &mut Fields) -> Option<Conversation> {
    let prompt = f.string("prompt");
    if prompt.is_some_and(|p| p.trim().is_empty()) {
        let path = f.at("prompt");
        f.push(Problem::error(
            FindingKind::EmptyField,
            path,
            "prompt is empty",
        ));
    }
    let context = match f.obj.get("context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(ctx)) => Some(ctx),
        Some(other) => {
            let problem = wrong_type(&f.at("context"), "an object", other);
            f.push(problem);
            None
        }
    };
    let files = read_files(f)?;
    let request = render_request(prompt?, context);
    let mut answer = Map::new();
    answer.insert("files".to_string(), Value::Object(files.clone()));
    Some(Conversation {
        system: Some(CODE_SYSTEM_PROMPT.to_string()),
        messages: vec![
            Message::new(Role::User, request),
            Message::new(Role::Assistant, Value::Object(answer).to_string()),
        ],
        tools: None,
    })
}

fn read_files<'a>(f: &mut Fields<'a, '_>) -> Option<&'a Map<String, Value>> {
    let output = f.required("output")?;
    let files_path = join_key(&f.at("output"), "files");
    let files = match output.get("files") {
        Some(Value::Object(files)) => files,
        Some(other) => {
            f.push(wrong_type(
                &files_path,
                "an object of path -> content",
                other,
            ));
            return None;
        }
        None => {
            f.push(Problem::error(
                FindingKind::MissingField,
                files_path,
                "required field `files` is missing",
            ));
            return None;
        }
    };
    if files.is_empty() {
        f.push(Problem::error(
            FindingKind::EmptyFiles,
            files_path.clone(),
            "`files` is empty: the answer holds no file",
        ));
    }
    for (path, content) in files {
        if !content.is_string() {
            f.push(wrong_type(
                &join_key(&files_path, path),
                "file content as a string",
                content,
            ));
        }
    }
    Some(files)
}

/// The user turn: the request, its technical context, and what to answer with.
pub fn render_request(prompt: &str, context: Option<&Map<String, Value>>) -> String {
    let mut out = format!("## Request\n{}\n", prompt.trim_end());
    let refine = context
        .and_then(|c| c.get("task"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "refine");
    if let Some(context) = context.filter(|c| !c.is_empty()) {
        out.push_str("\n## Technical context\n");
        for (key, value) in context {
            // The task kind shapes the expected output below instead.
            if key == "task" || key == "base_id" {
                continue;
            }
            push_context_line(&mut out, key, value);
        }
    }
    out.push_str("\n## Expected output\n");
    out.push_str(if refine {
        "One JSON object {\"files\": {...}} holding only the files that are new or changed, \
         each with its full new content."
    } else {
        "One JSON object {\"files\": {...}} mapping every file path of the project to its full content."
    });
    out
}

fn push_context_line(out: &mut String, key: &str, value: &Value) {
    let label = match key {
        "domain" => "Domain".to_string(),
        "tech_stack" => "Stack".to_string(),
        "constraints" => "Constraints".to_string(),
        other => {
            let spaced = other.replace('_', " ");
            let mut chars = spaced.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    };
    match value {
        Value::Array(items) if key == "tech_stack" => {
            let names: Vec<String> = items.iter().map(plain_text).collect();
            out.push_str(&format!("- {label}: {}\n", names.join(", ")));
        }
        Value::Array(items) => {
            out.push_str(&format!("- {label}:\n"));
            for item in items {
                out.push_str(&format!("  - {}\n", plain_text(item)));
            }
        }
        other => out.push_str(&format!("- {label}: {}\n", plain_text(other))),
    }
}

fn plain_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
