//! The workbench: a full-screen terminal client of the library, like the CLI.
//! Terminal events and worker reports become `Action`s, `App::update` turns
//! them into state changes and effects, and the screen is redrawn from state
//! at most ~30 times a second.

pub mod action;
pub mod app;
pub mod clipboard;
pub mod highlight;
pub mod panes;
pub mod picker;
pub mod services;
pub mod setup;
pub mod status;
pub mod terminal;
pub mod theme;
pub mod view;

use action::{Action, Effect, ModelInfo, ModelStatus};
use services::Services;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

pub use setup::UiOptions;

const FRAME: Duration = Duration::from_millis(33);
const TICK: Duration = Duration::from_millis(250);

/// Opens the workbench and runs it until the user quits.
pub fn run(options: UiOptions) -> anyhow::Result<()> {
    let start = setup::prepare(options)?;
    let (tx, rx) = mpsc::channel::<Action>();
    let services = Arc::new(start.services);
    let mut app = start.app;
    let mut guard = terminal::TerminalGuard::enter()?;
    spawn_input(tx.clone());
    forward_termination(tx.clone());
    // A hub model that is not cached yet is fetched with the gauge first
    // (the finished download loads it); anything else loads now.
    let name = services.model_name();
    if start.adapter.is_none() && picker::entries::wants_download(&name) {
        for effect in app.download_then_load(name) {
            if let Effect::Download { repo, cancel } = effect {
                spawn_download(repo, cancel, &tx);
            }
        }
    } else {
        load_model(&services, start.adapter, &tx, 1);
    }
    let mut model_generation = 1;
    let mut last_frame = Instant::now() - FRAME;
    let mut last_tick = Instant::now();
    'events: loop {
        if app.dirty && last_frame.elapsed() >= FRAME {
            guard.terminal.draw(|frame| view::render(&app, frame))?;
            app.dirty = false;
            last_frame = Instant::now();
        }
        let wait = if app.dirty {
            FRAME.saturating_sub(last_frame.elapsed())
        } else {
            TICK.saturating_sub(last_tick.elapsed())
        };
        let action = match rx.recv_timeout(wait) {
            Ok(action) => action,
            Err(RecvTimeoutError::Timeout) if last_tick.elapsed() >= TICK => {
                last_tick = Instant::now();
                Action::Tick
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let was_dirty = app.dirty;
        let effects = app.update(action);
        app.dirty |= was_dirty;
        for effect in effects {
            match effect {
                Effect::Quit => break 'events,
                Effect::Suspend => {
                    guard.suspend()?;
                    app.dirty = true;
                }
                Effect::Data(job) => panes::data::worker::run(job, &services, &tx),
                Effect::Train(job) => panes::train::worker::run(job, &services, &tx),
                Effect::Chat(job) => panes::chat::worker::run(job, &services, &tx),
                Effect::Eval(job) => panes::eval::worker::run(job, &services, &tx),
                Effect::SetAdapter(adapter) => {
                    model_generation += 1;
                    load_model(&services, adapter, &tx, model_generation);
                }
                Effect::Download { repo, cancel } => spawn_download(repo, cancel, &tx),
                Effect::LoadModel(name) => {
                    model_generation += 1;
                    replace_model(&services, name);
                    load_model(&services, None, &tx, model_generation);
                }
                Effect::Copy(text) => {
                    // The clipboard is a convenience: a terminal without
                    // OSC 52 ignores it, and a failed write loses nothing.
                    let _ = clipboard::copy(&mut std::io::stdout(), &text);
                }
                Effect::MouseCapture(on) => guard.set_mouse_capture(on)?,
                // The app routes these itself; nothing reaches here.
                Effect::Notify(_)
                | Effect::PickModel
                | Effect::ShowTab(_)
                | Effect::SendSampleToChat
                | Effect::OpenDataset(_)
                | Effect::AppendToDataset(_)
                | Effect::TokenSettings(_) => {}
            }
        }
    }
    // The note goes to the shell's screen, after the terminal is restored.
    drop(guard);
    if let Some(note) = app.exit_note {
        eprintln!("{note}");
    }
    Ok(())
}

/// Reads terminal events on their own thread so the UI loop only waits on
/// one channel.
fn spawn_input(tx: Sender<Action>) {
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            let action = match event {
                crossterm::event::Event::Key(key) => Action::Key(key),
                crossterm::event::Event::Mouse(mouse) => Action::Mouse(mouse),
                crossterm::event::Event::Paste(text) => Action::Paste(text),
                crossterm::event::Event::Resize(..) => Action::Resize,
                crossterm::event::Event::FocusGained => Action::FocusGained,
                _ => continue,
            };
            if tx.send(action).is_err() {
                break;
            }
        }
    });
}

/// SIGTERM, SIGHUP (the terminal closed) and SIGINT become an action, so
/// the loop ends and the guard restores the terminal on the way out.
fn forward_termination(tx: Sender<Action>) {
    let _ = ctrlc::set_handler(move || {
        let _ = tx.send(Action::Terminate);
    });
}

/// Loads the model (first time) or swaps its adapter, on a worker thread.
/// Generation holds a read lock, so a swap waits for running answers.
fn load_model(
    services: &Arc<Services>,
    adapter: Option<std::path::PathBuf>,
    tx: &Sender<Action>,
    generation: u64,
) {
    let services = Arc::clone(services);
    let tx = tx.clone();
    let name = services.model_name();
    let _ = tx.send(Action::Model(ModelStatus::Loading { name: name.clone() }));
    std::thread::spawn(move || {
        let ready = |adapter| {
            let precision = services
                .model
                .read()
                .ok()
                .and_then(|slot| {
                    slot.as_ref().map(|m| {
                        let device = crate::model::device::label(m.decoder.device());
                        format!("{} · {device}", m.precision())
                    })
                })
                .unwrap_or_default();
            ModelStatus::Ready(ModelInfo {
                name: name.clone(),
                adapter,
                precision,
                generation,
            })
        };
        match swap_model(&services, adapter.as_deref()) {
            Ok(()) => {
                let _ = tx.send(Action::Model(ready(adapter)));
            }
            Err(message) => {
                let base_still_loaded = adapter.is_some() && drop_adapter(&services);
                let _ = tx.send(Action::Model(ModelStatus::Failed {
                    name: name.clone(),
                    message,
                }));
                // A bad adapter leaves the base model usable: say so, so
                // the panes stop waiting for the adapter.
                if base_still_loaded {
                    let _ = tx.send(Action::Model(ready(None)));
                }
            }
        }
    });
}

/// Fetches `repo` into the hub cache on a worker, reporting progress to the
/// UI; `cancel` stops it (the part fetched stays for the next try).
fn spawn_download(repo: String, cancel: Arc<std::sync::atomic::AtomicBool>, tx: &Sender<Action>) {
    use action::DownloadReport;
    let tx = tx.clone();
    std::thread::spawn(move || {
        let result = crate::model::hub::download_model(&repo, &cancel, &mut |event| {
            let _ = tx.send(Action::Download(DownloadReport::Progress(event)));
        });
        let result = result.map_err(|e| e.to_string());
        let _ = tx.send(Action::Download(DownloadReport::Finished { repo, result }));
    });
}

/// Names another model and drops the loaded one, so the next load reads it.
fn replace_model(services: &Services, name: String) {
    if let Ok(mut current) = services.model_name.write() {
        *current = name;
    }
    if let Ok(mut slot) = services.model.write() {
        *slot = None;
    }
}

/// Detaches whatever a failed adapter load left; whether a model is loaded.
fn drop_adapter(services: &Services) -> bool {
    let Ok(mut slot) = services.model.write() else {
        return false;
    };
    match slot.as_mut() {
        Some(model) => {
            clear_adapter(model);
            true
        }
        None => false,
    }
}

fn swap_model(services: &Services, adapter: Option<&std::path::Path>) -> Result<(), String> {
    let loaded_now = {
        let slot = services
            .model
            .read()
            .map_err(|_| "model lock poisoned".to_string())?;
        slot.is_none()
    };
    if loaded_now {
        let name = services.model_name();
        let model = crate::model::Model::load(&name, &services.load_options)
            .map_err(|e| format!("loading {name}: {e}"))?;
        *services
            .model
            .write()
            .map_err(|_| "model lock poisoned".to_string())? = Some(model);
    }
    let mut slot = services
        .model
        .write()
        .map_err(|_| "model lock poisoned".to_string())?;
    let model = slot.as_mut().ok_or("no model")?;
    match adapter {
        Some(dir) => model
            .load_adapter(dir)
            .map_err(|e| format!("adapter {}: {e}", dir.display())),
        None => {
            clear_adapter(model);
            Ok(())
        }
    }
}

fn clear_adapter(model: &mut crate::model::Model) {
    crate::model::adapter::detach(&mut model.decoder);
    model.adapter = None;
}
