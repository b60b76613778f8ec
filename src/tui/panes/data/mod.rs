//! The Data pane: browse, filter, validate and edit a dataset file of any
//! size. The list reads only the rows on screen from the store; validation,
//! filtering and tokenisation run on workers over snapshots of the store
//! and report back as `Msg`s.

mod append;
mod bounds;
mod code_view;
mod conflict;
mod editor;
mod files;
mod filter;
mod findings;
mod head;
mod history;
mod journal;
mod keys;
mod list;
mod mouse;
mod record_fields;
mod render;
mod sample_lines;
mod sample_view;
mod state;
mod tokenizer;
mod tokens;
pub mod worker;
mod wrap;

#[cfg(test)]
mod code_tests;
#[cfg(test)]
mod huge_tests;
#[cfg(test)]
mod settings_tests;
#[cfg(test)]
mod tests;

pub use state::DataPane;

use crate::data::Format;
use crate::data::parse::detect_file_format;
use crate::data::sample::{Conversation, Role, Sample};
use crate::data::store::Store;
use crate::tui::action::{Effect, Exchange, ModelInfo, TokenSettings};
use crate::tui::highlight::Highlighter;
use crate::tui::panes::{Binding, Pane, bind};
use crate::tui::theme::Theme;
use crossterm::event::{KeyEvent, MouseEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;

#[derive(Debug)]
pub enum Msg {
    /// A conversation from the Chat pane (`{"messages": [...]}`) to append.
    Append(crate::tui::action::Appended),
    /// The syntect theme changed with the UI theme.
    SyntaxTheme(String),
    /// The Train form's model, template or max_seq_len: what samples are
    /// tokenised and checked with.
    Settings(TokenSettings),
    Validated {
        generation: u64,
        result: Result<Validated, String>,
    },
    Filtered(FilterBatch),
    /// Tokens per file; `None` for a file over the counting budget.
    FileTokens {
        seq: u64,
        result: Result<Vec<Option<usize>>, String>,
    },
    Tokens {
        seq: u64,
        result: Result<tokens::Tokens, String>,
    },
}

/// A whole-file validation's findings, tied to records.
#[derive(Debug)]
pub struct Validated {
    items: Vec<findings::Item>,
    formats: Vec<Format>,
    format: Option<Format>,
    /// (fingerprint, record) of every sample, for duplicates after edits.
    fingerprints: Vec<(u64, u32)>,
    /// Why the token checks were left out, when they were.
    token_error: Option<String>,
    /// The findings without the token checks, which follow.
    partial: bool,
}

/// Matches a running filter found since its last report.
#[derive(Debug)]
pub struct FilterBatch {
    id: u64,
    rows: Vec<usize>,
    scanned: usize,
    total: usize,
    done: bool,
    error: Option<String>,
}

/// A copy of the store for a worker to read.
/// Boxed: a store is large, and jobs travel by value.
pub struct Snapshot(Box<Store>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({})", self.0.path().display())
    }
}

#[derive(Debug)]
pub enum Job {
    Validate {
        generation: u64,
        store: Snapshot,
        settings: Option<TokenSettings>,
    },
    Filter {
        id: u64,
        store: Snapshot,
        criteria: filter::Criteria,
        flagged: Vec<usize>,
        cancel: Arc<AtomicU64>,
    },
    /// The files to count; `None` for one over the counting budget.
    FileTokens {
        seq: u64,
        contents: Vec<Option<String>>,
        settings: Option<TokenSettings>,
    },
    Tokens {
        seq: u64,
        sample: Sample,
        settings: Option<TokenSettings>,
    },
}

const BINDINGS: &[Binding] = &[
    bind(
        "j k ↑ ↓",
        "move in the list, between fields/files, or findings",
    ),
    bind("PgUp PgDn", "page; in the sample, scroll its content"),
    bind("h l ← →", "sample: scroll the code sideways"),
    bind("Home End G", "first / last"),
    bind("Tab Shift+Tab", "focus: list → sample → findings"),
    bind(
        "Enter",
        "list: open the sample; sample: edit; finding: jump to it",
    ),
    bind("/", "filter by text (smart case; Enter applies)"),
    bind("f", "filter by format (cycles through the file's formats)"),
    bind("s", "filter by findings: errors, then warnings and errors"),
    bind("Esc", "clear the filters"),
    bind(": g", "jump to a line of the file"),
    bind(
        "o",
        "open another dataset file (type its path; unsaved changes must be saved first)",
    ),
    bind(
        "e",
        "edit the field or file under the cursor (a list one item per line)",
    ),
    bind("E", "edit the whole record as JSON"),
    bind("a", "add a sample after this one"),
    bind("d", "duplicate the sample"),
    bind("x Delete", "delete the sample"),
    bind("u", "undo the last edit, addition or deletion"),
    bind(
        "w Ctrl+s",
        "save the file (atomically); if another program changed it, asks: reload keeping your changes, save as, or overwrite",
    ),
    bind("t", "token view under the model's chat template"),
    bind("+ -", "double / halve max_seq_len in the token view"),
    bind(
        "editor: Esc",
        "apply the edit (Ctrl+s too); Ctrl+g discards it",
    ),
    bind("mouse", "click a row, file or finding; the wheel scrolls"),
];

impl DataPane {
    pub fn open(
        path: &Path,
        highlighter: Arc<Highlighter>,
        syntax_theme: String,
    ) -> Result<DataPane, String> {
        let store = Store::open(path).map_err(|e| e.to_string())?;
        let file_format =
            detect_file_format(&store).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut pane = DataPane {
            store,
            file_format,
            formats: Format::ALL.to_vec(),
            highlighter,
            syntax_theme,
            focus: state::Focus::List,
            rows: list::Rows::All,
            list: list::Cursor::default(),
            filter: filter::FilterState::default(),
            prompt: None,
            selected: None,
            reload: false,
            seq: 0,
            findings: findings::Findings::default(),
            findings_cursor: list::Cursor::default(),
            validation: 0,
            validation_journal: journal::Journal::default(),
            editor: None,
            undo: Vec::new(),
            tokens: tokens::TokenView::default(),
            settings: None,
            model_ready: false,
            inbox: None,
            areas: Cell::new(state::Areas::default()),
            watch: conflict::Watch::default(),
        };
        pane.sync_selection();
        if let Ok(Job::Validate {
            generation, store, ..
        }) = pane.start_validation()
        {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let result = worker::validate_all(&store.0, None);
                let _ = tx.send(Msg::Validated { generation, result });
            });
            pane.inbox = Some(rx);
        }
        Ok(pane)
    }

    pub fn is_dirty(&self) -> bool {
        self.store.is_dirty()
    }

    /// Another dataset in a pane like this one (same highlighter and theme).
    pub fn open_other(&self, path: &Path) -> Result<DataPane, String> {
        DataPane::open(
            path,
            Arc::clone(&self.highlighter),
            self.syntax_theme.clone(),
        )
    }

    /// Samples in the open file, unsaved additions included.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    pub fn file_label(&self) -> String {
        let path = self.store.path();
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    pub fn save(&mut self) -> Result<(), String> {
        self.save_file().map(|_| ())
    }

    /// The selected sample for the Chat pane: the turns before its final
    /// answer, and that answer as the reference.
    pub fn selected_exchange(&self) -> Option<Exchange> {
        let sel = self.selected.as_ref()?;
        let conv = sel.sample.as_ref()?.as_chat()?;
        let answer = conv
            .messages
            .iter()
            .rposition(|m| m.role == Role::Assistant);
        let before = &conv.messages[..answer.unwrap_or(conv.messages.len())];
        if !before.iter().any(|m| m.role == Role::User) {
            return None;
        }
        let line = self.store.line(sel.record).map_or_else(
            || format!("new sample {}", sel.record + 1),
            |l| l.to_string(),
        );
        Some(Exchange {
            conversation: Conversation {
                system: conv.system.clone(),
                messages: before.to_vec(),
                tools: conv.tools.clone(),
            },
            reference: answer.map(|i| conv.messages[i].content.clone()),
            source: format!("{}:{line}", self.file_label()),
            record: sel.value.clone(),
        })
    }

    /// Runs `f` and follows the selection it may have moved.
    fn then_sync(&mut self, f: impl FnOnce(&mut Self) -> Vec<Effect>) -> Vec<Effect> {
        let mut effects = f(self);
        effects.extend(self.sync_selection());
        effects
    }
}

impl DataPane {
    /// A worker's report or a message routed from the app.
    pub fn message(&mut self, msg: Msg) -> Vec<Effect> {
        self.then_sync(|pane| pane.handle(msg))
    }
}

impl Pane for DataPane {
    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        self.then_sync(|pane| pane.on_key(key))
    }

    fn mouse(&mut self, event: MouseEvent, _area: Rect) -> Vec<Effect> {
        self.then_sync(|pane| pane.on_mouse(event))
    }

    fn tick(&mut self) -> bool {
        let Some(inbox) = &self.inbox else {
            return false;
        };
        match inbox.try_recv() {
            Ok(msg) => {
                self.inbox = None;
                // The first validation asks for nothing further.
                let _ = self.message(msg);
                true
            }
            Err(mpsc::TryRecvError::Empty) => false,
            Err(mpsc::TryRecvError::Disconnected) => {
                self.inbox = None;
                false
            }
        }
    }

    fn paste(&mut self, text: &str) -> Vec<Effect> {
        if let Some(editor) = &mut self.editor {
            editor.area.insert_str(crate::tui::panes::newlines(text));
        } else if let Some(prompt) = &mut self.prompt {
            let line = crate::tui::panes::one_line(text);
            match prompt.kind {
                state::PromptKind::Jump => {
                    let digits: String = line.chars().filter(char::is_ascii_digit).collect();
                    prompt.line.insert_str(&digits);
                }
                _ => prompt.line.insert_str(&line),
            }
        }
        Vec::new()
    }

    fn copy_text(&self) -> Option<(String, String)> {
        let (_, label, text) = self.selected.as_ref()?.edit_target()?;
        Some((label, text))
    }

    fn has_unapplied_edit(&self) -> bool {
        self.editor.as_ref().is_some_and(|e| e.changed())
    }

    fn model_ready(&mut self, _model: &ModelInfo) -> Vec<Effect> {
        self.model_ready = true;
        self.tokens.result = None;
        if let Some(sel) = &mut self.selected {
            sel.file_tokens = None;
        }
        self.token_jobs()
    }

    fn captures_input(&self) -> bool {
        self.editor.is_some() || self.prompt.is_some() || self.watch.ask.is_some()
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        render::render(self, frame, area, theme);
    }

    fn bindings(&self) -> &'static [Binding] {
        BINDINGS
    }

    fn hints(&self) -> &'static str {
        if self.editor.is_some() {
            "Esc apply  Ctrl+g discard"
        } else if self.watch.ask.is_some() {
            "answer the question above  Esc cancel"
        } else if self.prompt.is_some() {
            "Enter apply  Esc cancel"
        } else {
            "/ filter  e edit  u undo  w save  t tokens"
        }
    }
}
