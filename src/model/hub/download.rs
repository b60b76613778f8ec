//! Downloading a model repo into the Hugging Face cache with hf-hub's tokio
//! client, which writes the cache layout transformers reuses and resumes a
//! cut transfer from its last whole chunk. Around it: the file list (with
//! sizes and hashes) from the hub's model API, a watchdog that ends a
//! transfer the server stopped feeding, cancellation, retries that resume,
//! the sha256 check of every large file, and messages that say what the hub
//! refused and why.

use super::cache;
use super::counter::Counter;
use super::failure::HubError;
use crate::model::weights::shard_names;
use hf_hub::api::tokio::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Files a model directory may hold besides its weights; config.json is the
/// one a model cannot do without.
pub const SMALL_FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
];
pub(super) const INDEX: &str = "model.safetensors.index.json";
const SINGLE: &str = "model.safetensors";

/// A cut transfer resumes from the last whole chunk of this size.
const CHUNK_BYTES: usize = 10_000_000;
/// Attempts after the first for a transfer that broke off.
const RETRIES: usize = 3;
/// How often the watchdog looks and progress is reported.
const TICK: Duration = Duration::from_millis(100);
const DEFAULT_STALL_SECS: u64 = 30;
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to download, from the environment huggingface_hub reads.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub endpoint: String,
    token: Option<String>,
    pub cache: PathBuf,
    /// A transfer that receives nothing for this long is given up.
    pub stall: Duration,
    pub offline: bool,
}

impl HubSettings {
    /// `HF_ENDPOINT`, `HF_TOKEN` (else the token file `huggingface-cli
    /// login` writes), the cache of [`cache::cache_dir`], `HF_HUB_OFFLINE`
    /// and `TUNEBENCH_HUB_TIMEOUT` (seconds without data, default 30).
    pub fn from_env() -> HubSettings {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let stall = std::env::var("TUNEBENCH_HUB_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(
                Duration::from_secs(DEFAULT_STALL_SECS),
                Duration::from_secs_f64,
            );
        HubSettings {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: token_from_env(),
            cache: cache::cache_dir(),
            stall,
            offline: offline(),
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }
}

/// Whether `HF_HUB_OFFLINE` forbids requests.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

fn token_from_env() -> Option<String> {
    let from_var = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|t| !t.trim().is_empty()));
    if from_var.is_some() {
        return from_var.map(|t| t.trim().to_string());
    }
    let file = match std::env::var_os("HF_TOKEN_PATH") {
        Some(path) => PathBuf::from(path),
        None => cache::cache_dir()
            .parent()
            .map_or_else(|| PathBuf::from("token"), |home| home.join("token")),
    };
    std::fs::read_to_string(file)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// What a download reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The files it will fetch, with their sizes where the hub gave them.
    Planned { files: Vec<(String, Option<u64>)> },
    /// Bytes of `file` on disk so far (resumed bytes included).
    Progress { file: String, done: u64, total: u64 },
    /// A transfer broke off and is tried again from where it stopped.
    Retrying {
        file: String,
        attempt: usize,
        reason: String,
    },
    /// The whole file is here (fetched now or found in the cache).
    Done { file: String, bytes: u64 },
}

/// One file the hub lists for the repo.
#[derive(Debug, Clone)]
struct RemoteFile {
    name: String,
    size: Option<u64>,
    /// The LFS object's hash: large files are checked against it.
    sha256: Option<String>,
}

/// Downloads `repo`'s config, tokenizer files and safetensors weights (every
/// shard of a sharded checkpoint) into the cache, skipping files already
/// there. Returns the snapshot folder. A whole cached snapshot is returned
/// without asking the hub (so it works offline). `cancel` stops it at the
/// next tick; `observe` hears progress on this thread.
pub fn download_model(
    repo: &str,
    cancel: &AtomicBool,
    observe: &mut dyn FnMut(Event),
) -> Result<PathBuf, HubError> {
    if let Some(dir) = cache::complete_snapshot(&cache::repo_dir(repo)) {
        return Ok(dir);
    }
    let settings = HubSettings::from_env();
    if settings.offline {
        return Err(HubError::Offline {
            repo: repo.to_string(),
            cache: cache::repo_dir(repo).display().to_string(),
        });
    }
    Session::new(repo, settings, cancel)?.fetch_model(observe)
}

/// One repo's download: the client, the rules and the cancel flag.
struct Session<'a> {
    repo_id: String,
    settings: HubSettings,
    api_repo: ApiRepo,
    /// hf-hub's own client (its headers carry the token), for the one
    /// request hf-hub does not make: asking why a file was refused.
    client: reqwest::Client,
    cancel: &'a AtomicBool,
}

impl<'a> Session<'a> {
    fn new(repo_id: &str, settings: HubSettings, cancel: &'a AtomicBool) -> Result<Self, HubError> {
        let api = ApiBuilder::from_cache(Cache::new(settings.cache.clone()))
            .with_endpoint(settings.endpoint.clone())
            .with_token(settings.token.clone())
            .with_progress(false)
            .with_chunk_size(Some(CHUNK_BYTES))
            .build()
            .map_err(|e| HubError::Other {
                what: "hub client".into(),
                reason: e.to_string(),
            })?;
        let client = api.client().clone();
        let api_repo = api.repo(Repo::with_revision(
            repo_id.to_string(),
            RepoType::Model,
            "main".to_string(),
        ));
        Ok(Session {
            repo_id: repo_id.to_string(),
            settings,
            api_repo,
            client,
            cancel,
        })
    }

    fn fetch_model(&self, observe: &mut dyn FnMut(Event)) -> Result<PathBuf, HubError> {
        let listing =
            self.supervised("the file list", &Counter::new(None), observe, self.list())?;
        let mut plan = self.choose(&listing)?;
        observe(Event::Planned {
            files: plan.iter().map(|f| (f.name.clone(), f.size)).collect(),
        });
        let mut config = None;
        let mut next = 0;
        while next < plan.len() {
            let file = plan[next].clone();
            let path = self.fetch_file(&file, observe)?;
            if file.name == INDEX {
                for shard in shard_names(&path).map_err(|reason| HubError::Other {
                    what: INDEX.into(),
                    reason,
                })? {
                    let listed = listing.iter().find(|f| f.name == shard);
                    plan.push(listed.cloned().unwrap_or(RemoteFile {
                        name: shard,
                        size: None,
                        sha256: None,
                    }));
                }
            }
            if file.name == "config.json" {
                config = Some(path);
            }
            next += 1;
        }
        let config = config.ok_or_else(|| HubError::NoConfig {
            repo: self.repo_id.clone(),
        })?;
        Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// The repo's files from `GET /api/models/{repo}/revision/main?blobs=true`.
    async fn list(&self) -> Result<Vec<RemoteFile>, HubError> {
        let response = self
            .api_repo
            .info_request()
            .query(&[("blobs", "true")])
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let code = header(&response, "x-error-code");
            let message = header(&response, "x-error-message");
            let body = response.text().await.unwrap_or_default();
            return Err(self.refusal("the file list", status, code, message, &body));
        }
        let value: serde_json::Value = response.json().await.map_err(|e| HubError::Other {
            what: format!("{}: the hub's file list", self.repo_id),
            reason: e.to_string(),
        })?;
        let siblings = value
            .get("siblings")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        Ok(siblings
            .iter()
            .filter_map(|s| {
                Some(RemoteFile {
                    name: s.get("rfilename")?.as_str()?.to_string(),
                    size: s.get("size").and_then(|v| v.as_u64()),
                    sha256: s
                        .get("lfs")
                        .and_then(|l| l.get("sha256"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                })
            })
            .collect())
    }

    /// The files a model needs, in the order they are fetched: small ones
    /// first, then the weights (shards join once the index is read).
    fn choose(&self, listing: &[RemoteFile]) -> Result<Vec<RemoteFile>, HubError> {
        let listed = |name: &str| listing.iter().find(|f| f.name == name).cloned();
        if listed("config.json").is_none() {
            return Err(HubError::NoConfig {
                repo: self.repo_id.clone(),
            });
        }
        let mut plan: Vec<RemoteFile> = SMALL_FILES.iter().filter_map(|n| listed(n)).collect();
        match listed(INDEX).or_else(|| listed(SINGLE)) {
            Some(weights) => plan.push(weights),
            None => {
                let found = listing
                    .iter()
                    .map(|f| f.name.clone())
                    .filter(|n| {
                        [".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack"]
                            .iter()
                            .any(|ext| n.ends_with(ext))
                    })
                    .take(6)
                    .collect();
                return Err(HubError::NoWeights {
                    repo: self.repo_id.clone(),
                    found,
                });
            }
        }
        Ok(plan)
    }

    /// One file into the cache (or found there), retried from where it
    /// stopped when the transfer breaks off, and checked against its hash.
    fn fetch_file(
        &self,
        file: &RemoteFile,
        observe: &mut dyn FnMut(Event),
    ) -> Result<PathBuf, HubError> {
        let cached = Cache::new(self.settings.cache.clone()).repo(Repo::with_revision(
            self.repo_id.clone(),
            RepoType::Model,
            "main".to_string(),
        ));
        if let Some(path) = cached.get(&file.name) {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            observe(Event::Done {
                file: file.name.clone(),
                bytes,
            });
            return Ok(path);
        }
        let mut attempt = 0;
        loop {
            let counter = Counter::new(file.size);
            let transfer = async {
                self.api_repo
                    .download_with_progress(&file.name, counter.clone())
                    .await
                    .map_err(|e| self.classify(&file.name, e, attempt + 1))
            };
            match self.supervised(&file.name, &counter, observe, transfer) {
                Ok(path) => {
                    remove_lock(&path);
                    if let Some(expected) = &file.sha256 {
                        check_hash(&file.name, &path, expected)?;
                    }
                    observe(Event::Done {
                        file: file.name.clone(),
                        bytes: counter.done(),
                    });
                    return Ok(path);
                }
                Err(error) if error.is_transient() && attempt < RETRIES => {
                    attempt += 1;
                    observe(Event::Retrying {
                        file: file.name.clone(),
                        attempt,
                        reason: error.to_string(),
                    });
                    std::thread::sleep(Duration::from_millis(250 << attempt));
                }
                Err(HubError::Refused { status, .. }) => {
                    return Err(self.explain_refusal(&file.name, status));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Runs `work` on a runtime of its own, ending it when `cancel` is set
    /// or nothing arrives for the stall limit, and reporting progress each
    /// tick. Dropping the runtime stops every task the client spawned, so
    /// nothing writes the file once this returns.
    fn supervised<T>(
        &self,
        file: &str,
        counter: &Counter,
        observe: &mut dyn FnMut(Event),
        work: impl Future<Output = Result<T, HubError>>,
    ) -> Result<T, HubError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HubError::Other {
                what: "tokio runtime".into(),
                reason: e.to_string(),
            })?;
        let outcome = runtime.block_on(async {
            tokio::pin!(work);
            let mut tick = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    out = &mut work => return out,
                    _ = tick.tick() => {
                        if self.cancel.load(Ordering::Relaxed) {
                            return Err(HubError::Cancelled { file: file.to_string() });
                        }
                        if counter.idle() >= self.settings.stall {
                            return Err(HubError::Stalled {
                                file: file.to_string(),
                                secs: self.settings.stall.as_secs_f64().round() as u64,
                            });
                        }
                        if counter.total() > 0 {
                            observe(Event::Progress {
                                file: file.to_string(),
                                done: counter.done(),
                                total: counter.total(),
                            });
                        }
                    }
                }
            }
        });
        runtime.shutdown_background();
        outcome
    }

    fn classify(&self, file: &str, error: ApiError, attempts: usize) -> HubError {
        match error {
            ApiError::RequestError(e) => match e.status() {
                Some(status) if status.as_u16() == 429 || status.is_server_error() => {
                    HubError::Interrupted {
                        file: file.to_string(),
                        attempts,
                        reason: format!("the hub answered {status}"),
                    }
                }
                Some(status) => HubError::Refused {
                    repo: self.repo_id.clone(),
                    file: file.to_string(),
                    status: status.as_u16(),
                    hub_says: String::new(),
                },
                None if e.is_connect() => self.unreachable(&e),
                None => HubError::Interrupted {
                    file: file.to_string(),
                    attempts,
                    reason: innermost(&e),
                },
            },
            ApiError::LockAcquisition(lock) => HubError::Locked {
                file: file.to_string(),
                lock: lock.display().to_string(),
            },
            ApiError::Join(e) => HubError::Interrupted {
                file: file.to_string(),
                attempts,
                reason: e.to_string(),
            },
            ApiError::TooManyRetries(e) => self.classify(file, *e, attempts),
            other => HubError::Other {
                what: file.to_string(),
                reason: other.to_string(),
            },
        }
    }

    /// The hub's own words for a refused file: hf-hub keeps only the status,
    /// so ask once more and read `X-Error-Code`, `X-Error-Message` and the body.
    fn explain_refusal(&self, file: &str, status: u16) -> HubError {
        let url = self.api_repo.url(file);
        let probe = async {
            let response = self
                .client
                .get(url)
                .header("Range", "bytes=0-0")
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = response.status().as_u16();
            let code = header(&response, "x-error-code");
            let message = header(&response, "x-error-message");
            let body = response.text().await.unwrap_or_default();
            Ok::<_, HubError>(self.refusal(file, status, code, message, &body))
        };
        match self.supervised(file, &Counter::new(None), &mut |_| {}, probe) {
            Ok(explained) => explained,
            Err(_) => self.refusal(file, status, None, None, ""),
        }
    }

    /// A refusal as the hub words it: its error code picks the kind.
    fn refusal(
        &self,
        file: &str,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        body: &str,
    ) -> HubError {
        let hub_says = message
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("error")?.as_str().map(str::to_string))
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        let has_token = self.settings.has_token();
        match code.as_deref() {
            Some("GatedRepo") => HubError::Gated {
                repo: self.repo_id.clone(),
                file: file.to_string(),
                status,
                hub_says: ensure_period(&hub_says),
                has_token,
            },
            Some("RepoNotFound") => HubError::NotFound {
                repo: self.repo_id.clone(),
                endpoint: self.settings.endpoint.clone(),
                has_token,
            },
            _ if status == 404 && file == "the file list" => HubError::NotFound {
                repo: self.repo_id.clone(),
                endpoint: self.settings.endpoint.clone(),
                has_token,
            },
            _ => HubError::Refused {
                repo: self.repo_id.clone(),
                file: file.to_string(),
                status,
                hub_says,
            },
        }
    }

    fn unreachable(&self, error: &dyn std::error::Error) -> HubError {
        HubError::Unreachable {
            endpoint: self.settings.endpoint.clone(),
            reason: innermost(error),
        }
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn ensure_period(text: &str) -> String {
    let text = text.trim();
    if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

/// The deepest cause's text: reqwest's outer errors say only "error
/// sending request".
fn innermost(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// hf-hub leaves `BLOB.lock` beside each blob it wrote; once the blob is
/// whole nobody needs it, and the cache stays as transformers writes it.
fn remove_lock(snapshot_file: &Path) {
    if let Ok(blob) = std::fs::canonicalize(snapshot_file) {
        let mut lock = blob.into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}

/// Compares the file's sha256 with the hub's; a mismatch removes the blob
/// and the snapshot's link to it, so a later run fetches it again.
fn check_hash(file: &str, path: &Path, expected: &str) -> Result<(), HubError> {
    use sha2::Digest;
    let io = |e: std::io::Error| HubError::Other {
        what: path.display().to_string(),
        reason: e.to_string(),
    };
    let blob = std::fs::canonicalize(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut reader = std::fs::File::open(&blob).map_err(io)?;
    std::io::copy(&mut reader, &mut hasher).map_err(io)?;
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    let _ = std::fs::remove_file(&blob);
    let _ = std::fs::remove_file(path);
    Err(HubError::HashMismatch {
        file: file.to_string(),
        expected: expected.to_string(),
        got,
    })
}
