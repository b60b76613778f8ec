//! The language of a project file, from its name.

/// A display name for the language of `path` ("Python", "Dockerfile", ...).
pub fn language_of(path: &str) -> &'static str {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let lower = name.to_ascii_lowercase();
    if lower == "dockerfile" || lower.starts_with("dockerfile.") || lower.ends_with(".dockerfile") {
        return "Dockerfile";
    }
    if lower == "makefile" {
        return "Makefile";
    }
    let Some((_, ext)) = lower.rsplit_once('.') else {
        return "Other";
    };
    match ext {
        "py" | "pyi" => "Python",
        "md" | "markdown" => "Markdown",
        "toml" => "TOML",
        "yml" | "yaml" => "YAML",
        "json" => "JSON",
        "txt" => "Text",
        "ini" | "cfg" | "env" | "conf" => "Config",
        "js" | "mjs" | "cjs" => "JavaScript",
        "ts" | "tsx" => "TypeScript",
        "html" | "htm" => "HTML",
        "css" => "CSS",
        "sql" => "SQL",
        "sh" | "bash" => "Shell",
        "rs" => "Rust",
        "go" => "Go",
        _ => "Other",
    }
}
