//! The Data pane's state and the changes every handler shares: following
//! the selection, starting and merging filters and validations, jumping to
//! a record, worker reports.

use super::bounds::TOKEN_BYTES;
use super::code_view::CodeView;
use super::editor::Editor;
use super::filter::FilterState;
use super::findings::{self, Findings};
use super::history::Op;
use super::journal::Journal;
use super::list::{Cursor, Rows};
use super::sample_view::Selected;
use super::tokens::TokenView;
use super::{FilterBatch, Job, Msg, Snapshot, Validated, append};
use crate::data::Format;
use crate::data::store::Store;
use crate::tui::action::{Effect, Notice, TokenSettings};
use crate::tui::highlight::Highlighter;
use crate::tui::panes::line_edit::LineEdit;
use crate::tui::panes::path_complete::PathCompletion;
use ratatui::layout::Rect;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    List,
    Sample,
    Findings,
}

impl Focus {
    pub fn next(self, back: bool) -> Focus {
        match (self, back) {
            (Focus::List, false) | (Focus::Findings, true) => Focus::Sample,
            (Focus::Sample, false) | (Focus::List, true) => Focus::Findings,
            (Focus::Findings, false) | (Focus::Sample, true) => Focus::List,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Filter,
    Jump,
    /// The path of another dataset to open.
    Open,
    /// Where to save the file instead (it changed on disk).
    SaveAs,
}

/// A one-line prompt under the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub line: LineEdit,
    /// Tab completion, for the prompts that take a path.
    pub completion: PathCompletion,
}

impl Prompt {
    pub fn new(kind: PromptKind, text: &str) -> Prompt {
        Prompt {
            kind,
            line: LineEdit::new(text),
            completion: PathCompletion::default(),
        }
    }

    pub fn takes_path(&self) -> bool {
        matches!(self.kind, PromptKind::Open | PromptKind::SaveAs)
    }
}

/// Where things were last drawn, for the mouse and for page sizes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Areas {
    /// Rows of the sample list.
    pub list: Rect,
    /// The sample's content (fields, code or tokens).
    pub content: Rect,
    /// The fields above a multi-file sample's files.
    pub fields: Rect,
    /// The file tree of a multi-file sample.
    pub tree: Rect,
    /// Rows of the findings list.
    pub findings: Rect,
}

pub struct DataPane {
    pub(super) store: Store,
    pub(super) file_format: Option<Format>,
    /// Formats present in the file, for the `f` cycle.
    pub(super) formats: Vec<Format>,
    pub(super) highlighter: Arc<Highlighter>,
    pub(super) syntax_theme: String,
    pub(super) focus: Focus,
    pub(super) rows: Rows,
    pub(super) list: Cursor,
    pub(super) filter: FilterState,
    pub(super) prompt: Option<Prompt>,
    pub(super) selected: Option<Selected>,
    /// The selected record changed in place: load it again.
    pub(super) reload: bool,
    /// Bumped whenever another sample (or a new version of it) is loaded;
    /// worker results for an older one are dropped.
    pub(super) seq: u64,
    pub(super) findings: Findings,
    pub(super) findings_cursor: Cursor,
    pub(super) validation: u64,
    pub(super) validation_journal: Journal,
    pub(super) editor: Option<Editor>,
    pub(super) undo: Vec<Op>,
    pub(super) tokens: TokenView,
    /// The Train form's model, template and max_seq_len, once it said.
    pub(super) settings: Option<TokenSettings>,
    pub(super) model_ready: bool,
    /// The validation started at open reports here (no channel to the
    /// runtime exists yet); `tick` empties it.
    pub(super) inbox: Option<Receiver<Msg>>,
    pub(super) areas: Cell<Areas>,
    /// Outside changes to the file, and the question a save may be waiting on.
    pub(super) watch: super::conflict::Watch,
}

impl DataPane {
    pub(super) fn record_count(&self) -> usize {
        self.store.len()
    }

    pub(super) fn visible_len(&self) -> usize {
        self.rows.len(self.store.len())
    }

    pub(super) fn current_record(&self) -> Option<usize> {
        self.rows.record(self.list.pos, self.store.len())
    }

    /// Rows of the list on screen; 0 before the first drawing.
    pub(super) fn list_height(&self) -> usize {
        self.areas.get().list.height as usize
    }

    /// Loads the sample under the cursor if it is another one (or changed);
    /// asks workers for its token counts.
    pub(super) fn sync_selection(&mut self) -> Vec<Effect> {
        let record = self.current_record();
        let same = self.selected.as_ref().map(|s| s.record) == record;
        if same && !self.reload {
            return Vec::new();
        }
        self.reload = false;
        self.seq += 1;
        let old = self.selected.take();
        self.selected = record.map(|r| {
            let mut sel = Selected::load(&self.store, r, self.file_format);
            if let Some(old) = &old {
                sel.keep_view(old);
            }
            sel
        });
        if same {
            self.rehighlight();
        } else {
            self.tokens.scroll = 0;
            self.show_file();
        }
        self.token_jobs()
    }

    /// Builds the view of the file on show (when it changes, or the theme
    /// or its text does), keeping its sideways scroll.
    pub(super) fn rehighlight(&mut self) {
        if let Some(sel) = &mut self.selected {
            let file = sel.file.and_then(|f| sel.files.get(f));
            let column = sel.code.column;
            sel.code = match file {
                Some(file) => CodeView::new(&self.highlighter, file, &self.syntax_theme),
                None => CodeView::default(),
            };
            sel.code.column = column.min(sel.code.widest);
        }
    }

    /// Builds the view of a file just put on show and scrolls to its
    /// syntax error, if it has one.
    pub(super) fn show_file(&mut self) {
        self.rehighlight();
        self.scroll_to_error();
    }

    /// Scrolls the code view to the syntax error of the file on show.
    pub(super) fn scroll_to_error(&mut self) {
        let area = self.areas.get().content;
        if let Some(sel) = &mut self.selected {
            let top = sel.scroll as usize;
            let (width, height) = (area.width as usize, area.height as usize);
            let top = sel.code.show_error(top, width, height);
            sel.scroll = top.min(u16::MAX as usize) as u16;
        }
    }

    /// Whether a tokenizer is there: the Train form's model, or the loaded one.
    pub(super) fn can_tokenise(&self) -> bool {
        self.settings.is_some() || self.model_ready
    }

    /// Tokenisation for the selected sample, when a model is there to do it:
    /// files counted in order while they fit `TOKEN_BYTES`, and the token
    /// view for a record that fits it.
    pub(super) fn token_jobs(&self) -> Vec<Effect> {
        let mut jobs = Vec::new();
        let Some(sel) = self.selected.as_ref().filter(|_| self.can_tokenise()) else {
            return jobs;
        };
        if !sel.files.is_empty() {
            let mut budget = TOKEN_BYTES;
            let contents = sel
                .files
                .iter()
                .map(|f| {
                    let fits = !f.is_cut() && f.len <= budget;
                    budget -= if fits { f.len } else { 0 };
                    fits.then(|| f.content.clone())
                })
                .collect();
            jobs.push(Effect::Data(Job::FileTokens {
                seq: self.seq,
                contents,
                settings: self.settings.clone(),
            }));
        }
        let fits = sel.bytes <= TOKEN_BYTES;
        if let (true, true, Some(sample)) = (self.tokens.on, fits, &sel.sample) {
            jobs.push(Effect::Data(Job::Tokens {
                seq: self.seq,
                sample: sample.clone(),
                settings: self.settings.clone(),
            }));
        }
        jobs
    }

    /// Applies the filter criteria: at once for none or severity only (the
    /// findings are here), else on a worker that streams the matches.
    pub(super) fn start_filter(&mut self) -> Vec<Effect> {
        let keep = self.current_record();
        let was_filtered = !matches!(self.rows, Rows::All);
        self.filter.id += 1;
        self.filter.cancel.store(self.filter.id, Ordering::Relaxed);
        self.filter.progress = None;
        let criteria = self.filter.criteria.clone();
        let flagged = criteria
            .severity
            .map(|s| self.findings.records_at_least(s))
            .unwrap_or_default();
        if criteria.is_empty() {
            self.rows = Rows::All;
        } else if criteria.text.is_empty() && criteria.format.is_none() {
            self.rows = Rows::Matches(flagged);
        } else {
            let store = match self.store.snapshot() {
                Ok(store) => store,
                Err(e) => return vec![Notice::error(format!("cannot filter: {e}"))],
            };
            self.rows = Rows::Matches(Vec::new());
            self.filter.progress = Some((0, self.store.len()));
            self.filter.journal = Journal::default();
            self.list = Cursor::default();
            return vec![Effect::Data(Job::Filter {
                id: self.filter.id,
                store: Snapshot(Box::new(store)),
                criteria,
                flagged,
                cancel: Arc::clone(&self.filter.cancel),
            })];
        }
        self.list = Cursor::default();
        if let Some(pos) = keep.and_then(|r| self.rows.position(r)) {
            self.list.set(pos, self.visible_len());
        }
        self.list.follow(self.list_height());
        // Replaces the last filter's count, which no longer holds; with no
        // filter before (a reload, say) there is no count to replace.
        let count = match criteria.is_empty() {
            true if !was_filtered => return Vec::new(),
            true => format!("filter cleared: all {} samples", self.record_count()),
            false => format!(
                "{} of {} samples match",
                self.visible_len(),
                self.record_count()
            ),
        };
        vec![Notice::info(count)]
    }

    fn on_filtered(&mut self, batch: FilterBatch) -> Vec<Effect> {
        if batch.id != self.filter.id {
            return Vec::new();
        }
        let keep = self.current_record();
        for row in batch.rows {
            if let Some(record) = self.filter.journal.map(row) {
                self.rows.include(record);
            }
        }
        if let Some(pos) = keep.and_then(|r| self.rows.position(r)) {
            self.list.pos = pos;
        }
        self.filter.progress = (!batch.done).then_some((batch.scanned, batch.total));
        match batch.error {
            Some(error) => vec![Notice::error(error)],
            None if batch.done => vec![Notice::info(format!(
                "{} of {} samples match",
                self.visible_len(),
                self.record_count()
            ))],
            None => Vec::new(),
        }
    }

    /// Validates the whole file on a worker.
    pub(super) fn start_validation(&mut self) -> Result<Job, String> {
        let store = self
            .store
            .snapshot()
            .map_err(|e| format!("cannot validate: {e}"))?;
        self.validation += 1;
        self.validation_journal = Journal::default();
        self.findings.running = true;
        Ok(Job::Validate {
            generation: self.validation,
            store: Snapshot(Box::new(store)),
            settings: self.settings.clone(),
        })
    }

    fn on_validated(&mut self, generation: u64, result: Result<Validated, String>) -> Vec<Effect> {
        if generation != self.validation {
            return Vec::new();
        }
        let validated = match result {
            Ok(v) => v,
            Err(message) => {
                self.findings.running = false;
                self.findings.ready = true;
                return vec![Notice::error(message)];
            }
        };
        // The full report of this snapshot follows a partial one: both map
        // through the same changes.
        let journal = match validated.partial {
            true => self.validation_journal.clone(),
            false => std::mem::take(&mut self.validation_journal),
        };
        let items = validated
            .items
            .into_iter()
            .filter_map(|mut item| {
                item.record = journal.map(item.record)?;
                Some(item)
            })
            .collect();
        self.findings.replace_all(items);
        self.findings.running = validated.partial;
        let fingerprints = validated
            .fingerprints
            .into_iter()
            .filter_map(|(fingerprint, record)| Some((journal.map(record as usize)?, fingerprint)));
        self.findings
            .set_fingerprints(self.store.len(), fingerprints);
        for record in journal.touched() {
            self.recheck(record);
        }
        if !validated.formats.is_empty() {
            self.formats = validated.formats;
        }
        if self.file_format.is_none() {
            self.file_format = validated.format;
        }
        let len = self.findings.len();
        self.findings_cursor.set(self.findings_cursor.pos, len);
        let mut effects: Vec<Effect> = validated
            .token_error
            .map(|e| Notice::error(format!("token checks left out: {e}")))
            .into_iter()
            .collect();
        if self.filter.criteria.severity.is_some() {
            effects.extend(self.start_filter());
        }
        effects
    }

    /// Validates record `record` again as it stands (with the token checks
    /// when the tokenizer is loaded) and finds its duplicates anew.
    pub(super) fn recheck(&mut self, record: usize) {
        let tokenizer = self
            .settings
            .as_ref()
            .and_then(|s| Some((super::tokenizer::loaded(s)?, s.max_seq_len)));
        let check = findings::check(&self.store, record, self.file_format, tokenizer);
        self.findings.set_record(record, check.findings);
        let store = &self.store;
        self.findings
            .set_fingerprint(record, check.fingerprint, |r| duplicate_source(store, r));
    }

    /// The Train form changed what samples are tokenised with: validate
    /// again with it, and show the token view as a run would cut it.
    fn use_settings(&mut self, settings: TokenSettings) -> Vec<Effect> {
        if self.settings.as_ref() == Some(&settings) {
            return Vec::new();
        }
        self.tokens.max_seq_len = settings.max_seq_len;
        self.tokens.result = None;
        self.settings = Some(settings);
        if let Some(sel) = &mut self.selected {
            sel.file_tokens = None;
        }
        let mut effects = self.token_jobs();
        match self.start_validation() {
            Ok(job) => effects.push(Effect::Data(job)),
            Err(e) => effects.push(Notice::error(e)),
        }
        effects
    }

    /// Shows record `record`, clearing a filter that hides it.
    pub(super) fn select_record(&mut self, record: usize) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.rows.position(record).is_none() {
            self.filter.criteria = Default::default();
            effects.extend(self.start_filter());
            effects.push(Notice::info("filter cleared to show the sample"));
        }
        if let Some(pos) = self.rows.position(record) {
            self.list.set(pos, self.visible_len());
            self.list.follow(self.list_height());
        }
        effects
    }

    /// Selects the record that holds 1-based `line` of the file.
    pub(super) fn jump_to_line(&mut self, line: usize) -> Vec<Effect> {
        let mut best = None;
        for i in 0..self.store.len() {
            match self.store.line(i) {
                Some(l) if l <= line => best = Some(i),
                Some(_) => break,
                None => {}
            }
        }
        match best {
            Some(record) => self.select_record(record),
            None => vec![Notice::error(format!("no sample at line {line}"))],
        }
    }

    /// Saves atomically; validates again (lines and duplicates may have moved).
    pub(super) fn save_file(&mut self) -> Result<Option<Job>, String> {
        if !self.store.is_dirty() {
            return Ok(None);
        }
        self.store
            .save()
            .map_err(|e| format!("saving failed, nothing was lost: {e}"))?;
        Ok(self.start_validation().ok())
    }

    pub(super) fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Append(value) => self.append(&value),
            Msg::SyntaxTheme(name) => {
                self.syntax_theme = name;
                self.rehighlight();
                Vec::new()
            }
            Msg::Settings(settings) => self.use_settings(settings),
            Msg::Validated { generation, result } => self.on_validated(generation, result),
            Msg::Filtered(batch) => self.on_filtered(batch),
            Msg::FileTokens { seq, result } => {
                match (&mut self.selected, result) {
                    (Some(sel), Ok(counts)) if seq == self.seq => sel.file_tokens = Some(counts),
                    (_, Err(e)) if seq == self.seq => {
                        return vec![Notice::error(format!("token counts: {e}"))];
                    }
                    _ => {}
                }
                Vec::new()
            }
            Msg::Tokens { seq, result } => {
                if seq == self.seq {
                    self.tokens.result = Some((seq, result));
                }
                Vec::new()
            }
        }
    }

    fn append(&mut self, appended: &crate::tui::action::Appended) -> Vec<Effect> {
        match append::to_record(appended, self.file_format) {
            Err(message) => vec![Notice::error(message)],
            Ok((record, notes)) => {
                let at = self.store.len();
                let text = self.store.format_record(&record);
                let mut effects = self.perform(Op::Insert { at, text });
                let format = self.file_format.map_or("chat", |f| f.name());
                let mut message = format!("appended as {format} sample {}", at + 1);
                if !notes.is_empty() {
                    message.push_str(&format!(" ({})", notes.join("; ")));
                }
                effects.push(Notice::info(message));
                effects
            }
        }
    }
}

/// How a duplicate names the record it repeats.
pub(super) fn duplicate_source(store: &crate::data::Store, record: usize) -> String {
    match store.line(record) {
        Some(line) => format!("the record at line {line}"),
        None => format!("new sample {}", record + 1),
    }
}
