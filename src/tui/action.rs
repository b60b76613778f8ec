//! What flows into `App::update` (actions) and what comes out of it
//! (effects the runtime carries out: worker jobs, quitting).

use super::panes::{chat, data, eval, train};
use crossterm::event::{KeyEvent, MouseEvent};

/// One thing that happened: a terminal event or a worker's report.
#[derive(Debug)]
pub enum Action {
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// Text the terminal pasted (bracketed paste).
    Paste(String),
    Resize,
    /// Periodic wake-up (about 4 per second) for following files.
    Tick,
    /// The terminal window got the focus back: files may have changed.
    FocusGained,
    /// SIGTERM, SIGHUP or SIGINT: leave now, restoring the terminal.
    Terminate,
    /// The model finished loading (or failed to).
    Model(ModelStatus),
    Data(data::Msg),
    Train(train::Msg),
    Chat(chat::Msg),
    Eval(eval::Msg),
    /// A hub download's progress, or its end.
    Download(DownloadReport),
}

#[derive(Debug)]
pub enum DownloadReport {
    Progress(crate::model::hub::Event),
    /// The snapshot folder, or what went wrong (cancelling included).
    Finished {
        repo: String,
        result: Result<std::path::PathBuf, String>,
    },
}

/// What `update` asks the runtime to do.
#[derive(Debug)]
pub enum Effect {
    Quit,
    /// Ctrl+z: hand the terminal back and stop until `fg`.
    Suspend,
    /// A short message for the status bar.
    Notify(Notice),
    Data(data::Job),
    Train(train::Job),
    Chat(chat::Job),
    Eval(eval::Job),
    /// Load the model anew with this adapter (None: none).
    SetAdapter(Option<std::path::PathBuf>),
    /// Load another model (a directory or hub repo id), no adapter.
    LoadModel(String),
    /// Open the model picker.
    PickModel,
    /// Fetch a repo from the hub on a worker; setting `cancel` stops it.
    Download {
        repo: String,
        cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    },
    /// Hand the chat pane the selected dataset sample ("Use sample").
    SendSampleToChat,
    /// Append a sample to the open dataset (from the chat pane).
    AppendToDataset(Appended),
    /// Open another dataset in the Data tab.
    OpenDataset(std::path::PathBuf),
    /// Show another tab.
    ShowTab(super::app::Tab),
    /// The Train form's model, template or max_seq_len changed: the Data
    /// tab checks samples against them.
    TokenSettings(TokenSettings),
    /// Put this text on the clipboard (OSC 52).
    Copy(String),
    /// Turn the terminal's mouse capture on or off.
    MouseCapture(bool),
}

/// What samples are tokenised with: the model and template a run would use,
/// and where it would cut them.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    pub model: String,
    /// A built-in prompt layout instead of the model's chat template.
    pub template: Option<String>,
    pub max_seq_len: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

impl Notice {
    pub fn info(text: impl Into<String>) -> Effect {
        Effect::Notify(Notice {
            text: text.into(),
            is_error: false,
        })
    }

    pub fn error(text: impl Into<String>) -> Effect {
        Effect::Notify(Notice {
            text: text.into(),
            is_error: true,
        })
    }
}

/// Where the shared model stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelStatus {
    Loading { name: String },
    Ready(ModelInfo),
    Failed { name: String, message: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub adapter: Option<std::path::PathBuf>,
    /// How the base's weights are held (`f32`, `bf16`, or the GGUF type
    /// its projections are kept in, `q4_1`) and where (`cpu`, `cuda:0`).
    pub precision: String,
    /// Bumped on every (re)load, so panes can drop results computed with an
    /// older model.
    pub generation: u64,
}

/// A dataset sample handed to the chat pane: the turns before the final
/// answer, and that answer as the reference to compare with.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub conversation: crate::data::Conversation,
    pub reference: Option<String>,
    /// Where it came from, e.g. "fastapi_projects.jsonl:12".
    pub source: String,
    /// The record as the file holds it, so an answer written for the same
    /// request is appended with the sample's own fields (prompt, context...).
    pub record: Option<serde_json::Value>,
}

/// An exchange from the Chat pane to append to the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The conversation, OpenAI chat style (`{"messages": [...]}`).
    pub chat: serde_json::Value,
    /// The dataset record the exchange started from (`u`), if any.
    pub origin: Option<serde_json::Value>,
}
