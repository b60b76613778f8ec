//! Files of a multi-file project that run code when its tests run (pytest's
//! configuration and hooks, packaging scripts, interpreter start-up hooks).
//! `data validate` lists them, since `eval --exec` runs them.

/// pytest's configuration files by its precedence, with the section that
/// makes each one count (`None`: the file counts even when empty).
pub const PYTEST_CONFIGS: [(&str, Option<&str>); 5] = [
    ("pytest.ini", None),
    (".pytest.ini", None),
    ("pyproject.toml", Some("[tool.pytest")),
    ("tox.ini", Some("[pytest]")),
    ("setup.cfg", Some("[tool:pytest]")),
];

/// Whether `content` of the file named `name` is pytest configuration.
pub fn is_pytest_config(name: &str, content: &str) -> bool {
    PYTEST_CONFIGS.iter().any(|&(config, section)| {
        config == name && section.is_none_or(|s| content.lines().any(|l| l.trim().starts_with(s)))
    })
}

/// Why the file at `path` runs code when the project's tests run, if it does.
pub fn runs_at_test_time(path: &str, content: &str) -> Option<&'static str> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    match name {
        "conftest.py" => Some("pytest imports it before any test"),
        "setup.py" => Some("packaging tools run it"),
        "sitecustomize.py" | "usercustomize.py" => Some("Python imports it at start-up"),
        _ if name.ends_with(".pth") => Some("Python runs its import lines at start-up"),
        _ if is_pytest_config(name, content) => Some("it configures pytest (plugins, options)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_and_configs_are_recognised() {
        assert!(runs_at_test_time("tests/conftest.py", "").is_some());
        assert!(runs_at_test_time("setup.py", "").is_some());
        assert!(runs_at_test_time("lib/evil.pth", "import os").is_some());
        assert!(runs_at_test_time("sitecustomize.py", "").is_some());
        assert!(runs_at_test_time("pytest.ini", "").is_some());
        assert!(runs_at_test_time("pyproject.toml", "[tool.pytest.ini_options]\n").is_some());
        assert!(runs_at_test_time("setup.cfg", "[tool:pytest]\naddopts=-x\n").is_some());
        assert!(runs_at_test_time("tox.ini", " [pytest]\n").is_some());
        assert!(runs_at_test_time("pyproject.toml", "[project]\nname='x'\n").is_none());
        assert!(runs_at_test_time("setup.cfg", "[metadata]\n").is_none());
        assert!(runs_at_test_time("app/__init__.py", "").is_none());
        assert!(runs_at_test_time("tests/test_main.py", "").is_none());
    }
}
