//! What can go wrong in a download, each case worded as the user needs
//! it: what was refused or broke, and what to do.

use super::download::INDEX;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "model `{repo}` is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE forbids downloading it; unset HF_HUB_OFFLINE or pass a local directory"
    )]
    Offline { repo: String, cache: String },
    #[error("`{repo}`: no such model on {endpoint}{}", if *.has_token { " that this token can see" } else { " (a private repo also answers so without a token: set HF_TOKEN)" })]
    NotFound {
        repo: String,
        endpoint: String,
        has_token: bool,
    },
    #[error("`{repo}` is gated: the hub refused {file} ({status}): {hub_says} {}", if *.has_token { "The token in HF_TOKEN was sent and refused: its account has not been granted access." } else { "Ask for access on the model's hub page, then set HF_TOKEN to a token of that account (or `huggingface-cli login`)." })]
    Gated {
        repo: String,
        file: String,
        status: u16,
        hub_says: String,
        has_token: bool,
    },
    #[error("`{repo}`: the hub refused {file} ({status}): {hub_says}")]
    Refused {
        repo: String,
        file: String,
        status: u16,
        hub_says: String,
    },
    #[error(
        "`{repo}` has no safetensors weights (model.safetensors or {INDEX}){}; tunebench reads safetensors, or a GGUF file by its path",
        found_text(.found)
    )]
    NoWeights { repo: String, found: Vec<String> },
    #[error("`{repo}` has no config.json: it is not a transformers model repo")]
    NoConfig { repo: String },
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "{file}: the hub sent nothing for {secs} s (TUNEBENCH_HUB_TIMEOUT sets the limit); the part already fetched is kept and the next try resumes it"
    )]
    Stalled { file: String, secs: u64 },
    #[error(
        "{file}: the transfer broke off {attempts} times ({reason}); the part fetched is kept and the next try resumes it"
    )]
    Interrupted {
        file: String,
        attempts: usize,
        reason: String,
    },
    #[error(
        "{file}: sha256 {got} is not the hub's {expected}; the file was removed, the next try fetches it again"
    )]
    HashMismatch {
        file: String,
        expected: String,
        got: String,
    },
    #[error("{file}: download cancelled; the part fetched is kept and the next try resumes it")]
    Cancelled { file: String },
    #[error("{file}: another process is downloading it ({lock} is held)")]
    Locked { file: String, lock: String },
    #[error("{what}: {reason}")]
    Other { what: String, reason: String },
}

fn found_text(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!("; it has {}", found.join(", "))
    }
}

impl HubError {
    /// Whether trying again from where the transfer stopped may succeed.
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, HubError::Interrupted { .. })
    }
}
