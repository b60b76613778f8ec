//! The files of a multi-file sample: a tree of their paths (folders first,
//! then files, each level sorted) and the highlighted lines of the one on
//! show, computed when the choice changes, never while drawing. A huge file
//! keeps its first `FILE_BYTES`, of which the first `HIGHLIGHT_BYTES` are
//! coloured.

use super::bounds::{self, FILE_BYTES, HIGHLIGHT_BYTES, HIGHLIGHT_LINES};
use crate::tui::highlight::Highlighter;
use ratatui::text::Line;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct CodeFile {
    pub path: String,
    /// What is shown: all of it, or its first `FILE_BYTES`.
    pub content: String,
    /// The whole content's length in bytes.
    pub len: usize,
}

impl CodeFile {
    pub fn is_cut(&self) -> bool {
        self.content.len() < self.len
    }

    /// Lines of the code view: the content's, and one saying what was cut.
    pub fn view_lines(&self) -> usize {
        self.content.lines().count() + usize::from(self.is_cut())
    }
}

/// One row of the tree: a folder (no file) or a file.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRow {
    pub depth: usize,
    pub label: String,
    pub file: Option<usize>,
}

/// The `output.files` of a multi-file record, in the record's order.
pub fn code_files(value: &Value) -> Vec<CodeFile> {
    crate::data::read::code_files(value)
        .map(|files| {
            files
                .iter()
                .map(|(path, content)| {
                    let json;
                    let text = match content {
                        Value::String(s) => s,
                        other => {
                            json = other.to_string();
                            &json
                        }
                    };
                    CodeFile {
                        path: path.clone(),
                        content: bounds::cut(text, FILE_BYTES).to_string(),
                        len: text.len(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Default)]
struct Folder {
    folders: BTreeMap<String, Folder>,
    files: Vec<(String, usize)>,
}

/// The tree of `files`' paths.
pub fn tree(files: &[CodeFile]) -> Vec<TreeRow> {
    let mut root = Folder::default();
    for (i, file) in files.iter().enumerate() {
        let mut parts: Vec<&str> = file.path.split('/').filter(|p| !p.is_empty()).collect();
        let name = parts.pop().unwrap_or(file.path.as_str()).to_string();
        let mut folder = &mut root;
        for part in parts {
            folder = folder.folders.entry(part.to_string()).or_default();
        }
        folder.files.push((name, i));
    }
    let mut rows = Vec::new();
    flatten(&root, 0, &mut rows);
    rows
}

fn flatten(folder: &Folder, depth: usize, rows: &mut Vec<TreeRow>) {
    for (name, child) in &folder.folders {
        rows.push(TreeRow {
            depth,
            label: format!("{name}/"),
            file: None,
        });
        flatten(child, depth + 1, rows);
    }
    let mut files: Vec<&(String, usize)> = folder.files.iter().collect();
    files.sort();
    for (name, i) in files {
        rows.push(TreeRow {
            depth,
            label: name.clone(),
            file: Some(*i),
        });
    }
}

/// The file to show first: the first in tree order (the top of the tree
/// the user sees) with content, as an empty `__init__.py` tells nothing;
/// else the first file.
pub fn first_file(files: &[CodeFile], tree: &[TreeRow]) -> Option<usize> {
    let in_order = || tree.iter().filter_map(|r| r.file);
    in_order()
        .find(|&i| !files[i].content.trim().is_empty())
        .or_else(|| in_order().next())
}

/// The file's first lines coloured for its extension: at most
/// `HIGHLIGHT_LINES` whole lines in at most `HIGHLIGHT_BYTES` (the code view
/// draws the lines after them plain).
pub fn highlight(highlighter: &Highlighter, file: &CodeFile, theme: &str) -> Vec<Line<'static>> {
    let limit = bounds::cut(&file.content, HIGHLIGHT_BYTES);
    let whole_lines = if limit.len() < file.content.len() {
        limit.rfind('\n').map_or(0, |at| at + 1)
    } else {
        limit.len()
    };
    let head = &limit[..whole_lines];
    let end = head
        .match_indices('\n')
        .nth(HIGHLIGHT_LINES - 1)
        .map_or(head.len(), |(at, _)| at + 1);
    highlighter.highlight(&file.path, &head[..end], theme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<CodeFile> {
        list.iter()
            .map(|(path, content)| CodeFile {
                path: path.to_string(),
                content: content.to_string(),
                len: content.len(),
            })
            .collect()
    }

    #[test]
    fn the_first_file_shown_is_a_useful_one() {
        let first = |list: &[(&str, &str)]| {
            let files = files(list);
            first_file(&files, &tree(&files)).map(|i| files[i].path.clone())
        };
        // The record lists `app/__init__.py` first; the tree shows the
        // folders first, and the empty `__init__.py` is passed over.
        let app = [
            ("app/__init__.py", " \n"),
            ("app/models.py", "class M: ..."),
            ("app/main.py", "app = FastAPI()"),
            ("app/routers/__init__.py", ""),
            ("app/routers/items.py", "router = APIRouter()"),
            ("README.md", "# x"),
        ];
        assert_eq!(first(&app).as_deref(), Some("app/routers/items.py"));
        let flat = [
            ("main.py", "print()"),
            ("tests/test_x.py", "def test(): ..."),
        ];
        assert_eq!(first(&flat).as_deref(), Some("tests/test_x.py"));
        let all_empty = [("b/__init__.py", ""), ("a/__init__.py", "")];
        assert_eq!(first(&all_empty).as_deref(), Some("a/__init__.py"));
        assert_eq!(first(&[]), None);
    }

    #[test]
    fn a_huge_file_is_kept_in_part_and_coloured_in_part() {
        let code = "x = 1\n".repeat(FILE_BYTES);
        let value = serde_json::json!({"prompt": "p", "output": {"files": {"big.py": code}}});
        let file = &code_files(&value)[0];
        assert_eq!((file.content.len(), file.len), (FILE_BYTES, code.len()));
        assert_eq!(
            file.view_lines(),
            FILE_BYTES / 6 + 2,
            "lines shown, the last cut, a marker"
        );
        let lines = highlight(&Highlighter::default(), file, "base16-ocean.dark");
        assert_eq!(lines.len(), HIGHLIGHT_LINES);
        // One line longer than the colouring budget is left plain.
        let long = CodeFile {
            path: "long.py".into(),
            content: "y".repeat(HIGHLIGHT_BYTES + 1),
            len: HIGHLIGHT_BYTES + 1,
        };
        assert!(highlight(&Highlighter::default(), &long, "base16-ocean.dark").is_empty());
    }

    #[test]
    fn folders_come_first_and_nest() {
        let files: Vec<CodeFile> = ["README.md", "app/main.py", "app/db/x.py", "Dockerfile"]
            .iter()
            .map(|p| CodeFile {
                path: p.to_string(),
                content: String::new(),
                len: 0,
            })
            .collect();
        let tree = tree(&files);
        let rows: Vec<(usize, &str, Option<usize>)> = tree
            .iter()
            .map(|r| (r.depth, r.label.as_str(), r.file))
            .collect();
        assert_eq!(
            rows,
            vec![
                (0, "app/", None),
                (1, "db/", None),
                (2, "x.py", Some(2)),
                (1, "main.py", Some(1)),
                (0, "Dockerfile", Some(3)),
                (0, "README.md", Some(0)),
            ]
        );
    }
}
