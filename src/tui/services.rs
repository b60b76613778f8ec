//! What worker threads share: the one loaded model (base weights with an
//! optional adapter; both chat columns read it at once), the binary to launch
//! training with, and where runs live.

use crate::model::{LoadOptions, Model};
use std::path::PathBuf;
use std::sync::RwLock;

pub struct Services {
    /// None until the first load finishes (or when it failed).
    pub model: RwLock<Option<Model>>,
    /// The model to load; the user may name another after a failed load.
    pub model_name: RwLock<String>,
    pub load_options: LoadOptions,
    /// The `tunebench` executable that training runs are launched with.
    pub exe: PathBuf,
    pub runs_dir: PathBuf,
}

impl Services {
    pub fn model_name(&self) -> String {
        self.model_name
            .read()
            .map(|name| name.clone())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("model_name", &self.model_name())
            .field("runs_dir", &self.runs_dir)
            .finish()
    }
}
