//! The workbench state and `update`, the only place it changes. Global keys
//! (tabs, help, theme, quit) are handled here; everything else goes to the
//! pane on screen. Effects between panes (a sample sent to chat, an answer
//! appended to the dataset) are routed here too, so no pane touches another.

use super::action::{Action, Effect, ModelStatus, Notice};
use super::panes::{
    Binding, Pane, bind, chat::ChatPane, data::DataPane, eval::EvalPane, train::TrainPane,
};
use super::theme::Theme;
use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;
use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Data,
    Train,
    Chat,
    Eval,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Data, Tab::Train, Tab::Chat, Tab::Eval];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Data => "Data",
            Tab::Train => "Train",
            Tab::Chat => "Chat",
            Tab::Eval => "Eval",
        }
    }
}

pub const GLOBAL_BINDINGS: &[Binding] = &[
    bind("1 2 3 4", "show the Data, Train, Chat or Eval tab"),
    bind("?", "open or close this help"),
    bind("Ctrl+t", "next colour theme"),
    bind(
        "q",
        "quit (asks first when the dataset has unsaved changes)",
    ),
    bind(
        "Ctrl+c",
        "quit from anywhere (asks first when something would be lost)",
    ),
    bind("Ctrl+z", "suspend to the shell; fg comes back"),
    bind(
        "Y",
        "copy the focused answer, file or field to the clipboard (OSC 52)",
    ),
    bind(
        "M",
        "mouse capture off / on (off: the terminal selects text)",
    ),
    bind(
        "O",
        "open the model picker: cached, Ollama and GGUF models, a path, or a hub repo to download",
    ),
    bind("mouse", "click a tab or a row; the wheel scrolls"),
    bind(
        "one-line inputs",
        "Ctrl+a/e or Home/End, ← →, Ctrl+u / Ctrl+w delete to the start / a word",
    ),
    bind(
        "Tab (a path)",
        "complete it; again: list the choices, then cycle through them",
    ),
];

/// Where things were last drawn, for mouse clicks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Layout {
    pub tabs: [Rect; 4],
    pub pane: Rect,
    /// The model's name in the status bar: a click opens the model picker.
    pub status_model: Rect,
}

pub struct App {
    pub tab: Tab,
    pub data: DataPane,
    pub train: TrainPane,
    pub chat: ChatPane,
    pub eval: EvalPane,
    pub model: ModelStatus,
    pub themes: Vec<Theme>,
    pub theme: usize,
    pub help: Option<u16>,
    pub notice: Option<Notice>,
    /// An error from something the user did, shown whole over the pane
    /// until a key or click dismisses it.
    pub error_popup: Option<String>,
    /// Quitting with unsaved changes: waiting for save / discard / cancel.
    pub confirm_quit: bool,
    /// Printed after the terminal is restored: what quitting discarded.
    pub exit_note: Option<String>,
    /// Whether the workbench takes the mouse (off: the terminal selects).
    pub mouse_capture: bool,
    /// Whether anything changed since the last frame.
    pub dirty: bool,
    pub layout: Cell<Layout>,
    /// The model picker, when open; it takes every key.
    pub picker: Option<super::picker::ModelPicker>,
    /// Where the picker's rows were drawn, for clicks.
    pub picker_layout: Cell<super::picker::render::PickerLayout>,
    /// A hub download in the background (one at a time).
    pub download: Option<super::picker::render::ActiveDownload>,
}

impl App {
    pub fn new(
        data: DataPane,
        train: TrainPane,
        chat: ChatPane,
        eval: EvalPane,
        model: ModelStatus,
        themes: Vec<Theme>,
        theme: usize,
    ) -> App {
        App {
            tab: Tab::Data,
            data,
            train,
            chat,
            eval,
            model,
            themes,
            theme,
            help: None,
            notice: None,
            error_popup: None,
            confirm_quit: false,
            exit_note: None,
            mouse_capture: true,
            dirty: true,
            layout: Cell::new(Layout::default()),
            picker: None,
            picker_layout: Cell::new(Default::default()),
            download: None,
        }
    }

    /// The pane on screen.
    pub fn screen(&self) -> &dyn Pane {
        self.pane(self.tab)
    }

    pub fn pane(&self, tab: Tab) -> &dyn Pane {
        match tab {
            Tab::Data => &self.data,
            Tab::Train => &self.train,
            Tab::Chat => &self.chat,
            Tab::Eval => &self.eval,
        }
    }

    fn screen_mut(&mut self) -> &mut dyn Pane {
        match self.tab {
            Tab::Data => &mut self.data,
            Tab::Train => &mut self.train,
            Tab::Chat => &mut self.chat,
            Tab::Eval => &mut self.eval,
        }
    }

    /// Replaces the Data tab's file (never over unsaved changes) and trains
    /// on it from now on.
    fn open_dataset(&mut self, path: std::path::PathBuf) -> Vec<Effect> {
        if self.data.is_dirty() {
            return vec![Notice::error(format!(
                "{} has unsaved changes: save (w) or undo (u) them first",
                self.data.file_label()
            ))];
        }
        match self.data.open_other(&path) {
            Ok(pane) => self.data = pane,
            Err(message) => return vec![Notice::error(message)],
        }
        let mut effects = vec![Notice::info(format!("opened {}", path.display()))];
        if let ModelStatus::Ready(info) = &self.model {
            let info = info.clone();
            effects.extend(self.data.model_ready(&info));
        }
        if let Some(settings) = self.train.token_settings() {
            effects.extend(
                self.data
                    .message(super::panes::data::Msg::Settings(settings)),
            );
        }
        effects.extend(self.train.message(super::panes::train::Msg::Dataset(path)));
        effects
    }

    /// Puts `tab` on screen; the pane may start work on being shown.
    fn show(&mut self, tab: Tab) -> Vec<Effect> {
        if self.tab == tab {
            return Vec::new();
        }
        self.tab = tab;
        self.screen_mut().shown()
    }

    fn screens_mut(&mut self) -> [&mut dyn Pane; 4] {
        [
            &mut self.data,
            &mut self.train,
            &mut self.chat,
            &mut self.eval,
        ]
    }

    pub fn theme(&self) -> &Theme {
        &self.themes[self.theme]
    }

    /// Applies one action; returns what the runtime must carry out.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        self.dirty = true;
        // Errors that answer the user (a key, a click, a model or adapter
        // they asked for) pop up; a worker's later report only sets the bar.
        let answers_user = matches!(
            action,
            Action::Key(_) | Action::Mouse(_) | Action::Model(ModelStatus::Failed { .. })
        );
        let effects = match action {
            Action::Key(key) if key.kind != KeyEventKind::Release => self.key(key),
            Action::Key(_) => {
                self.dirty = false;
                Vec::new()
            }
            // Nothing reacts to the pointer merely moving; skipping it saves a
            // redraw per motion event.
            Action::Mouse(event) if matches!(event.kind, MouseEventKind::Moved) => {
                self.dirty = false;
                Vec::new()
            }
            Action::Mouse(event) => self.mouse(event),
            Action::Paste(text) => self.paste(&text),
            Action::Resize => Vec::new(),
            Action::Terminate => {
                let lost = self.unsaved();
                self.quit_discarding(lost)
            }
            Action::Tick => {
                // Every pane follows its files, not just the one on screen.
                let changed = self.screens_mut().map(|pane| pane.tick());
                // Another program may have changed the dataset.
                let effects = self.data.watch_disk(false);
                self.dirty = changed.contains(&true) || !effects.is_empty();
                effects
            }
            Action::FocusGained => self.data.watch_disk(true),
            Action::Model(status) => {
                self.model = status;
                match &self.model {
                    ModelStatus::Ready(info) => {
                        let info = info.clone();
                        self.screens_mut()
                            .into_iter()
                            .flat_map(|pane| pane.model_ready(&info))
                            .collect()
                    }
                    ModelStatus::Failed { name, message } => {
                        let (name, message) = (name.clone(), message.clone());
                        let mut effects: Vec<Effect> = self
                            .screens_mut()
                            .into_iter()
                            .flat_map(|pane| pane.model_failed(&name, &message))
                            .collect();
                        effects.push(Notice::error(message));
                        effects
                    }
                    ModelStatus::Loading { .. } => Vec::new(),
                }
            }
            Action::Data(msg) => self.data.message(msg),
            Action::Train(msg) => self.train.message(msg),
            Action::Chat(msg) => self.chat.message(msg),
            Action::Eval(msg) => self.eval.message(msg),
            Action::Download(report) => self.download_report(report),
        };
        self.route(effects, answers_user)
    }

    /// Carries out the effects that only touch app state; returns the rest.
    fn route(&mut self, effects: Vec<Effect>, answers_user: bool) -> Vec<Effect> {
        let mut pending = effects;
        let mut out = Vec::new();
        // Routed effects can produce more; a bound keeps a cycle finite.
        for _ in 0..8 {
            if pending.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for effect in pending {
                match effect {
                    Effect::Notify(notice) => {
                        if notice.is_error && answers_user {
                            self.error_popup = Some(notice.text.clone());
                        }
                        self.notice = Some(notice);
                    }
                    Effect::ShowTab(tab) => next.extend(self.show(tab)),
                    Effect::SendSampleToChat => match self.data.selected_exchange() {
                        Some(exchange) => {
                            next.extend(
                                self.chat
                                    .message(super::panes::chat::Msg::UseSample(exchange)),
                            );
                            next.extend(self.show(Tab::Chat));
                        }
                        None => next.push(Notice::error(
                            "select a sample with a prompt in the Data tab first",
                        )),
                    },
                    Effect::OpenDataset(path) => next.extend(self.open_dataset(path)),
                    Effect::PickModel => next.extend(self.open_picker()),
                    Effect::LoadModel(name) => {
                        self.chat.stop_answers();
                        next.extend(
                            self.train
                                .message(super::panes::train::Msg::Model(name.clone())),
                        );
                        out.push(Effect::LoadModel(name));
                    }
                    Effect::AppendToDataset(appended) => {
                        next.extend(self.data.message(super::panes::data::Msg::Append(appended)));
                    }
                    Effect::TokenSettings(settings) => {
                        next.extend(
                            self.data
                                .message(super::panes::data::Msg::Settings(settings)),
                        );
                    }
                    other => out.push(other),
                }
            }
            pending = next;
        }
        out
    }

    fn pane_captures_input(&self) -> bool {
        self.screen().captures_input()
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return self.request_quit();
        }
        if ctrl && key.code == KeyCode::Char('z') {
            return vec![Effect::Suspend];
        }
        if self.confirm_quit {
            return self.answer_quit(key);
        }
        if self.error_popup.take().is_some() {
            return Vec::new();
        }
        if let Some(scroll) = self.help {
            // The screen is the pane and the tab and status rows.
            let screen_height = self.layout.get().pane.height + 2;
            let most = super::view::help_max_scroll(self, screen_height);
            let scroll = scroll.min(most);
            match key.code {
                KeyCode::Down | KeyCode::Char('j') => self.help = Some((scroll + 1).min(most)),
                KeyCode::Up | KeyCode::Char('k') => self.help = Some(scroll.saturating_sub(1)),
                KeyCode::PageDown => self.help = Some(scroll.saturating_add(10).min(most)),
                KeyCode::PageUp => self.help = Some(scroll.saturating_sub(10)),
                _ => self.help = None,
            }
            return Vec::new();
        }
        if self.picker.is_some() {
            return self.picker_key(key);
        }
        if ctrl && key.code == KeyCode::Char('t') {
            self.theme = (self.theme + 1) % self.themes.len();
            let name = self.theme().name.clone();
            let syntax = self.theme().syntax.clone();
            let mut effects = self
                .data
                .message(super::panes::data::Msg::SyntaxTheme(syntax));
            effects.push(Notice::info(format!("theme: {name}")));
            return effects;
        }
        if !self.pane_captures_input() {
            match key.code {
                KeyCode::Char('?') => {
                    self.help = Some(super::view::help_start(self, self.tab));
                    return Vec::new();
                }
                KeyCode::Char('q') => return self.request_quit(),
                KeyCode::Char('Y') => return self.copy(),
                KeyCode::Char('O') => return self.open_picker(),
                KeyCode::Char('M') => {
                    self.mouse_capture = !self.mouse_capture;
                    let said = if self.mouse_capture {
                        "mouse capture on: clicks and the wheel go to the workbench"
                    } else {
                        "mouse capture off: drag to select text; M turns it back on"
                    };
                    return vec![Effect::MouseCapture(self.mouse_capture), Notice::info(said)];
                }
                KeyCode::Char(c @ '1'..='4') => {
                    return self.show(Tab::ALL[c as usize - '1' as usize]);
                }
                _ => {}
            }
        }
        self.screen_mut().key(key)
    }

    /// `Y`: the focused answer or file to the clipboard.
    fn copy(&self) -> Vec<Effect> {
        match self.screen().copy_text() {
            Some((what, text)) => {
                let said = format!("copied {} bytes ({what})", text.len());
                vec![Effect::Copy(text), Notice::info(said)]
            }
            None => vec![Notice::info(
                "nothing to copy here: focus an answer, a file or a field",
            )],
        }
    }

    /// What quitting now would lose, one phrase each.
    pub fn unsaved(&self) -> Vec<String> {
        let mut lost = Vec::new();
        if self.data.is_dirty() {
            lost.push(format!("unsaved changes to {}", self.data.file_label()));
        }
        for tab in Tab::ALL {
            if self.pane(tab).has_unapplied_edit() {
                lost.push(format!("the text in the {} editor", tab.title()));
            }
        }
        lost
    }

    /// `q` or Ctrl+c: quits, asking first when something would be lost; a
    /// second Ctrl+c in the question quits and says what it discarded.
    fn request_quit(&mut self) -> Vec<Effect> {
        let lost = self.unsaved();
        if lost.is_empty() {
            return vec![Effect::Quit];
        }
        if !self.confirm_quit {
            self.confirm_quit = true;
            return Vec::new();
        }
        self.quit_discarding(lost)
    }

    fn quit_discarding(&mut self, lost: Vec<String>) -> Vec<Effect> {
        if !lost.is_empty() {
            self.exit_note = Some(format!(
                "tunebench: quit, discarding {}",
                lost.join(" and ")
            ));
        }
        vec![Effect::Quit]
    }

    fn answer_quit(&mut self, key: KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Char('s') | KeyCode::Char('y') if self.data.is_dirty() => {
                match self.data.save() {
                    Ok(()) => {
                        let lost = self.unsaved();
                        self.quit_discarding(lost)
                    }
                    Err(message) => {
                        self.confirm_quit = false;
                        vec![Notice::error(message)]
                    }
                }
            }
            KeyCode::Char('d') => {
                let lost = self.unsaved();
                self.quit_discarding(lost)
            }
            _ => {
                self.confirm_quit = false;
                Vec::new()
            }
        }
    }

    /// A paste goes to the pane on screen unless a popup is open.
    fn paste(&mut self, text: &str) -> Vec<Effect> {
        if self.help.is_some() || self.confirm_quit || self.error_popup.is_some() {
            return Vec::new();
        }
        if self.picker.is_some() {
            return self.picker_paste(text);
        }
        self.screen_mut().paste(text)
    }

    fn mouse(&mut self, event: MouseEvent) -> Vec<Effect> {
        let layout = self.layout.get();
        if self.error_popup.is_some() {
            if let MouseEventKind::Down(_) = event.kind {
                self.error_popup = None;
            }
            return Vec::new();
        }
        if self.help.is_some() || self.confirm_quit {
            if let MouseEventKind::Down(_) = event.kind {
                self.help = None;
            }
            return Vec::new();
        }
        if self.picker.is_some() {
            return self.picker_mouse(event);
        }
        if let MouseEventKind::Down(MouseButton::Left) = event.kind {
            if contains(layout.status_model, event.column, event.row) {
                return self.open_picker();
            }
            for (tab, rect) in Tab::ALL.iter().zip(layout.tabs) {
                if contains(rect, event.column, event.row) {
                    return self.show(*tab);
                }
            }
        }
        if !contains(layout.pane, event.column, event.row) {
            self.dirty = false;
            return Vec::new();
        }
        self.screen_mut().mouse(event, layout.pane)
    }
}

pub fn contains(rect: Rect, column: u16, row: u16) -> bool {
    column >= rect.x && column < rect.x + rect.width && row >= rect.y && row < rect.y + rect.height
}
