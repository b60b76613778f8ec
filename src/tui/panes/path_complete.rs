//! Tab completion of a path typed in a one-line input, as a shell does it:
//! one match is completed (a directory gets its `/`), several are completed
//! to their common prefix, and a Tab that adds nothing lists them; the Tabs
//! after that cycle through them.

use super::line_edit::LineEdit;
use std::path::PathBuf;

/// What the last Tabs found, kept while Tab is pressed again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathCompletion {
    /// The typed directory part (up to its last `/`) and the names in it
    /// that matched.
    cycle: Option<(String, Vec<String>)>,
    /// The name in `cycle` on show.
    next: usize,
    /// The matches to show beside the input.
    pub listing: Option<String>,
}

impl PathCompletion {
    /// Any key but Tab: the next Tab starts afresh.
    pub fn reset(&mut self) {
        *self = PathCompletion::default();
    }

    /// Tab in `line`: completes the path it holds.
    pub fn tab(&mut self, line: &mut LineEdit) {
        if let Some((dir, names)) = &self.cycle {
            line.set_text(&format!("{dir}{}", names[self.next]));
            self.next = (self.next + 1) % names.len();
            return;
        }
        let typed = line.text().to_string();
        let (dir, prefix) = typed.split_at(typed.rfind('/').map_or(0, |i| i + 1));
        let names = matches(dir, prefix);
        match names.as_slice() {
            [] => self.listing = Some(format!("nothing here starts with {prefix:?}")),
            [only] => line.set_text(&format!("{dir}{only}")),
            [first, ..] => {
                let common = names.iter().fold(first.as_str(), |common, name| {
                    &common[..common_prefix(common, name)]
                });
                if common.len() > prefix.len() {
                    line.set_text(&format!("{dir}{common}"));
                } else {
                    self.listing = Some(names.join("  "));
                    self.cycle = Some((dir.to_string(), names));
                }
            }
        }
    }
}

/// Names in the typed directory `dir` that start with `prefix`, sorted;
/// directories end in `/`. Hidden ones only when `prefix` starts with `.`.
fn matches(dir: &str, prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(on_disk(dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let wanted =
                name.starts_with(prefix) && (prefix.starts_with('.') || !name.starts_with('.'));
            // Follows links: a link to a directory completes as one.
            let is_dir = entry.path().is_dir();
            wanted.then(|| if is_dir { format!("{name}/") } else { name })
        })
        .collect();
    names.sort();
    names
}

/// The directory a typed one names (`~/` is the home directory).
fn on_disk(dir: &str) -> PathBuf {
    match (dir.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if dir.is_empty() => PathBuf::from("."),
        _ => PathBuf::from(dir),
    }
}

/// Length in bytes of the prefix `a` and `b` share (on char boundaries).
fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in ["train.jsonl", "train_small.jsonl", "eval.jsonl", ".hidden"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("runs")).unwrap();
        dir
    }

    fn typed(dir: &tempfile::TempDir, rest: &str) -> LineEdit {
        LineEdit::new(&format!("{}/{rest}", dir.path().display()))
    }

    /// Tab in `line`; the text after the folder's path.
    fn tab(
        dir: &tempfile::TempDir,
        completion: &mut PathCompletion,
        line: &mut LineEdit,
    ) -> String {
        completion.tab(line);
        let root = format!("{}/", dir.path().display());
        line.text().strip_prefix(&root).unwrap().to_string()
    }

    #[test]
    fn one_match_completes_and_a_directory_gets_its_slash() {
        let dir = folder();
        let mut completion = PathCompletion::default();
        assert_eq!(tab(&dir, &mut completion, &mut typed(&dir, "ru")), "runs/");
        let mut line = typed(&dir, "e");
        assert_eq!(tab(&dir, &mut completion, &mut line), "eval.jsonl");
        assert_eq!(line.cursor(), line.text().chars().count());
    }

    #[test]
    fn several_complete_to_their_common_prefix_then_list_then_cycle() {
        let dir = folder();
        let mut completion = PathCompletion::default();
        let mut line = typed(&dir, "tr");
        assert_eq!(tab(&dir, &mut completion, &mut line), "train");
        assert_eq!(completion.listing, None);
        let again = tab(&dir, &mut completion, &mut line);
        assert_eq!(again, "train", "nothing more in common");
        assert_eq!(
            completion.listing.as_deref(),
            Some("train.jsonl  train_small.jsonl")
        );
        let cycled: Vec<String> = (0..3)
            .map(|_| tab(&dir, &mut completion, &mut line))
            .collect();
        assert_eq!(cycled, ["train.jsonl", "train_small.jsonl", "train.jsonl"]);
        completion.reset();
        tab(&dir, &mut completion, &mut typed(&dir, ""));
        assert_eq!(
            completion.listing.as_deref(),
            Some("eval.jsonl  runs/  train.jsonl  train_small.jsonl"),
            "hidden files stay hidden"
        );
    }

    #[test]
    fn no_match_says_so_and_leaves_the_text() {
        let dir = folder();
        let mut completion = PathCompletion::default();
        assert_eq!(tab(&dir, &mut completion, &mut typed(&dir, "zz")), "zz");
        assert_eq!(
            completion.listing.as_deref(),
            Some("nothing here starts with \"zz\"")
        );
    }
}
