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
        // (path, content, whether it runs at test time)
        let cases = [
            ("tests/conftest.py", "", true),
            ("setup.py", "", true),
            ("lib/evil.pth", "import os", true),
            ("sitecustomize.py", "", true),
            ("pytest.ini", "", true),
            ("pyproject.toml", "[tool.pytest.ini_options]\n", true),
            ("setup.cfg", "[tool:pytest]\naddopts=-x\n", true),
            ("tox.ini", " [pytest]\n", true),
            ("pyproject.toml", "[project]\nname='x'\n", false),
            ("setup.cfg", "[metadata]\n", false),
            ("app/__init__.py", "", false),
            ("tests/test_main.py", "", false),
        ];
        for (path, content, runs) in cases {
            assert_eq!(runs_at_test_time(path, content).is_some(), runs, "{path}");
        }
    }
}
