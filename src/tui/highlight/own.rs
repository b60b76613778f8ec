//! Small syntaxes of our own for the files a project sample carries that
//! syntect's defaults do not know: Dockerfile, pip requirements, TOML, INI
//! (and .cfg/.conf) and .env files. Each is a list of one-line patterns
//! named with the usual TextMate scopes, so every theme colours them like
//! its other languages. Lines reach the patterns with their newline, so a
//! line's end is `(?m:$)`.

use syntect::parsing::syntax_definition::{Context, MatchOperation, MatchPattern, Pattern};
use syntect::parsing::{Scope, SyntaxDefinition, SyntaxSet, SyntaxSetBuilder};

/// A pattern: its match coloured as one scope, or its groups each as one.
enum Rule {
    Token(&'static str, &'static str),
    Groups(&'static str, &'static [(usize, &'static str)]),
}
use Rule::{Groups, Token};

struct Language {
    name: &'static str,
    /// Names syntect looks it up by (`SyntaxSet::find_syntax_by_extension`).
    extensions: &'static [&'static str],
    scope: &'static str,
    rules: &'static [Rule],
}

pub const DOCKERFILE: &str = "Dockerfile";
pub const REQUIREMENTS: &str = "pip requirements";
pub const TOML: &str = "TOML";
pub const INI: &str = "INI";
pub const DOTENV: &str = "dotenv";

const COMMENT: &str = "comment.line.number-sign";
const DOUBLE_QUOTED: Rule = Token(r#""(?:[^"\\]|\\.)*""#, "string.quoted.double");
const SINGLE_QUOTED: Rule = Token(r"'[^']*'", "string.quoted.single");
const NUMBER: Rule = Token(r"\b\d+(?:\.\d+)*\b", "constant.numeric");
const VARIABLE: Rule = Token(r"\$\{[^}\n]*\}|\$[A-Za-z_][A-Za-z0-9_]*", "variable.other");

const LANGUAGES: &[Language] = &[
    Language {
        name: DOCKERFILE,
        extensions: &["dockerfile", "containerfile"],
        scope: "source.dockerfile",
        rules: &[
            Token(r"^\s*#.*", COMMENT),
            Token(
                r"(?i)^\s*(?:FROM|RUN|CMD|LABEL|MAINTAINER|EXPOSE|ENV|ADD|COPY|ENTRYPOINT|VOLUME|USER|WORKDIR|ARG|ONBUILD|STOPSIGNAL|HEALTHCHECK|SHELL)\b",
                "keyword.other",
            ),
            // `FROM image AS stage`
            Groups(
                r"(?i)\s(AS)\s+([\w.-]+)\s*(?m:$)",
                &[(1, "keyword.other"), (2, "entity.name.label")],
            ),
            Token(r"--[A-Za-z][\w-]*", "variable.parameter"),
            DOUBLE_QUOTED,
            SINGLE_QUOTED,
            VARIABLE,
            Token(r"&&|\|\||\\(?m:$)", "keyword.operator"),
            NUMBER,
        ],
    },
    Language {
        name: REQUIREMENTS,
        extensions: &["pip-requirements"],
        scope: "source.pip-requirements",
        rules: &[
            Token(r"(?:^|\s)#.*", COMMENT),
            Token(r"^\s*--?[A-Za-z][\w-]*", "keyword.other"),
            Token(r"[A-Za-z][\w+.-]*://\S+", "string.unquoted"),
            Token(r"^\s*[A-Za-z0-9][A-Za-z0-9._-]*", "entity.name.function"),
            Token(r"\[[^\]\n]*\]", "variable.parameter"),
            Token(r"===|==|~=|!=|<=|>=|<|>|;|@", "keyword.operator"),
            Token(r"\b\d+(?:\.[0-9A-Za-z*]+)*\b", "constant.numeric"),
            DOUBLE_QUOTED,
            SINGLE_QUOTED,
        ],
    },
    Language {
        name: TOML,
        extensions: &["toml", "Pipfile"],
        scope: "source.toml",
        rules: &[
            Token(r"#.*", COMMENT),
            Token(r"^\s*\[\[?[^\]\n]*\]\]?", "entity.name.tag"),
            DOUBLE_QUOTED,
            SINGLE_QUOTED,
            Token(
                r#"^\s*(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*'))*(?=\s*=)"#,
                "entity.other.attribute-name",
            ),
            Token(r"\b(?:true|false|inf|nan)\b", "constant.language"),
            Token(
                r"[+-]?\b\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?\b|\b\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+)?(?:Z|[+-]\d{2}:\d{2})?",
                "constant.numeric",
            ),
        ],
    },
    Language {
        name: INI,
        extensions: &[
            "ini",
            "cfg",
            "conf",
            "editorconfig",
            "flake8",
            "pylintrc",
            "coveragerc",
        ],
        scope: "source.ini",
        rules: &[
            Token(r"^\s*[#;].*", COMMENT),
            Token(r"^\s*\[[^\]\n]*\]", "entity.name.tag"),
            Token(
                r"^\s*[^=:\s\[#;][^=:\n]*?(?=\s*[=:])",
                "entity.other.attribute-name",
            ),
            DOUBLE_QUOTED,
            SINGLE_QUOTED,
            Token(r"(?i)\b(?:true|false|yes|no|on|off)\b", "constant.language"),
            NUMBER,
        ],
    },
    Language {
        name: DOTENV,
        extensions: &["env"],
        scope: "source.dotenv",
        rules: &[
            Token(r"^\s*#.*", COMMENT),
            Groups(
                r"^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_.]*)(?=\s*=)",
                &[(1, "keyword.other"), (2, "variable.other.constant")],
            ),
            DOUBLE_QUOTED,
            SINGLE_QUOTED,
            VARIABLE,
            Token(r"(?i)\b(?:true|false|yes|no)\b", "constant.language"),
            NUMBER,
        ],
    },
];

/// The syntaxes above as one set.
pub fn syntax_set() -> SyntaxSet {
    let mut builder = SyntaxSetBuilder::new();
    for language in LANGUAGES {
        builder.add(definition(language));
    }
    builder.build()
}

fn scopes(names: &str) -> Vec<Scope> {
    names
        .split_whitespace()
        .map(|name| Scope::new(name).expect("scopes above are well formed"))
        .collect()
}

fn pattern(rule: &Rule, suffix: &str) -> Pattern {
    let scoped = |scope: &str| scopes(&format!("{scope}.{suffix}"));
    let (regex, scope, captures) = match rule {
        Token(regex, scope) => (regex, scoped(scope), None),
        Groups(regex, groups) => {
            let captures = groups.iter().map(|(i, s)| (*i, scoped(s))).collect();
            (regex, Vec::new(), Some(captures))
        }
    };
    Pattern::Match(MatchPattern::new(
        captures.is_some(),
        regex.to_string(),
        scope,
        captures,
        MatchOperation::None,
        None,
    ))
}

/// One context holding every pattern: syntect starts in `__start`.
fn definition(language: &Language) -> SyntaxDefinition {
    let suffix = language.scope.rsplit('.').next().unwrap_or_default();
    let mut main = Context::new(false);
    main.meta_content_scope = scopes(language.scope);
    main.patterns = language.rules.iter().map(|r| pattern(r, suffix)).collect();
    SyntaxDefinition {
        name: language.name.to_string(),
        file_extensions: language.extensions.iter().map(|e| e.to_string()).collect(),
        scope: Scope::new(language.scope).expect("scopes above are well formed"),
        first_line_match: None,
        hidden: false,
        variables: Default::default(),
        contexts: [("__start".to_string(), main)].into(),
    }
}

/// The language of files known by their name rather than their extension.
pub fn language_by_name(path: &str, file_name: &str) -> Option<&'static str> {
    let name = file_name.to_ascii_lowercase();
    let text_list = name.ends_with(".txt") || name.ends_with(".in");
    if name == "dockerfile"
        || name == "containerfile"
        || name.starts_with("dockerfile.")
        || name.ends_with(".dockerfile")
    {
        Some(DOCKERFILE)
    } else if text_list
        && (name.starts_with("requirements")
            || name.starts_with("constraints")
            || path.contains("requirements/"))
    {
        Some(REQUIREMENTS)
    } else if name == ".env" || name.starts_with(".env.") || name.ends_with(".env") {
        Some(DOTENV)
    } else {
        None
    }
}
