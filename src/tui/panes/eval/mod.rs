//! The Eval pane: the results of `tunebench eval --generate`
//! (`eval-results.jsonl`), with the aggregate figures of base and adapter,
//! the samples sorted by how much the adapter changed their score, and the
//! selected sample's base | adapter | reference answers side by side with a
//! word-level diff against the reference.
//!
//! The runs folder is rescanned every two seconds; files are read on a
//! worker. State changes only in `key`, `mouse`, `message`, `tick` and
//! `model_ready`; `render` draws from `&self`.

mod columns;
pub mod diff;
mod render;
pub mod state;
pub mod worker;

#[cfg(test)]
mod list_tests;
#[cfg(test)]
mod tests;

use crate::tui::action::{Effect, ModelInfo, Notice};
use crate::tui::app::contains;
use crate::tui::panes::{Binding, Pane, bind};
use crate::tui::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use state::{Against, Compared, Cursor, Loaded, Order, Scan, scan, sorted};
use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum Msg {
    /// Show this results file (one written with `--out`, say) and load it.
    Open(PathBuf),
    /// A load finished.
    Loaded {
        id: u64,
        path: PathBuf,
        result: Result<Box<Loaded>, String>,
    },
}

#[derive(Debug)]
pub enum Job {
    Load { id: u64, path: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Results,
    Samples,
    Columns,
}

impl Focus {
    fn next(self, forward: bool) -> Focus {
        match (self, forward) {
            (Focus::Results, true) | (Focus::Columns, false) => Focus::Samples,
            (Focus::Samples, true) | (Focus::Results, false) => Focus::Columns,
            (Focus::Columns, true) | (Focus::Samples, false) => Focus::Results,
        }
    }
}

/// Where things were last drawn, for the mouse and for paging.
#[derive(Debug, Default, Clone, Copy)]
pub struct Drawn {
    /// The rows of the results list and of the samples list.
    pub results: Rect,
    pub samples: Rect,
    /// The three columns together.
    pub columns: Rect,
    /// Lines of the longest column text, and the rows the texts get.
    pub text_lines: usize,
    pub text_height: usize,
}

const RESCAN: Duration = Duration::from_secs(2);
const WHEEL_LINES: isize = 3;

pub struct EvalPane {
    runs_dir: PathBuf,
    /// Results files named in an `Open` message (outside the runs folder).
    extra: Vec<PathBuf>,
    scan: Scan,
    last_scan: Instant,
    files: Cursor,
    loaded: Option<Loaded>,
    /// The load in flight: its id and file.
    loading: Option<(u64, PathBuf)>,
    next_id: u64,
    /// The last load's error, shown until the next load.
    error: Option<String>,
    order: Order,
    /// Positions in `loaded.samples`, in the order shown.
    rows: Vec<usize>,
    samples: Cursor,
    compared: Option<Compared>,
    against: Against,
    /// First line of the column texts shown.
    scroll: usize,
    focus: Focus,
    /// The model, for the how-to command.
    model: Option<ModelInfo>,
    drawn: Cell<Drawn>,
}

const BINDINGS: &[Binding] = &[
    bind(
        "Tab Shift+Tab",
        "focus the results files, the samples or the answers",
    ),
    bind("j k ↓ ↑", "move in the focused list; scroll the answers"),
    bind("g G Home End", "first or last row"),
    bind(
        "Enter",
        "open the results file; from the samples, go to the answers",
    ),
    bind("o", "order: adapter's worst or best samples first"),
    bind(
        "d",
        "diff the reference against the adapter or the base answer",
    ),
    bind("PgUp PgDn", "scroll the three answers a page"),
    bind("r", "rescan the runs folder and reload the open results"),
    bind(
        "mouse",
        "click selects (a selected file opens); the wheel scrolls",
    ),
];

impl EvalPane {
    pub fn new(runs_dir: PathBuf) -> EvalPane {
        let scan = scan(&runs_dir, &[]);
        EvalPane {
            runs_dir,
            extra: Vec::new(),
            scan,
            last_scan: Instant::now(),
            files: Cursor::default(),
            loaded: None,
            loading: None,
            next_id: 0,
            error: None,
            order: Order::WorstFirst,
            rows: Vec::new(),
            samples: Cursor::default(),
            compared: None,
            against: Against::Adapter,
            scroll: 0,
            focus: Focus::Results,
            model: None,
            drawn: Cell::new(Drawn::default()),
        }
    }

    /// Scans the runs folder again; returns whether the list changed. The
    /// selection stays on the same file.
    fn rescan(&mut self) -> bool {
        self.last_scan = Instant::now();
        let found = scan(&self.runs_dir, &self.extra);
        if found == self.scan {
            return false;
        }
        let selected = self
            .scan
            .files
            .get(self.files.selected)
            .map(|f| f.path.clone());
        self.scan = found;
        self.files.selected = selected
            .and_then(|p| self.scan.files.iter().position(|f| f.path == p))
            .unwrap_or(0);
        self.follow_files();
        true
    }

    fn load(&mut self, path: PathBuf) -> Vec<Effect> {
        self.next_id += 1;
        self.loading = Some((self.next_id, path.clone()));
        vec![Effect::Eval(Job::Load {
            id: self.next_id,
            path,
        })]
    }

    fn open_selected(&mut self) -> Vec<Effect> {
        match self.scan.files.get(self.files.selected) {
            Some(file) => {
                let path = file.path.clone();
                self.load(path)
            }
            None => Vec::new(),
        }
    }

    fn loaded(&mut self, path: PathBuf, result: Result<Box<Loaded>, String>) -> Vec<Effect> {
        let loaded = match result {
            Ok(loaded) => *loaded,
            Err(message) => {
                self.error = Some(message.clone());
                return vec![Notice::error(message)];
            }
        };
        self.error = None;
        // A reload keeps the sample in view; a new file starts at the top.
        let same_file = self.loaded.as_ref().is_some_and(|l| l.path == loaded.path);
        let keep = self
            .compared
            .as_ref()
            .filter(|_| same_file)
            .and_then(|c| self.loaded.as_ref()?.samples.get(c.sample))
            .map(|s| s.index);
        let notice = Notice::info(format!(
            "{} samples from {}",
            loaded.samples.len(),
            path.display()
        ));
        self.rows = sorted(&loaded.samples, self.order);
        self.samples = Cursor::default();
        if let Some(index) = keep {
            let at = self
                .rows
                .iter()
                .position(|&i| loaded.samples[i].index == index);
            self.samples.selected = at.unwrap_or(0);
        } else {
            self.focus = Focus::Samples;
            self.scroll = 0;
        }
        self.loaded = Some(loaded);
        self.follow_samples();
        // The file may have changed under the same position: diff anew.
        self.compare_selected(true);
        vec![notice]
    }

    /// Diffs the selected sample (unless it is the one diffed already).
    fn compare_selected(&mut self, force: bool) {
        let Some(loaded) = &self.loaded else {
            self.compared = None;
            return;
        };
        let sample = self.rows.get(self.samples.selected).copied();
        if !force && self.compared.as_ref().map(|c| c.sample) == sample {
            return;
        }
        self.compared = sample.and_then(|i| Compared::new(&loaded.samples, i));
        self.scroll = 0;
    }

    fn set_order(&mut self, order: Order) {
        let Some(loaded) = &self.loaded else {
            self.order = order;
            return;
        };
        let current = self.rows.get(self.samples.selected).copied();
        self.order = order;
        self.rows = sorted(&loaded.samples, order);
        self.samples.selected = current
            .and_then(|c| self.rows.iter().position(|&i| i == c))
            .unwrap_or(0);
        self.follow_samples();
    }

    /// Moves in the focused list, or scrolls the answers.
    fn step(&mut self, delta: isize, focus: Focus) {
        match focus {
            Focus::Results => {
                self.files.step(delta, self.scan.files.len());
                self.follow_files();
            }
            Focus::Samples => {
                self.samples.step(delta, self.rows.len());
                self.follow_samples();
                self.compare_selected(false);
            }
            Focus::Columns => self.scroll_by(delta),
        }
    }

    fn follow_files(&mut self) {
        let height = self.drawn.get().results.height as usize;
        self.files.follow(height, self.scan.files.len());
    }

    fn follow_samples(&mut self) {
        let height = self.drawn.get().samples.height as usize;
        self.samples.follow(height, self.rows.len());
    }

    fn scroll_by(&mut self, delta: isize) {
        let drawn = self.drawn.get();
        let max = drawn.text_lines.saturating_sub(drawn.text_height);
        self.scroll = self.scroll.saturating_add_signed(delta).min(max);
    }

    fn page(&self) -> isize {
        self.drawn.get().text_height.saturating_sub(1).max(1) as isize
    }
}

impl EvalPane {
    /// A worker's report or a message routed from the app.
    pub fn message(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Open(path) => {
                if !self.extra.contains(&path) {
                    self.extra.push(path.clone());
                }
                self.rescan();
                if let Some(at) = self.scan.files.iter().position(|f| f.path == path) {
                    self.files.selected = at;
                    self.follow_files();
                }
                self.load(path)
            }
            Msg::Loaded { id, path, result } => {
                if self.loading.as_ref().map(|(i, _)| *i) != Some(id) {
                    return Vec::new();
                }
                self.loading = None;
                self.loaded(path, result)
            }
        }
    }
}

impl Pane for EvalPane {
    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return Vec::new();
        }
        match key.code {
            KeyCode::Tab => self.focus = self.focus.next(true),
            KeyCode::BackTab => self.focus = self.focus.next(false),
            KeyCode::Char('j') | KeyCode::Down => self.step(1, self.focus),
            KeyCode::Char('k') | KeyCode::Up => self.step(-1, self.focus),
            KeyCode::Char('g') | KeyCode::Home => self.step(isize::MIN / 2, self.focus),
            KeyCode::Char('G') | KeyCode::End => self.step(isize::MAX / 2, self.focus),
            KeyCode::PageDown => self.scroll_by(self.page()),
            KeyCode::PageUp => self.scroll_by(-self.page()),
            KeyCode::Enter => match self.focus {
                Focus::Results => return self.open_selected(),
                Focus::Samples => self.focus = Focus::Columns,
                Focus::Columns => {}
            },
            KeyCode::Char('o') => self.set_order(self.order.flip()),
            KeyCode::Char('d') => {
                self.against = match self.against {
                    Against::Adapter => Against::Base,
                    Against::Base => Against::Adapter,
                }
            }
            KeyCode::Char('r') => {
                self.rescan();
                if let Some(path) = self.loaded.as_ref().map(|l| l.path.clone()) {
                    return self.load(path);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn mouse(&mut self, event: MouseEvent, _area: Rect) -> Vec<Effect> {
        let drawn = self.drawn.get();
        let (x, y) = (event.column, event.row);
        let target = if contains(drawn.results, x, y) {
            Some(Focus::Results)
        } else if contains(drawn.samples, x, y) {
            Some(Focus::Samples)
        } else if contains(drawn.columns, x, y) {
            Some(Focus::Columns)
        } else {
            None
        };
        let Some(target) = target else {
            return Vec::new();
        };
        let wheel = if target == Focus::Columns {
            WHEEL_LINES
        } else {
            1
        };
        match event.kind {
            MouseEventKind::ScrollDown => self.step(wheel, target),
            MouseEventKind::ScrollUp => self.step(-wheel, target),
            MouseEventKind::Down(MouseButton::Left) => {
                self.focus = target;
                match target {
                    Focus::Results => {
                        let row = (y - drawn.results.y) as usize;
                        let at = self
                            .files
                            .first(drawn.results.height as usize, self.scan.files.len())
                            + row;
                        if at < self.scan.files.len() {
                            if at == self.files.selected {
                                return self.open_selected();
                            }
                            self.files.selected = at;
                        }
                    }
                    Focus::Samples => {
                        let row = (y - drawn.samples.y) as usize;
                        let at = self
                            .samples
                            .first(drawn.samples.height as usize, self.rows.len())
                            + row;
                        if at < self.rows.len() {
                            self.samples.selected = at;
                            self.compare_selected(false);
                        }
                    }
                    Focus::Columns => {}
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn tick(&mut self) -> bool {
        self.last_scan.elapsed() >= RESCAN && self.rescan()
    }

    fn model_ready(&mut self, model: &ModelInfo) -> Vec<Effect> {
        self.model = Some(model.clone());
        Vec::new()
    }

    /// Coming to the tab with nothing open opens the newest results.
    fn shown(&mut self) -> Vec<Effect> {
        self.rescan();
        if self.loaded.is_some() || self.loading.is_some() {
            return Vec::new();
        }
        self.files.selected = 0;
        self.open_selected()
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        render::render(self, frame, area, theme);
    }

    fn bindings(&self) -> &'static [Binding] {
        BINDINGS
    }

    fn hints(&self) -> &'static str {
        "Tab focus · j/k move · Enter open · o order · d diff vs · PgUp/PgDn scroll"
    }
}
