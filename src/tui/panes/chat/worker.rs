//! The generation thread. The columns of one send are answered together
//! under a read lock of the one shared model: each step decodes the base's
//! and the adapter's next tokens in one batch, reading the weights once for
//! both. Each column streams its text back as `Msg::Token`s, then a
//! `Msg::Done`.

use super::state::Side;
use super::{Job, Msg};
use crate::data::Message;
use crate::model::decoder::Mode;
use crate::model::generate::{GenerateParams, Generation, Request, StopReason, generate_together};
use crate::tui::action::Action;
use crate::tui::services::Services;
use serde_json::Value;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;

/// Answer a conversation in one column.
#[derive(Debug, Clone)]
pub struct Generate {
    pub column: Side,
    pub generation_id: u64,
    pub mode: Mode,
    /// System first, ending with the turn to answer.
    pub messages: Vec<Message>,
    pub tools: Option<Value>,
    pub params: GenerateParams,
    /// Shared by the columns of one send; set to stop them.
    pub cancel: Arc<AtomicBool>,
}

/// How an answer ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub tokens: usize,
    pub tokens_per_s: f64,
    pub stop: StopReason,
}

pub fn run(job: Job, services: &Arc<Services>, tx: &Sender<Action>) {
    match job {
        Job::Generate(columns) => {
            let services = Arc::clone(services);
            let tx = tx.clone();
            std::thread::spawn(move || answer(&columns, &services, &tx));
        }
    }
}

/// Answers `columns` together, reporting each column's end as it comes.
fn answer(columns: &[Generate], services: &Services, tx: &Sender<Action>) {
    let done = |job: &Generate, result: Result<Finished, String>| {
        let _ = tx.send(Action::Chat(Msg::Done {
            column: job.column,
            generation_id: job.generation_id,
            result,
        }));
    };
    let slot = services.model.read();
    let model = match slot.as_deref() {
        Ok(Some(model)) => model,
        Ok(None) | Err(_) => {
            let reason = match slot {
                Ok(_) => "the model is not loaded yet",
                Err(_) => "the model lock is poisoned",
            };
            columns.iter().for_each(|job| done(job, Err(reason.into())));
            return;
        }
    };
    let prompts: Vec<Result<Vec<u32>, String>> = columns
        .iter()
        .map(|job| {
            model
                .tokenizer
                .prompt_ids(&job.messages, job.tools.as_ref())
                .map_err(|e| format!("building the prompt: {e}"))
        })
        .collect();
    let ended: Vec<Cell<bool>> = columns.iter().map(|_| Cell::new(false)).collect();
    let mut streams: Vec<_> = columns
        .iter()
        .map(|job| {
            move |piece: &str| {
                let _ = tx.send(Action::Chat(Msg::Token {
                    column: job.column,
                    generation_id: job.generation_id,
                    text: piece.to_string(),
                }));
            }
        })
        .collect();
    let mut ends: Vec<_> = columns
        .iter()
        .zip(&ended)
        .map(|(job, ended)| {
            let done = &done;
            move |generation: &Generation| {
                ended.set(true);
                done(
                    job,
                    Ok(Finished {
                        tokens: generation.tokens.len(),
                        tokens_per_s: generation.tokens_per_s(),
                        stop: generation.stop,
                    }),
                );
            }
        })
        .collect();
    let mut requests = Vec::new();
    for (((job, prompt), on_text), on_end) in columns
        .iter()
        .zip(&prompts)
        .zip(&mut streams)
        .zip(&mut ends)
    {
        match prompt {
            // A column whose prompt cannot be built says so; the others run.
            Err(e) => done(job, Err(e.clone())),
            Ok(prompt) => requests.push(Request {
                prompt,
                params: &job.params,
                mode: job.mode,
                on_text,
                on_end: Some(on_end),
            }),
        }
    }
    if requests.is_empty() {
        return;
    }
    // The columns of one send share one cancel flag.
    if let Err(e) = generate_together(model, requests, &columns[0].cancel) {
        for ((job, prompt), ended) in columns.iter().zip(&prompts).zip(&ended) {
            if prompt.is_ok() && !ended.get() {
                done(job, Err(format!("generating: {e}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Role;
    use crate::model::sampler::SamplingParams;
    use crate::model::{LoadOptions, Model};
    use std::sync::RwLock;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Services holding the tiny model, written into a new temporary
    /// directory (returned too, so it lives as long as the test).
    fn tiny_services() -> (tempfile::TempDir, Arc<Services>) {
        let dir = tempfile::tempdir().unwrap();
        crate::model::tiny::init_tiny(dir.path(), 0, &Default::default()).unwrap();
        let model = Model::load(&dir.path().display().to_string(), &LoadOptions::default())
            .expect("tiny model loads");
        let services = Arc::new(Services {
            model: RwLock::new(Some(model)),
            model_name: RwLock::new(dir.path().display().to_string()),
            load_options: LoadOptions::default(),
            exe: std::path::PathBuf::from("tunebench"),
            runs_dir: dir.path().join("runs"),
        });
        (dir, services)
    }

    fn column(column: Side, cancel: &Arc<AtomicBool>) -> Generate {
        Generate {
            column,
            generation_id: 7,
            mode: column.mode(),
            messages: vec![Message::new(Role::User, "Write a FastAPI app")],
            tools: None,
            params: GenerateParams {
                sampling: SamplingParams::default(),
                max_new_tokens: 6,
                stop_strings: Vec::new(),
                ignore_eos: false,
            },
            cancel: Arc::clone(cancel),
        }
    }

    fn job(side: Side, cancel: &Arc<AtomicBool>) -> Job {
        Job::Generate(vec![column(side, cancel)])
    }

    /// Runs both columns at once; returns each column's streamed text and
    /// its result.
    fn both(services: &Arc<Services>) -> [(String, Finished); 2] {
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let columns = vec![column(Side::Base, &cancel), column(Side::Adapter, &cancel)];
        run(Job::Generate(columns), services, &tx);
        let mut text = [String::new(), String::new()];
        let mut done: [Option<Finished>; 2] = [None, None];
        while done.iter().any(Option::is_none) {
            let action = rx.recv_timeout(Duration::from_secs(120)).expect("a report");
            match action {
                Action::Chat(Msg::Token {
                    column,
                    generation_id,
                    text: piece,
                }) => {
                    assert_eq!(generation_id, 7);
                    text[column.index()].push_str(&piece);
                }
                Action::Chat(Msg::Done { column, result, .. }) => {
                    done[column.index()] = Some(result.expect("generation succeeds"));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let [a, b] = done.map(Option::unwrap);
        let [ta, tb] = text;
        [(ta, a), (tb, b)]
    }

    #[test]
    fn both_columns_generate_from_one_model() {
        let (dir, services) = tiny_services();
        // No adapter attached: both modes are the base model.
        let [(base, base_done), (adapted, adapted_done)] = both(&services);
        assert!(base_done.tokens > 0, "{base_done:?}");
        assert!(!base.is_empty());
        assert_eq!(base, adapted);
        assert_eq!(base_done.tokens, adapted_done.tokens);

        // A random adapter changes the adapter column; the base one stays.
        {
            let mut slot = services.model.write().unwrap();
            let model = slot.as_mut().unwrap();
            let spec = crate::model::lora::LoraSpec::all_linear(4, 8.0);
            crate::model::adapter::attach_new(&mut model.decoder, &spec, 1).unwrap();
            crate::model::adapter::randomize(&mut model.decoder, 0.5, 3).unwrap();
            model.adapter = Some((dir.path().join("random"), spec));
        }
        let [(base_again, _), (adapted_again, _)] = both(&services);
        assert_eq!(base_again, base);
        assert_ne!(adapted_again, base);
    }

    #[test]
    fn a_column_that_ends_first_reports_while_the_other_streams() {
        let (_dir, services) = tiny_services();
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let mut short = column(Side::Base, &cancel);
        short.params.max_new_tokens = 1;
        run(
            Job::Generate(vec![short, column(Side::Adapter, &cancel)]),
            &services,
            &tx,
        );
        let mut order = Vec::new();
        while order.last() != Some(&"adapter done") {
            match rx.recv_timeout(Duration::from_secs(120)).expect("a report") {
                Action::Chat(Msg::Token {
                    column: Side::Adapter,
                    ..
                }) => order.push("adapter token"),
                Action::Chat(Msg::Done { column, result, .. }) => {
                    let finished = result.expect("generation succeeds");
                    order.push(if column == Side::Base {
                        assert_eq!(finished.stop, StopReason::MaxTokens);
                        "base done"
                    } else {
                        "adapter done"
                    });
                }
                _ => {}
            }
        }
        let base_done = order.iter().position(|&e| e == "base done").unwrap();
        let last_token = order.iter().rposition(|&e| e == "adapter token").unwrap();
        assert!(base_done < last_token, "{order:?}");
    }

    #[test]
    fn a_stopped_answer_ends_at_once() {
        let (_dir, services) = tiny_services();
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(true));
        run(job(Side::Base, &cancel), &services, &tx);
        match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
            Action::Chat(Msg::Done { result, .. }) => {
                let finished = result.unwrap();
                assert_eq!(finished.stop, StopReason::Cancelled);
                assert_eq!(finished.tokens, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn no_model_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let services = Arc::new(Services {
            model: RwLock::new(None),
            model_name: RwLock::new("none".into()),
            load_options: LoadOptions::default(),
            exe: std::path::PathBuf::from("tunebench"),
            runs_dir: dir.path().to_path_buf(),
        });
        let (tx, rx) = mpsc::channel();
        run(
            job(Side::Base, &Arc::new(AtomicBool::new(false))),
            &services,
            &tx,
        );
        match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
            Action::Chat(Msg::Done { result, .. }) => {
                assert!(result.unwrap_err().contains("not loaded"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
