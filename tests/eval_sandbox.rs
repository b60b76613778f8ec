//! The escapes of issue 10 tried against `eval --exec`'s test runner: each
//! generated project below attempts one, and the sandbox must stop it while
//! pytest itself still runs (every project has one test that must pass, so
//! a sandbox that runs nothing cannot pass these tests).
//!
//! They need a Python with pytest: `TUNEBENCH_TEST_PYTHON` (default
//! `python3`). Without one they print why and skip.

mod common;

use std::io::ErrorKind;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tunebench::eval::code::check_answer;
use tunebench::eval::code::exec::{ExecOptions, ProbeError, Runner, TestRun};
use tunebench::eval::code::sandbox::SandboxKind;

fn python() -> String {
    std::env::var("TUNEBENCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn options(work_dir: &Path, timeout: Duration) -> ExecOptions {
    ExecOptions {
        launcher: Some(env!("CARGO_BIN_EXE_tunebench").into()),
        work_dir: Some(work_dir.to_path_buf()),
        ..ExecOptions::new(python(), timeout)
    }
}

/// A sandboxed runner, or `None` (with the reason printed) where this
/// machine has no pytest or its kernel refuses namespaces.
fn sandboxed(work_dir: &Path, timeout: Duration) -> Option<Runner> {
    match Runner::probe(options(work_dir, timeout)) {
        Ok(runner) => {
            assert_eq!(runner.kind, SandboxKind::Namespaces);
            Some(runner)
        }
        Err(ProbeError::Python(why)) => {
            eprintln!("SKIPPED: {why} (set TUNEBENCH_TEST_PYTHON to a Python with pytest)");
            None
        }
        Err(ProbeError::NoSandbox(why)) if why.contains("namespaces refused") => {
            eprintln!("SKIPPED: this kernel refuses namespaces: {why}");
            None
        }
        Err(e) => panic!("the sandbox is broken: {e}"),
    }
}

/// A work folder for the temporary projects and a sandboxed runner using
/// it, or `None` as for [`sandboxed`].
fn setup(timeout: Duration) -> Option<(tempfile::TempDir, Runner)> {
    let work = tempfile::tempdir().unwrap();
    let runner = sandboxed(work.path(), timeout)?;
    Some((work, runner))
}

/// A project of `conftest.py` (the attempt) and one test that passes.
fn project(conftest: &str) -> Vec<(String, String)> {
    vec![
        ("conftest.py".into(), conftest.into()),
        (
            "tests/test_ok.py".into(),
            "def test_ok():\n    pass\n".into(),
        ),
    ]
}

/// Runs `files`; pytest must have run the passing test.
fn run_passing(runner: &Runner, files: &[(String, String)]) -> TestRun {
    let (run, output) = runner.run_with_output(files);
    assert_eq!(
        (run.passed, run.failed, run.errors),
        (1, 0, 0),
        "{run:?}\n{}",
        output.text()
    );
    run
}

/// A name no other test (or test run) uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tunebench-{what}-{}-{nanos}", std::process::id())
}

#[test]
fn writes_outside_the_project_folder_fail() {
    let Some((work, runner)) = setup(Duration::from_secs(60)) else {
        return;
    };
    let name = unique("escape");
    let targets: Vec<PathBuf> = vec![
        std::env::temp_dir().join(&name),
        work.path().join(&name),
        PathBuf::from("/root").join(&name),
        std::env::current_dir().unwrap().join(&name),
    ];
    let attempts = targets
        .iter()
        .map(|t| format!("    {:?},\n", t.display().to_string()))
        .collect::<String>();
    let conftest = format!(
        "import pathlib\nfor target in [\n{attempts}    '../{name}', '../../{name}']:\n    try:\n        pathlib.Path(target).write_text('escaped')\n    except OSError:\n        pass\npathlib.Path('inside.txt').write_text('the project folder is writable')\nassert pathlib.Path('inside.txt').read_text()\n"
    );
    run_passing(&runner, &project(&conftest));
    let escaped: Vec<&PathBuf> = targets.iter().filter(|t| t.exists()).collect();
    for target in &escaped {
        let _ = std::fs::remove_file(target);
    }
    assert!(escaped.is_empty(), "the project wrote {escaped:?}");
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert!(left.is_empty(), "left in the work folder: {left:?}");
}

#[test]
fn host_unix_sockets_are_unreachable() {
    let Some((work, runner)) = setup(Duration::from_secs(60)) else {
        return;
    };
    let paths = [
        std::env::temp_dir().join(unique("socket")),
        work.path().join("host.sock"),
    ];
    let listeners: Vec<UnixListener> = paths
        .iter()
        .map(|p| {
            let l = UnixListener::bind(p).unwrap();
            l.set_nonblocking(true).unwrap();
            l
        })
        .collect();
    let conftest = format!(
        "import socket\nfor path in {:?}:\n    try:\n        s = socket.socket(socket.AF_UNIX)\n        s.connect(path)\n        s.sendall(b'escaped')\n    except OSError:\n        pass\n",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    );
    run_passing(&runner, &project(&conftest));
    for (listener, path) in listeners.iter().zip(&paths) {
        let arrived = listener.accept();
        let _ = std::fs::remove_file(path);
        assert!(
            matches!(&arrived, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "a connection reached {}",
            path.display()
        );
    }
}

#[test]
fn the_network_is_unreachable() {
    let Some((_work, runner)) = setup(Duration::from_secs(60)) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // The namespace's own loopback works; the host's listener is not on it.
    let conftest = format!(
        "import socket\nserver = socket.create_server(('127.0.0.1', 0))\nsocket.create_connection(server.getsockname(), timeout=5).close()\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=5).sendall(b'escaped')\nexcept OSError:\n    pass\n"
    );
    run_passing(&runner, &project(&conftest));
    let arrived = listener.accept();
    assert!(
        matches!(&arrived, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "a connection reached the host's 127.0.0.1:{port}"
    );
}

#[test]
fn limits_hold_inside() {
    let Some((_work, runner)) = setup(Duration::from_secs(60)) else {
        return;
    };
    let test = "import os, resource, pytest
def test_limits():
    assert resource.getrlimit(resource.RLIMIT_FSIZE) == (256 << 20, 256 << 20)
    assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    assert resource.getrlimit(resource.RLIMIT_NPROC) == (256, 256)
    assert 'NoNewPrivs:\\t1' in open('/proc/self/status').read()
    with pytest.raises(MemoryError):
        bytearray(5 << 30)
    assert sorted(os.listdir('/dev')) == ['fd', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']
    for gone in ['/home', '/run', '/var', '/sys', '/mnt', '/opt', '/work']:
        assert not os.path.exists(gone), gone
    assert os.getcwd() == '/project'
";
    run_passing(&runner, &[("tests/test_limits.py".into(), test.into())]);
}

/// Host processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

#[test]
fn setsid_children_die_at_the_time_limit() {
    let Some((_work, runner)) = setup(Duration::from_secs(4)) else {
        return;
    };
    let marker = unique("survivor");
    let test = format!(
        "import subprocess, sys, time\ndef test_forever():\n    subprocess.Popen(['setsid', sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'])\n    time.sleep(600)\n"
    );
    let files = vec![("tests/test_forever.py".to_string(), test)];
    let run = std::thread::scope(|s| {
        let run = s.spawn(|| runner.run(&files));
        let mut seen = false;
        while !run.is_finished() {
            seen |= !processes_with(&marker).is_empty();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(seen, "the setsid child never started");
        run.join().unwrap()
    });
    assert!(run.timed_out, "{run:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut alive = processes_with(&marker);
    while !alive.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        alive = processes_with(&marker);
    }
    for pid in &alive {
        // SAFETY: only signals the survivors this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    assert!(alive.is_empty(), "outlived the time limit: {alive:?}");
}

#[test]
fn a_parent_folders_pytest_config_is_never_read() {
    let Some((work, sandboxed)) = setup(Duration::from_secs(60)) else {
        return;
    };
    // Pinning alone must keep it out too: try it without the sandbox.
    let unsandboxed = Runner::probe(ExecOptions {
        force_refusal: true,
        allow_unsandboxed: true,
        ..options(work.path(), Duration::from_secs(60))
    })
    .unwrap();
    assert_eq!(unsandboxed.kind, SandboxKind::Unsandboxed);
    let ran = work.path().join("parent-conftest-ran");
    std::fs::write(work.path().join("pytest.ini"), "[pytest]\n").unwrap();
    std::fs::write(
        work.path().join("conftest.py"),
        format!("open({:?}, 'w').write('ran')\n", ran.display().to_string()),
    )
    .unwrap();
    for runner in [&sandboxed, &unsandboxed] {
        run_passing(runner, &project(""));
        assert!(
            !ran.exists(),
            "{:?}: the parent conftest.py ran",
            runner.kind
        );
    }
}

/// Peak resident memory of this process, bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn an_output_flood_is_read_in_bounded_memory() {
    let Some((_work, runner)) = setup(Duration::from_secs(120)) else {
        return;
    };
    let before = peak_rss();
    // 200 MB printed by a failing test, which pytest then reports whole.
    let test = "def test_flood():\n    line = 'x' * 999_999\n    for _ in range(200):\n        print(line)\n    assert False\n";
    let files = vec![("tests/test_flood.py".to_string(), test.to_string())];
    let (run, output) = runner.run_with_output(&files);
    let growth = peak_rss().saturating_sub(before);
    assert_eq!(run.failed, 1, "{run:?}\n{}", output.text());
    assert!(output.tail.len() <= 64 << 10);
    assert!(growth < 64 << 20, "peak RSS grew by {growth} bytes");
    assert!(
        run.output_dropped >= 199_000_000,
        "dropped {} bytes",
        run.output_dropped
    );
}

#[test]
fn base_project_files_run_in_the_same_sandbox() {
    let Some((_work, runner)) = setup(Duration::from_secs(60)) else {
        return;
    };
    let target = std::env::temp_dir().join(unique("base-escape"));
    let base = project(&format!(
        "try:\n    open({:?}, 'w').write('escaped')\nexcept OSError:\n    pass\n",
        target.display().to_string()
    ));
    let answer = r#"{"files": {"app.py": "X = 1\n"}}"#;
    let check = check_answer(answer, &[], &base, Some(&runner));
    let escaped = target.exists();
    let _ = std::fs::remove_file(&target);
    let tests = check.tests.unwrap();
    assert_eq!(tests.passed, 1, "{tests:?}");
    assert!(
        !escaped,
        "the base project's conftest.py wrote {}",
        target.display()
    );
}

#[test]
fn refused_namespaces_stop_the_run_unless_allowed() {
    let work = tempfile::tempdir().unwrap();
    if sandboxed(work.path(), Duration::from_secs(60)).is_none() {
        return;
    }
    let refused = ExecOptions {
        force_refusal: true,
        ..options(work.path(), Duration::from_secs(60))
    };
    let Err(ProbeError::NoSandbox(why)) = Runner::probe(refused.clone()) else {
        panic!("a refused sandbox must stop the run");
    };
    assert!(why.contains("namespaces refused"), "{why}");
    let message = ProbeError::NoSandbox(why).to_string();
    assert!(message.contains("--exec-unsandboxed"), "{message}");
    let allowed = Runner::probe(ExecOptions {
        allow_unsandboxed: true,
        ..refused
    })
    .unwrap();
    assert_eq!(allowed.kind, SandboxKind::Unsandboxed);
    assert!(
        allowed.note().starts_with("unsandboxed"),
        "{}",
        allowed.note()
    );
    run_passing(&allowed, &project(""));

    // The command line refuses before it loads the model.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tunebench"))
        .args(["eval", "--model", "/nonexistent/model", "--data"])
        .arg(common::root().join("sample-data/fastapi_projects.jsonl"))
        .args(["--generate", "--exec", "--python", &python()])
        .env(tunebench::eval::code::sandbox::FORCE_REFUSAL_VAR, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no sandbox for generated code") && stderr.contains("--exec-unsandboxed"),
        "{stderr}"
    );
}
