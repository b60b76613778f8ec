//! A stand-in for the Hugging Face hub on loopback, for download tests.
//!
//! It answers the requests the hub client makes the way huggingface.co does
//! (from the hub's API documentation and huggingface_hub's error handling):
//! - `GET /api/models/{repo}/revision/{rev}[?blobs=true]`: `sha`, `gated`
//!   and `siblings` (with `size` and `lfs.sha256` when blobs are asked for);
//! - `GET`/`HEAD /{repo}/resolve/{rev}/{file}`: small files in place, with
//!   `ETag`, `X-Repo-Commit`, `Content-Length` and ranges answered with
//!   `206` and `Content-Range`; large (LFS) files as a `302` to a CDN on
//!   another host:port with `X-Linked-Etag` (the sha256), `X-Linked-Size`
//!   and `X-Repo-Commit`;
//! - errors with the hub's `X-Error-Code` / `X-Error-Message` headers and a
//!   JSON body: an unknown repo is `401 RepoNotFound` without a token and
//!   `404` with one, a gated repo `401`/`403 GatedRepo`, a missing file
//!   `404 EntryNotFound`.
//!
//! Faults for the tests: cut a CDN transfer after some bytes (once), stall
//! one, or pace every transfer. Every request is logged.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Files at or above this size are served as LFS objects through the CDN.
pub const LFS_THRESHOLD: usize = 1024;

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

/// One file, shared between requests, with its sha256 worked out once.
#[derive(Clone)]
struct Stored {
    name: String,
    bytes: Arc<Vec<u8>>,
    sha256: String,
}

#[derive(Clone)]
struct RepoFiles {
    commit: String,
    gated: bool,
    files: Vec<Stored>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, RepoFiles>,
    /// Tokens that may read gated repos.
    granted: HashSet<String>,
    log: Vec<Logged>,
    /// The CDN transfer of this sha256 whose range holds this offset
    /// closes the connection there, once.
    cut_at: HashMap<String, usize>,
    /// CDN transfers of this sha256 send headers, then nothing.
    stalled: HashSet<String>,
    /// Bytes per second for every CDN transfer; None is as fast as it goes.
    pace: Option<usize>,
}

pub struct HubStandIn {
    pub endpoint: String,
    cdn: String,
    state: Arc<Mutex<State>>,
}

impl HubStandIn {
    pub fn start() -> HubStandIn {
        let hub = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn = TcpListener::bind("127.0.0.1:0").unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let endpoint = format!("http://{}", hub.local_addr().unwrap());
        let cdn_base = format!("http://{}", cdn.local_addr().unwrap());
        serve(hub, Arc::clone(&state), Some(cdn_base.clone()));
        serve(cdn, Arc::clone(&state), None);
        HubStandIn {
            endpoint,
            cdn: cdn_base,
            state,
        }
    }

    /// Publishes `files` (path, bytes) as `repo` at a commit derived from
    /// their content.
    pub fn add_repo(&self, repo: &str, files: Vec<(String, Vec<u8>)>, gated: bool) {
        let mut all = Vec::new();
        for (name, bytes) in &files {
            all.extend_from_slice(name.as_bytes());
            all.extend_from_slice(bytes);
        }
        let commit = sha256_hex(&all)[..40].to_string();
        let files = files
            .into_iter()
            .map(|(name, bytes)| Stored {
                sha256: sha256_hex(&bytes),
                name,
                bytes: Arc::new(bytes),
            })
            .collect();
        self.state.lock().unwrap().repos.insert(
            repo.to_string(),
            RepoFiles {
                commit,
                gated,
                files,
            },
        );
    }

    /// The files of a model directory, as `add_repo` takes them.
    pub fn files_of(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    pub fn commit(&self, repo: &str) -> String {
        self.state.lock().unwrap().repos[repo].commit.clone()
    }

    pub fn grant(&self, token: &str) {
        self.state.lock().unwrap().granted.insert(token.to_string());
    }

    pub fn cut_at(&self, content: &[u8], offset: usize) {
        let key = sha256_hex(content);
        self.state.lock().unwrap().cut_at.insert(key, offset);
    }

    pub fn stall(&self, content: &[u8]) {
        let key = sha256_hex(content);
        self.state.lock().unwrap().stalled.insert(key);
    }

    pub fn unstall(&self, content: &[u8]) {
        let key = sha256_hex(content);
        self.state.lock().unwrap().stalled.remove(&key);
    }

    pub fn pace(&self, bytes_per_second: usize) {
        self.state.lock().unwrap().pace = Some(bytes_per_second);
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn cdn(&self) -> &str {
        &self.cdn
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn serve(listener: TcpListener, state: Arc<Mutex<State>>, cdn: Option<String>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let state = Arc::clone(&state);
            let cdn = cdn.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &state, cdn.as_deref());
            });
        }
    });
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
}

fn read_request(stream: &TcpStream) -> std::io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (target, String::new()),
    };
    Ok(Some(Request {
        method,
        path,
        query,
        headers,
    }))
}

/// One request per connection, answered and closed.
fn handle(mut stream: TcpStream, state: &Mutex<State>, cdn: Option<&str>) -> std::io::Result<()> {
    let Some(request) = read_request(&stream)? else {
        return Ok(());
    };
    state.lock().unwrap().log.push(Logged {
        method: request.method.clone(),
        path: request.path.clone(),
        range: request.headers.get("range").cloned(),
        authorization: request.headers.get("authorization").cloned(),
    });
    match cdn {
        Some(cdn) => answer_hub(&mut stream, &request, state, cdn),
        None => answer_cdn(&mut stream, &request, state),
    }
}

struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Body,
}

/// A reply's bytes: its own, or a range of a stored file.
enum Body {
    Owned(Vec<u8>),
    Slice(Arc<Vec<u8>>, std::ops::Range<usize>),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Owned(bytes) => bytes,
            Body::Slice(all, range) => &all[range.clone()],
        }
    }
}

impl Reply {
    fn error(status: &'static str, code: &str, message: &str) -> Reply {
        Reply {
            status,
            headers: vec![
                ("X-Error-Code".into(), code.into()),
                ("X-Error-Message".into(), message.into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: Body::Owned(
                serde_json::json!({ "error": message })
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

fn write_reply(stream: &mut TcpStream, reply: &Reply, head_only: bool) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = reply.body.bytes();
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(text.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

/// The repo a token may read, or the hub's refusal.
fn access(request: &Request, state: &State, repo_id: &str) -> Result<RepoFiles, Reply> {
    let token = request
        .headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(repo) = state.repos.get(repo_id) else {
        // Without a token the hub does not say whether a private repo
        // exists: 401, the same code as a missing one.
        let status = if token.is_some() {
            "404 Not Found"
        } else {
            "401 Unauthorized"
        };
        return Err(Reply::error(status, "RepoNotFound", "Repository not found"));
    };
    if repo.gated {
        match token {
            None => {
                return Err(Reply::error(
                    "401 Unauthorized",
                    "GatedRepo",
                    &format!(
                        "Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in."
                    ),
                ));
            }
            Some(token) if !state.granted.contains(&token) => {
                return Err(Reply::error(
                    "403 Forbidden",
                    "GatedRepo",
                    &format!(
                        "Access to model {repo_id} is restricted and you are not in the authorized list. Visit https://huggingface.co/{repo_id} to ask for access."
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(repo.clone())
}

fn answer_hub(
    stream: &mut TcpStream,
    request: &Request,
    state: &Mutex<State>,
    cdn: &str,
) -> std::io::Result<()> {
    let head_only = request.method == "HEAD";
    let reply = {
        let state = state.lock().unwrap();
        if let Some(rest) = request.path.strip_prefix("/api/models/") {
            let repo_id = rest.split("/revision/").next().unwrap_or(rest);
            match state.repos.get(repo_id) {
                Some(repo) => model_info(repo_id, repo, request.query.contains("blobs=true")),
                None => access(request, &state, repo_id).err().unwrap(),
            }
        } else if let Some((repo_id, rest)) = request.path[1..].split_once("/resolve/") {
            let file = rest.split_once('/').map(|(_, f)| f).unwrap_or_default();
            match access(request, &state, repo_id) {
                Err(reply) => reply,
                Ok(repo) => resolve(&repo, file, request, cdn),
            }
        } else {
            Reply::error("404 Not Found", "NotFound", "Not found")
        }
    };
    write_reply(stream, &reply, head_only)
}

fn model_info(repo_id: &str, repo: &RepoFiles, blobs: bool) -> Reply {
    let siblings: Vec<_> = repo
        .files
        .iter()
        .map(|file| {
            let mut entry = serde_json::json!({ "rfilename": file.name });
            if blobs {
                entry["size"] = file.bytes.len().into();
                if file.bytes.len() >= LFS_THRESHOLD {
                    entry["lfs"] = serde_json::json!({
                        "sha256": file.sha256,
                        "size": file.bytes.len(),
                        "pointerSize": 134,
                    });
                }
            }
            entry
        })
        .collect();
    let gated = if repo.gated {
        serde_json::json!("manual")
    } else {
        serde_json::json!(false)
    };
    let body = serde_json::json!({
        "id": repo_id,
        "modelId": repo_id,
        "sha": repo.commit,
        "gated": gated,
        "private": false,
        "siblings": siblings,
    });
    Reply {
        status: "200 OK",
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Owned(body.to_string().into_bytes()),
    }
}

fn resolve(repo: &RepoFiles, file: &str, request: &Request, cdn: &str) -> Reply {
    let Some(stored) = repo.files.iter().find(|f| f.name == file) else {
        return Reply::error("404 Not Found", "EntryNotFound", "Entry not found");
    };
    let sha = &stored.sha256;
    let commit = ("X-Repo-Commit".to_string(), repo.commit.clone());
    if stored.bytes.len() >= LFS_THRESHOLD {
        return Reply {
            status: "302 Found",
            headers: vec![
                ("Location".into(), format!("{cdn}/cdn/{sha}")),
                ("X-Linked-Etag".into(), format!("\"{sha}\"")),
                ("X-Linked-Size".into(), stored.bytes.len().to_string()),
                ("ETag".into(), format!("\"{}\"", &sha[..40])),
                commit,
            ],
            body: Body::Owned(Vec::new()),
        };
    }
    let mut reply = ranged(&stored.bytes, request);
    // A git blob's id for a small file: 40 hex digits, not the sha256.
    reply
        .headers
        .push(("ETag".into(), format!("\"{}\"", &sha[24..])));
    reply.headers.push(commit);
    reply
}

/// The whole body or the asked-for range of it.
fn ranged(bytes: &Arc<Vec<u8>>, request: &Request) -> Reply {
    let total = bytes.len();
    let range = range_of(request, total);
    let mut headers = vec![("Accept-Ranges".to_string(), "bytes".to_string())];
    match range {
        Some((start, end)) if start < total => {
            headers.push((
                "Content-Range".into(),
                format!("bytes {start}-{end}/{total}"),
            ));
            Reply {
                status: "206 Partial Content",
                headers,
                body: Body::Slice(Arc::clone(bytes), start..end + 1),
            }
        }
        _ => Reply {
            status: "200 OK",
            headers,
            body: Body::Slice(Arc::clone(bytes), 0..total),
        },
    }
}

/// The `Range: bytes=START-[END]` asked for, END clamped to the last byte.
fn range_of(request: &Request, total: usize) -> Option<(usize, usize)> {
    let (start, end) = request
        .headers
        .get("range")?
        .strip_prefix("bytes=")?
        .split_once('-')?;
    let last = total.saturating_sub(1);
    let start = start.parse().ok()?;
    let end = end.parse().unwrap_or(last).min(last);
    Some((start, end))
}

fn answer_cdn(
    stream: &mut TcpStream,
    request: &Request,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let sha = request.path.trim_start_matches("/cdn/").to_string();
    let (bytes, cut, stalled, pace) = {
        let mut state = state.lock().unwrap();
        let bytes = state
            .repos
            .values()
            .flat_map(|r| r.files.iter())
            .find(|f| f.sha256 == sha)
            .map(|f| Arc::clone(&f.bytes));
        let (start, end) = range_of(request, usize::MAX).unwrap_or((0, usize::MAX));
        let cut = match state.cut_at.get(&sha) {
            Some(&offset) if start < offset && offset <= end => {
                state.cut_at.remove(&sha);
                Some(offset - start)
            }
            _ => None,
        };
        (bytes, cut, state.stalled.contains(&sha), state.pace)
    };
    let Some(bytes) = bytes else {
        return write_reply(
            stream,
            &Reply::error("404 Not Found", "NotFound", "no such object"),
            false,
        );
    };
    let reply = ranged(&bytes, request);
    let mut head = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let full = reply.body.bytes();
    head.push_str(&format!("Content-Length: {}\r\n\r\n", full.len()));
    stream.write_all(head.as_bytes())?;
    if request.method == "HEAD" {
        return Ok(());
    }
    if stalled && full.len() > 1 {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    }
    let body = match cut {
        Some(limit) => &full[..limit.min(full.len())],
        None => full,
    };
    match pace {
        None => stream.write_all(body)?,
        Some(rate) => {
            let slice = (rate / 20).max(1);
            for part in body.chunks(slice) {
                stream.write_all(part)?;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // A cut transfer ends here: the socket closes short of Content-Length.
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let mut sink = [0u8; 1];
    let _ = stream.read(&mut sink);
    Ok(())
}
