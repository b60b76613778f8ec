//! Do a generated project's imports name real, declared packages? A module
//! imported with an absolute import is fine when it is in the standard
//! library, is local (a directory or `.py` file of the answer itself), or is
//! provided by a distribution the answer declares in `requirements*.txt`,
//! `pyproject.toml` (PEP 621, PEP 735 groups, Poetry) or a `Pipfile`.
//! Everything else is reported: invented, or at least undeclared.
//! `setup.py`/`setup.cfg` are not read.

use super::stdlib::is_stdlib;
use rustpython_parser::ast::{ExceptHandler, Stmt};
use std::collections::BTreeSet;

/// Distribution names (normalised as PEP 503) whose import name is not the
/// name with `-` turned into `_` (and without a `python-` prefix).
const IMPORT_NAMES: &[(&str, &[&str])] = &[
    ("argon2-cffi", &["argon2"]),
    ("attrs", &["attr", "attrs"]),
    ("beautifulsoup4", &["bs4"]),
    ("dnspython", &["dns"]),
    ("faiss-cpu", &["faiss"]),
    ("faiss-gpu", &["faiss"]),
    ("grpcio", &["grpc"]),
    ("msgpack-python", &["msgpack"]),
    ("mysqlclient", &["mysqldb"]),
    ("opencv-contrib-python", &["cv2"]),
    ("opencv-python", &["cv2"]),
    ("opencv-python-headless", &["cv2"]),
    ("pillow", &["pil"]),
    ("protobuf", &["google"]),
    ("psycopg-binary", &["psycopg"]),
    ("psycopg2-binary", &["psycopg2"]),
    ("pycryptodome", &["crypto"]),
    ("pycryptodomex", &["cryptodome"]),
    ("pyhumps", &["humps"]),
    ("pyjwt", &["jwt"]),
    ("pymongo", &["pymongo", "bson", "gridfs"]),
    ("pynacl", &["nacl"]),
    ("pyopenssl", &["openssl"]),
    ("pyserial", &["serial"]),
    ("python-json-logger", &["pythonjsonlogger"]),
    ("python-multipart", &["multipart", "python_multipart"]),
    ("pyyaml", &["yaml"]),
    ("pyzmq", &["zmq"]),
    ("ruamel-yaml", &["ruamel"]),
    ("scikit-image", &["skimage"]),
    ("scikit-learn", &["sklearn"]),
    ("setuptools", &["setuptools", "pkg_resources"]),
    ("websocket-client", &["websocket"]),
];

/// Packages a declared distribution brings in and that code commonly
/// imports directly (`from pydantic import BaseModel` with only `fastapi`).
const PROVIDES: &[(&str, &[&str])] = &[
    ("alembic", &["sqlalchemy", "mako"]),
    ("boto3", &["botocore", "s3transfer"]),
    ("celery", &["kombu", "billiard", "vine"]),
    ("django", &["asgiref", "sqlparse"]),
    (
        "fastapi",
        &[
            "starlette",
            "pydantic",
            "pydantic_core",
            "typing_extensions",
            "annotated_types",
            "anyio",
        ],
    ),
    (
        "flask",
        &[
            "werkzeug",
            "jinja2",
            "itsdangerous",
            "click",
            "markupsafe",
            "blinker",
        ],
    ),
    (
        "httpx",
        &["httpcore", "anyio", "certifi", "idna", "sniffio"],
    ),
    ("jinja2", &["markupsafe"]),
    (
        "pydantic",
        &["pydantic_core", "typing_extensions", "annotated_types"],
    ),
    ("pydantic-settings", &["pydantic", "dotenv"]),
    ("pytest", &["_pytest", "pluggy", "iniconfig"]),
    ("python-jose", &["ecdsa", "rsa", "pyasn1"]),
    (
        "requests",
        &["urllib3", "idna", "certifi", "charset_normalizer"],
    ),
    ("sqlmodel", &["sqlalchemy", "pydantic"]),
    ("starlette", &["anyio"]),
    ("uvicorn", &["click", "h11"]),
];

/// Namespace prefixes: `google-cloud-storage` provides `google`.
const NAMESPACE_PREFIXES: [&str; 3] = ["google-", "azure-", "opentelemetry-"];

/// The top-level modules of a Python file's absolute imports, in order of
/// appearance (duplicates removed); `None` when the file does not parse.
pub fn imported_modules(path: &str, source: &str) -> Option<Vec<String>> {
    use rustpython_parser::{Mode, ast::Mod, parse};
    let Ok(Mod::Module(module)) = parse(source, Mode::Module, path) else {
        return None;
    };
    let mut found = Vec::new();
    collect(&module.body, &mut found);
    let mut seen = BTreeSet::new();
    found.retain(|m| seen.insert(m.clone()));
    Some(found)
}

fn collect(body: &[Stmt], out: &mut Vec<String>) {
    let top = |name: &str| name.split('.').next().unwrap_or(name).to_string();
    for stmt in body {
        match stmt {
            Stmt::Import(s) => out.extend(s.names.iter().map(|a| top(a.name.as_str()))),
            Stmt::ImportFrom(s) => {
                let relative = s.level.as_ref().is_some_and(|l| l.to_u32() > 0);
                if let (false, Some(module)) = (relative, &s.module) {
                    out.push(top(module.as_str()));
                }
            }
            Stmt::FunctionDef(s) => collect(&s.body, out),
            Stmt::AsyncFunctionDef(s) => collect(&s.body, out),
            Stmt::ClassDef(s) => collect(&s.body, out),
            Stmt::If(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            Stmt::For(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            Stmt::AsyncFor(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            Stmt::While(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            Stmt::With(s) => collect(&s.body, out),
            Stmt::AsyncWith(s) => collect(&s.body, out),
            Stmt::Try(s) => {
                collect(&s.body, out);
                for ExceptHandler::ExceptHandler(h) in &s.handlers {
                    collect(&h.body, out);
                }
                collect(&s.orelse, out);
                collect(&s.finalbody, out);
            }
            Stmt::TryStar(s) => {
                collect(&s.body, out);
                for ExceptHandler::ExceptHandler(h) in &s.handlers {
                    collect(&h.body, out);
                }
                collect(&s.orelse, out);
                collect(&s.finalbody, out);
            }
            Stmt::Match(s) => {
                for case in &s.cases {
                    collect(&case.body, out);
                }
            }
            _ => {}
        }
    }
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalise_dist(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The (lowercase) import names a distribution makes available.
pub fn provided_imports(dist: &str) -> Vec<String> {
    let dist = normalise_dist(dist);
    let mut names = vec![dist.replace('-', "_")];
    if let Some(rest) = dist.strip_prefix("python-") {
        names.push(rest.replace('-', "_"));
    }
    for table in [IMPORT_NAMES, PROVIDES] {
        if let Some((_, extra)) = table.iter().find(|(d, _)| *d == dist) {
            names.extend(extra.iter().map(|s| s.to_string()));
        }
    }
    for prefix in NAMESPACE_PREFIXES {
        if dist.starts_with(prefix) {
            names.push(prefix.trim_end_matches('-').to_string());
        }
    }
    names
}

/// The distribution name at the start of a requirement (`uvicorn[standard]>=0.30`).
fn requirement_name(spec: &str) -> Option<&str> {
    let spec = spec.trim();
    if let Some((_, egg)) = spec.split_once("#egg=") {
        return Some(egg.split(['&', '[']).next().unwrap_or(egg)).filter(|s| !s.is_empty());
    }
    let end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    Some(&spec[..end]).filter(|s| !s.is_empty())
}

/// Distributions named in a requirements file (options and comments skipped).
fn requirements_txt(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(" #").next().unwrap_or(line).trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
                return None;
            }
            requirement_name(line).map(str::to_string)
        })
        .collect()
}

/// Distributions declared in pyproject.toml or a Pipfile.
fn toml_dependencies(text: &str) -> Vec<String> {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let specs = |value: Option<&toml::Value>, out: &mut Vec<String>| {
        for item in value.and_then(toml::Value::as_array).into_iter().flatten() {
            if let Some(name) = item.as_str().and_then(requirement_name) {
                out.push(name.to_string());
            }
        }
    };
    let keys = |value: Option<&toml::Value>, out: &mut Vec<String>| {
        for key in value
            .and_then(toml::Value::as_table)
            .into_iter()
            .flat_map(|t| t.keys())
        {
            if key != "python" {
                out.push(key.clone());
            }
        }
    };
    let get = |path: &[&str]| -> Option<&toml::Value> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(doc.get(*first)?, |v, k| v.get(k))
    };
    specs(get(&["project", "dependencies"]), &mut out);
    for table in [
        get(&["project", "optional-dependencies"]),
        get(&["dependency-groups"]),
    ] {
        for group in table
            .and_then(toml::Value::as_table)
            .into_iter()
            .flat_map(|t| t.values())
        {
            specs(Some(group), &mut out);
        }
    }
    keys(get(&["tool", "poetry", "dependencies"]), &mut out);
    keys(get(&["tool", "poetry", "dev-dependencies"]), &mut out);
    let groups = get(&["tool", "poetry", "group"]).and_then(toml::Value::as_table);
    for group in groups.into_iter().flat_map(|t| t.values()) {
        keys(group.get("dependencies"), &mut out);
    }
    keys(get(&["packages"]), &mut out);
    keys(get(&["dev-packages"]), &mut out);
    out
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Every distribution the project declares, normalised.
pub fn declared_distributions(files: &[(String, String)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, content) in files {
        let name = file_name(path).to_ascii_lowercase();
        let found = if name.starts_with("requirements") && name.ends_with(".txt") {
            requirements_txt(content)
        } else if name == "pyproject.toml" || name == "pipfile" {
            toml_dependencies(content)
        } else {
            continue;
        };
        out.extend(found.iter().map(|d| normalise_dist(d)));
    }
    out
}

/// Names a project can import from itself: every directory and `.py` stem.
fn local_modules(files: &[(String, String)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, _) in files {
        let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
        if let Some((last, dirs)) = parts.split_last() {
            out.extend(dirs.iter().map(|d| d.to_string()));
            if let Some(stem) = last.strip_suffix(".py") {
                out.insert(stem.to_string());
            }
        }
    }
    out
}

/// Imports of the Python `files` an answer wrote that are neither standard,
/// local nor declared in `project` (the answer's files with whatever project
/// they refine), with every third-party module imported: (external, invented).
pub fn check_imports(
    files: &[(String, String)],
    project: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let local = local_modules(project);
    let declared: BTreeSet<String> = declared_distributions(project)
        .iter()
        .flat_map(|d| provided_imports(d))
        .collect();
    let mut external = BTreeSet::new();
    for (path, content) in files.iter().filter(|(p, _)| p.ends_with(".py")) {
        for module in imported_modules(path, content).unwrap_or_default() {
            if !is_stdlib(&module) && !local.contains(&module) {
                external.insert(module);
            }
        }
    }
    let invented = external
        .iter()
        .filter(|m| !declared.contains(&m.to_lowercase()))
        .cloned()
        .collect();
    (external.into_iter().collect(), invented)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn finds_absolute_imports_anywhere() {
        let src = "import os, yaml.constructor\nfrom . import x\nfrom .models import M\n\
                   from jose import jwt\ntry:\n    import ujson as json\nexcept ImportError:\n    import json\n\
                   def f():\n    from PIL import Image\n";
        assert_eq!(
            imported_modules("a.py", src).unwrap(),
            ["os", "yaml", "jose", "ujson", "json", "PIL"]
        );
        assert!(imported_modules("a.py", "import (").is_none());
    }

    #[test]
    fn declared_local_and_standard_imports_pass() {
        let project = files(&[
            (
                "requirements.txt",
                "fastapi>=0.110\nuvicorn[standard]==0.30 # server\n-r dev.txt\npython-jose[cryptography]\npyyaml\nPillow\n",
            ),
            (
                "pyproject.toml",
                "[project]\nname='x'\ndependencies = ['pydantic-settings>=2', 'SQLAlchemy ; python_version>\"3\"']\n[tool.poetry.group.dev.dependencies]\nscikit-learn = '*'\n",
            ),
            ("app/__init__.py", ""),
            (
                "app/main.py",
                "import os\nfrom fastapi import FastAPI\nfrom pydantic import BaseModel\nfrom app.models import M\nimport helpers\n",
            ),
            (
                "app/helpers.py",
                "import yaml, jose, PIL, sqlalchemy, pydantic_settings, sklearn\n",
            ),
            ("tests/test_x.py", "import pytest\nimport madeup_pkg.sub\n"),
        ]);
        let (external, invented) = check_imports(&project, &project);
        assert_eq!(invented, ["madeup_pkg", "pytest"]);
        assert!(external.contains(&"fastapi".to_string()));
        assert!(!external.contains(&"app".to_string()));
    }

    #[test]
    fn names_normalise() {
        assert_eq!(normalise_dist("Python__Jose"), "python-jose");
        assert_eq!(normalise_dist("zope.Interface"), "zope-interface");
        assert!(provided_imports("python-multipart").contains(&"multipart".to_string()));
        assert!(provided_imports("google-cloud-storage").contains(&"google".to_string()));
    }
}
