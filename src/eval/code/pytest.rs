//! pytest's side of a test run: the arguments that pin it to the project
//! folder (so no configuration or conftest.py of a parent folder is ever
//! read) and the counts of its summary line.

use crate::data::validate::{PYTEST_CONFIGS, is_pytest_config};
use std::path::Path;

/// The configuration file pytest is pointed at when the project has none.
pub const GENERATED_INI: &str = "pytest.ini";

/// The project's own pytest configuration file, by pytest's precedence:
/// the first of these that holds a pytest section, `None` when none does.
pub fn project_config(files: &[(String, String)]) -> Option<&'static str> {
    PYTEST_CONFIGS.into_iter().find_map(|(name, _)| {
        let (_, content) = files
            .iter()
            .find(|(path, _)| crate::data::validate::normalise_path(path) == name)?;
        is_pytest_config(name, content).then_some(name)
    })
}

/// `-m pytest` and its arguments for a project at `dir` whose configuration
/// file is `config` (a name inside `dir`).
pub fn arguments(dir: &Path, config: &str) -> Vec<String> {
    let dir = dir.display().to_string();
    vec![
        "-m".into(),
        "pytest".into(),
        "-q".into(),
        "-p".into(),
        "no:cacheprovider".into(),
        format!("--rootdir={dir}"),
        "-c".into(),
        format!("{dir}/{config}"),
        format!("--confcutdir={dir}"),
    ]
}

/// The counts of pytest's summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
}

/// pytest's final line (`2 failed, 3 passed, 1 warning in 0.52s`, possibly
/// framed by `=`), and its counts.
pub fn summary_line(output: &str) -> Option<(&str, Counts)> {
    output.lines().rev().find_map(|raw| {
        let line = raw.trim().trim_matches('=').trim();
        let (counts_part, _) = line.rsplit_once(" in ")?;
        if counts_part == "no tests ran" {
            return Some((line, Counts::default()));
        }
        let mut counts = Counts::default();
        for item in counts_part.split(", ") {
            let (number, word) = item.split_once(' ')?;
            let n: usize = number.parse().ok()?;
            match word {
                "passed" => counts.passed = n,
                "failed" => counts.failed = n,
                "error" | "errors" => counts.errors = n,
                "skipped" => counts.skipped = n,
                "xfailed" | "xpassed" | "warning" | "warnings" | "deselected" | "rerun" => {}
                _ => return None,
            }
        }
        Some((line, counts))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        let counts = |out: &str| {
            let c = summary_line(out).unwrap().1;
            (c.passed, c.failed, c.errors, c.skipped)
        };
        let out = "....F\n=== FAILURES ===\nblah\n1 failed, 4 passed, 2 warnings in 0.52s\n";
        assert_eq!(counts(out), (4, 1, 0, 0));
        assert_eq!(
            counts("==== 3 passed, 1 skipped in 1.01s (0:00:01) ====\n"),
            (3, 0, 0, 1)
        );
        assert_eq!(counts("ERROR x\n1 error in 0.1s\n"), (0, 0, 1, 0));
        assert_eq!(counts("no tests ran in 0.01s"), (0, 0, 0, 0));
        assert!(summary_line("Traceback ... in foo\nImportError: x\n").is_none());
    }

    #[test]
    fn the_project_config_follows_pytest_precedence() {
        let file = |p: &str, c: &str| (p.to_string(), c.to_string());
        let no_section = file("pyproject.toml", "[project]\nname = \"x\"\n");
        assert_eq!(project_config(std::slice::from_ref(&no_section)), None);
        let with_section = file("setup.cfg", "[metadata]\n[tool:pytest]\naddopts = -x\n");
        assert_eq!(
            project_config(&[no_section, with_section.clone()]),
            Some("setup.cfg")
        );
        assert_eq!(
            project_config(&[with_section, file("./pytest.ini", "")]),
            Some("pytest.ini")
        );
        assert_eq!(project_config(&[file("sub/pytest.ini", "[pytest]")]), None);
        let args = arguments(Path::new("/project"), "pytest.ini");
        assert!(args.contains(&"--rootdir=/project".to_string()));
        assert!(args.contains(&"/project/pytest.ini".to_string()));
        assert!(args.contains(&"--confcutdir=/project".to_string()));
    }
}
