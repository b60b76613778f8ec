//! The Train pane: a form of the main hyperparameters with a memory and
//! time estimate, the runs in the runs directory, and live charts of the
//! run it is attached to. Training is always a child process (`tunebench
//! train`); the pane only ever reads run directories, so it follows runs
//! started from a shell just the same.
//!
//! State changes only in the handlers below; `render` draws from `&self`.

pub mod charts;
mod editing;
pub mod estimate;
pub mod fmt;
pub mod follow;
pub mod form;
pub mod launch;
mod messages;
pub mod render;
pub mod runs;
mod saved;
pub mod worker;

use crate::train::config::TrainConfig;
use crate::train::run_dir::{checkpoints, run_name};
use crate::train::run_lock::ProcessId;
use crate::tui::action::{Effect, ModelInfo, Notice, TokenSettings};
use crate::tui::app::contains;
use crate::tui::panes::{Binding, Pane, bind};
use crate::tui::theme::Theme;
use charts::ChartView;
use crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use estimate::{MeasureJob, Measured};
use form::Form;
use launch::Launch;
use ratatui::Frame;
use ratatui::layout::Rect;
use runs::{Run, Runs, Status};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the runs directory is listed again (the attached run's
/// metrics are read on every tick).
const RESCAN: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum Msg {
    /// The workbench opened another dataset: train on it.
    Dataset(PathBuf),
    /// The user chose another model: train it.
    Model(String),
    Measured(Box<Measured>),
    Launched {
        dir: PathBuf,
        process: ProcessId,
        resumed: bool,
    },
    LaunchFailed {
        dir: PathBuf,
        error: String,
    },
    /// A child we launched ended (its exit code; None when signalled).
    Exited {
        dir: PathBuf,
        pid: u32,
        code: Option<i32>,
        tail: Option<String>,
    },
    /// A stop request was sent (to this pid) or refused.
    Signalled {
        dir: PathBuf,
        result: Result<u32, String>,
    },
}

#[derive(Debug)]
pub enum Job {
    Measure(MeasureJob),
    Launch(Launch),
    /// Stop the process holding the run's lock, else `child`: a run we
    /// launched that has not taken the lock yet.
    Stop {
        dir: PathBuf,
        child: Option<ProcessId>,
    },
}

/// What the Train pane starts from.
#[derive(Debug, Clone)]
pub struct TrainSetup {
    pub runs_dir: PathBuf,
    /// Model the form's model.name starts with.
    pub model: String,
    /// Dataset the form's data.train starts with.
    pub data: PathBuf,
    /// The `--config` file the form is prefilled from.
    pub config: Option<PathBuf>,
    /// Without `--config` or a saved form: the config shipped for the
    /// built-in model (a real model starts from the defaults).
    pub sample_config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Form,
    Runs,
    Charts,
}

impl Focus {
    fn next(self, back: bool) -> Focus {
        match (self, back) {
            (Focus::Form, false) | (Focus::Charts, true) => Focus::Runs,
            (Focus::Runs, false) | (Focus::Form, true) => Focus::Charts,
            (Focus::Charts, false) | (Focus::Runs, true) => Focus::Form,
        }
    }
}

/// Where things were last drawn, for the mouse.
#[derive(Debug, Default, Clone, Copy)]
pub struct Areas {
    /// Inside the form's border; row 0 is field `form_offset`.
    pub form: Rect,
    pub form_offset: usize,
    pub runs: Rect,
    pub runs_offset: usize,
    pub charts: Rect,
    /// The grid's cells, in `ChartView::GRID` order.
    pub cells: [Rect; 6],
}

pub struct TrainPane {
    setup: TrainSetup,
    pub form: Form,
    pub runs: Runs,
    /// The run the charts follow.
    pub attached: Option<PathBuf>,
    pub focus: Focus,
    pub chart: ChartView,
    /// Children we launched that are still running, by run directory.
    launched: HashMap<PathBuf, ProcessId>,
    pub measured: Option<Measured>,
    measuring: Option<String>,
    last_scan: Option<Instant>,
    /// The form's config as last saved (or loaded), so only a change is written.
    kept_form: Option<String>,
    /// The token settings last sent to the Data tab.
    announced: Option<TokenSettings>,
    pub areas: Cell<Areas>,
}

pub const BINDINGS: &[Binding] = &[
    bind("Tab Shift+Tab", "move focus: form, runs, charts"),
    bind(
        "j k ↓ ↑",
        "next / previous field or run (a run is attached at once)",
    ),
    bind(
        "Enter",
        "edit the field (toggle / cycle for on-off and choices)",
    ),
    bind("Space ← →", "toggle or cycle an on-off or choice field"),
    bind(
        "Enter Ctrl+s Esc",
        "while editing: apply (checked) / apply / cancel (asks if changed)",
    ),
    bind(
        "O",
        "pick the model (cache, Ollama, GGUF, or a hub repo to download): the form follows",
    ),
    bind("s", "start a run with the form's settings"),
    bind("x", "stop the attached run (it saves a checkpoint first)"),
    bind("r", "resume the attached run from its last checkpoint"),
    bind("c", "charts: all six, or one large in turn"),
    bind(
        "mouse",
        "click a field or run; click a chart to enlarge; wheel moves",
    ),
];

impl TrainPane {
    pub fn new(setup: TrainSetup) -> TrainPane {
        let form = Form::new(&setup);
        let mut pane = TrainPane {
            kept_form: form.config.as_ref().ok().map(TrainConfig::to_toml),
            form,
            runs: Runs::new(setup.runs_dir.clone()),
            setup,
            attached: None,
            focus: Focus::Form,
            chart: ChartView::Grid,
            launched: HashMap::new(),
            measured: None,
            measuring: None,
            last_scan: None,
            announced: None,
            areas: Cell::new(Areas::default()),
        };
        pane.rescan();
        pane
    }

    /// Status bar text: "run NAME: step 120/810, loss 4.31" or "no run".
    pub fn run_summary(&self) -> String {
        match self.run_summary_parts() {
            Some((name, detail)) => format!("run {name}{detail}"),
            None => "no run".to_string(),
        }
    }

    /// The attached run's name and what follows it in the status bar
    /// (": step 120/810, loss 4.31 (stopped)"), so the bar can shorten the
    /// name alone; None without a run.
    pub fn run_summary_parts(&self) -> Option<(String, String)> {
        let run = self.attached_run()?;
        let m = run.metrics();
        let mut detail = match m.last {
            Some(last) => format!(": step {}, loss {:.2}", run.steps_label(), last.loss),
            None => String::new(),
        };
        if run.status != Status::Running {
            detail.push_str(&format!(" ({})", run.status.label()));
        }
        Some((run.name.clone(), detail))
    }

    pub fn attached_run(&self) -> Option<&Run> {
        let dir = self.attached.as_ref()?;
        self.runs.find(dir).map(|i| &self.runs.list[i])
    }

    fn attached_index(&self) -> Option<usize> {
        self.attached.as_ref().and_then(|d| self.runs.find(d))
    }

    /// Tokens/s measured by the newest run on `model`, and that run's name.
    pub fn measured_speed(&self, model: &str) -> Option<(f64, String)> {
        self.runs.list.iter().find_map(|run| {
            let m = run.metrics();
            (m.start.as_ref()?.model == model)
                .then(|| m.median_tok_s())
                .flatten()
                .map(|s| (s, run.name.clone()))
        })
    }

    /// The peak resident memory of the newest run on `model` that recorded
    /// one, and that run's name.
    pub fn measured_peak(&self, model: &str) -> Option<(f64, String)> {
        self.runs.list.iter().find_map(|run| {
            let m = run.metrics();
            (m.start.as_ref()?.model == model)
                .then_some(m.peak_rss)
                .flatten()
                .map(|p| (p, run.name.clone()))
        })
    }

    /// Lists the runs again; attaches to the newest when none is.
    pub fn rescan(&mut self) -> bool {
        self.last_scan = Some(Instant::now());
        let mut changed = self.runs.rescan(&self.launched);
        if self.attached_index().is_none() {
            let newest = self
                .runs
                .list
                .iter()
                .find(|r| r.status.is_live())
                .or(self.runs.list.first())
                .map(|r| r.dir.clone());
            if newest.is_some() && self.attached.is_none() {
                self.attached = newest;
                changed = true;
            }
        }
        changed
    }

    fn attach(&mut self, index: usize) {
        if let Some(run) = self.runs.list.get(index) {
            self.attached = Some(run.dir.clone());
            self.runs.poll(index, &self.launched);
        }
    }

    fn move_run(&mut self, delta: isize) {
        if self.runs.list.is_empty() {
            return;
        }
        let last = self.runs.list.len() as isize - 1;
        let at = self.attached_index().map_or(-1, |i| i as isize);
        self.attach((at + delta).clamp(0, last) as usize);
    }

    /// What the Data tab should tokenise with: the form's model, template
    /// and max_seq_len (None while the form has an error).
    pub fn token_settings(&self) -> Option<TokenSettings> {
        let config = self.form.config.as_ref().ok()?;
        Some(TokenSettings {
            model: config.model.name.clone(),
            template: config.model.template.clone(),
            max_seq_len: config.data.max_seq_len,
        })
    }

    /// Asks for the data to be measured when the form's data settings
    /// changed since the last measurement (one job at a time), and tells
    /// the Data tab when its token settings changed.
    fn measure_if_stale(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        let settings = self.token_settings();
        if settings.is_some() && settings != self.announced {
            self.announced = settings.clone();
            effects.extend(settings.map(Effect::TokenSettings));
        }
        let Ok(config) = &self.form.config else {
            return effects;
        };
        let fingerprint = estimate::fingerprint(config);
        let current = self.measured.as_ref().map(|m| &m.fingerprint);
        if current == Some(&fingerprint) || self.measuring.is_some() {
            return effects;
        }
        self.measuring = Some(fingerprint);
        effects.push(Effect::Train(Job::Measure(MeasureJob::of(config))));
        effects
    }

    fn start(&mut self) -> Vec<Effect> {
        let config = match self.form.validate() {
            Ok(config) => config,
            Err(e) => {
                self.form.error = Some(e.clone());
                self.focus = Focus::Form;
                let first = e.lines().next().unwrap_or_default().to_string();
                return vec![Notice::error(format!("cannot start: {first}"))];
            }
        };
        let name = run_name(&config.model.name, Path::new(&config.data.train));
        let run_dir = launch::new_run_dir(&self.setup.runs_dir, &name);
        let dir_name = run_dir
            .file_name()
            .map_or(name.clone(), |n| n.to_string_lossy().into_owned());
        let launch = Launch::New {
            config_file: self.setup.runs_dir.join(format!(".{dir_name}.toml")),
            config_text: self.form.base_text(),
            sets: self.form.sets(),
            run_dir,
        };
        vec![
            Effect::Train(Job::Launch(launch)),
            Notice::info(format!("starting {dir_name}…")),
        ]
    }

    fn stop(&mut self) -> Vec<Effect> {
        let Some(run) = self.attached_run() else {
            return vec![Notice::error(
                "no run attached: select one in the runs list",
            )];
        };
        if run.follower.is_trainer() {
            return vec![elsewhere(&run.name)];
        }
        // The worker finds the process by the run's lock, never by the pid
        // the start event names (it may since belong to another program).
        match run.status {
            Status::Running | Status::Starting => vec![Effect::Train(Job::Stop {
                dir: run.dir.clone(),
                child: self.launched.get(&run.dir).copied(),
            })],
            status => vec![Notice::error(format!(
                "{} is {}, not running",
                run.name,
                status.label()
            ))],
        }
    }

    fn resume(&mut self) -> Vec<Effect> {
        let Some(run) = self.attached_run() else {
            return vec![Notice::error(
                "no run attached: select one in the runs list",
            )];
        };
        if run.follower.is_trainer() {
            return vec![elsewhere(&run.name)];
        }
        if run.status.is_live() {
            return vec![Notice::error(format!("{} is already running", run.name))];
        }
        if run.status == Status::Completed {
            return vec![Notice::error(format!(
                "{} completed; start a new run to train further",
                run.name
            ))];
        }
        if checkpoints(&run.dir).is_empty() {
            return vec![Notice::error(format!(
                "{} has no checkpoint to resume from",
                run.name
            ))];
        }
        let name = run.name.clone();
        vec![
            Effect::Train(Job::Launch(Launch::Resume {
                run_dir: run.dir.clone(),
            })),
            Notice::info(format!("resuming {name}…")),
        ]
    }

    fn navigate(&mut self, delta: isize) {
        match self.focus {
            Focus::Form => self.form.move_by(delta),
            Focus::Runs => self.move_run(delta),
            Focus::Charts => self.chart = self.chart.step(delta),
        }
    }
}

impl Pane for TrainPane {
    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let mut effects = if self.form.editor.is_some() {
            self.edit_key(key)
        } else {
            match key.code {
                KeyCode::Tab => {
                    self.focus = self.focus.next(false);
                    Vec::new()
                }
                KeyCode::BackTab => {
                    self.focus = self.focus.next(true);
                    Vec::new()
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    self.navigate(1);
                    Vec::new()
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    self.navigate(-1);
                    Vec::new()
                }
                KeyCode::Enter => {
                    match self.focus {
                        Focus::Form => self.form.activate(),
                        Focus::Runs => self.focus = Focus::Charts,
                        Focus::Charts => self.chart = self.chart.toggle(),
                    }
                    Vec::new()
                }
                KeyCode::Char(' ') | KeyCode::Right if self.focus == Focus::Form => {
                    self.form.cycle(1);
                    Vec::new()
                }
                KeyCode::Left if self.focus == Focus::Form => {
                    self.form.cycle(-1);
                    Vec::new()
                }
                KeyCode::Char('s') => self.start(),
                KeyCode::Char('x') => self.stop(),
                KeyCode::Char('r') => self.resume(),
                KeyCode::Char('c') => {
                    self.chart = self.chart.step(1);
                    Vec::new()
                }
                KeyCode::Esc => {
                    self.form.error = None;
                    Vec::new()
                }
                _ => Vec::new(),
            }
        };
        effects.extend(self.keep_form());
        effects.extend(self.measure_if_stale());
        effects
    }

    fn mouse(&mut self, event: MouseEvent, _area: Rect) -> Vec<Effect> {
        let areas = self.areas.get();
        let (col, row) = (event.column, event.row);
        let wheel = match event.kind {
            MouseEventKind::ScrollDown => 1,
            MouseEventKind::ScrollUp => -1,
            _ => 0,
        };
        let clicked = matches!(event.kind, MouseEventKind::Down(MouseButton::Left));
        if contains(areas.form, col, row) {
            if self.form.editor.is_some() {
                return Vec::new();
            }
            self.focus = Focus::Form;
            if wheel != 0 {
                self.form.move_by(wheel);
            } else if clicked {
                let index = areas.form_offset + usize::from(row - areas.form.y);
                if index < form::FIELDS.len() {
                    if index == self.form.selected {
                        self.form.activate();
                    } else {
                        self.form.select(index);
                    }
                }
            }
        } else if contains(areas.runs, col, row) {
            self.focus = Focus::Runs;
            if wheel != 0 {
                self.move_run(wheel);
            } else if clicked {
                let index = areas.runs_offset + usize::from(row - areas.runs.y);
                if index < self.runs.list.len() {
                    self.attach(index);
                }
            }
        } else if contains(areas.charts, col, row) {
            self.focus = Focus::Charts;
            if wheel != 0 {
                self.chart = self.chart.step(wheel);
            } else if clicked {
                self.chart = match self.chart {
                    ChartView::Grid => areas
                        .cells
                        .iter()
                        .position(|&cell| contains(cell, col, row))
                        .map_or(ChartView::Grid, ChartView::at),
                    ChartView::One(_) => ChartView::Grid,
                };
            }
        }
        let mut effects = self.keep_form();
        effects.extend(self.measure_if_stale());
        effects
    }

    fn tick(&mut self) -> bool {
        let due = self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN);
        if due {
            self.rescan()
        } else {
            self.attached_index()
                .is_some_and(|i| self.runs.poll(i, &self.launched))
        }
    }

    fn paste(&mut self, text: &str) -> Vec<Effect> {
        self.paste_into_editor(text)
    }

    fn has_unapplied_edit(&self) -> bool {
        self.form.editor.as_ref().is_some_and(|e| e.changed())
    }

    fn model_ready(&mut self, _model: &ModelInfo) -> Vec<Effect> {
        self.measure_if_stale()
    }

    /// The estimate reads the model's files itself, so it can say what is
    /// wrong with them instead of waiting for a load that will not come.
    fn model_failed(&mut self, _name: &str, _message: &str) -> Vec<Effect> {
        self.measure_if_stale()
    }

    fn captures_input(&self) -> bool {
        self.form.editor.is_some()
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        render::render(self, frame, area, theme);
    }

    fn bindings(&self) -> &'static [Binding] {
        BINDINGS
    }

    fn hints(&self) -> &'static str {
        if self.form.editor.is_some() {
            "Enter apply  Esc cancel"
        } else {
            "Tab focus  Enter edit  s start  x stop  r resume  c charts"
        }
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests;

/// Stopping or resuming a run that another engine trains happens there.
fn elsewhere(name: &str) -> Effect {
    Notice::error(format!(
        "{name} is an HF Trainer folder (Axolotl, LLaMA-Factory, TRL): stop or resume it where it runs"
    ))
}
