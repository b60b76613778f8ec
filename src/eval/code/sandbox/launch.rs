//! The launcher process: unshares the namespaces, maps the caller's user and
//! group, forks PID 1 of the new PID namespace and waits for it, passing on
//! its exit status. PID 1 builds the file system, drops what it may not keep
//! and becomes the spec's command.

use super::sys::{self, Context, Step};
use super::{EXIT_REFUSED, EXIT_SETUP_FAILED, FORCE_REFUSAL_VAR, PROJECT_MOUNT, Spec, mounts};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC;

pub fn run(spec: Spec) -> ExitCode {
    // The launcher dies with tunebench (and PID 1 with the launcher).
    if let Err(e) = sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "asking to die with tunebench",
    ) {
        return fail(EXIT_SETUP_FAILED, "setup failed", &e.to_string());
    }
    if let Err(why) = unshare() {
        return fail(EXIT_REFUSED, "namespaces refused", &why);
    }
    // SAFETY: the launcher is single-threaded (it runs before anything else
    // in main), so the child may do anything after fork.
    match unsafe { libc::fork() } {
        -1 => fail(
            EXIT_SETUP_FAILED,
            "setup failed",
            &format!("fork: {}", std::io::Error::last_os_error()),
        ),
        0 => {
            let error = become_pid_one(&spec);
            eprintln!("tunebench sandbox: setup failed: {error}");
            // SAFETY: leaves the child at once, without unwinding.
            unsafe { libc::_exit(EXIT_SETUP_FAILED.into()) }
        }
        child => wait_for(child),
    }
}

fn fail(code: u8, what: &str, why: &str) -> ExitCode {
    eprintln!("tunebench sandbox: {what}: {why}");
    ExitCode::from(code)
}

/// New namespaces, with the caller's uid and gid mapped to themselves.
fn unshare() -> Result<(), String> {
    if std::env::var_os(FORCE_REFUSAL_VAR).is_some() {
        return Err(format!("unshare: refused on request ({FORCE_REFUSAL_VAR})"));
    }
    // SAFETY: plain system calls without pointers.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare only changes this process's namespaces.
    sys::check(unsafe { libc::unshare(NAMESPACES) }.into())
        .map_err(|e| format!("unshare (user, mount, PID, network, IPC): {e}"))?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| format!("writing /proc/self/{file}: {e}"))
    };
    // Without setgroups denied, an unprivileged process may not map its group.
    match std::fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("writing /proc/self/setgroups: {e}"));
        }
        _ => {}
    }
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))
}

/// Waits for PID 1 and exits the way it did.
fn wait_for(child: libc::pid_t) -> ExitCode {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid place for the result.
        let result = unsafe { libc::waitpid(child, &mut status, 0) };
        if result == child {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return fail(
                EXIT_SETUP_FAILED,
                "waiting for the sandbox",
                "waitpid failed",
            );
        }
    }
    if libc::WIFEXITED(status) {
        ExitCode::from(libc::WEXITSTATUS(status) as u8)
    } else {
        ExitCode::from(128 + libc::WTERMSIG(status) as u8)
    }
}

/// The sandbox's PID 1: builds the root, sets the limits and becomes the
/// command. Returns only on failure.
fn become_pid_one(spec: &Spec) -> sys::StepError {
    match prepare(spec) {
        Err(e) => e,
        Ok(()) => {
            let (program, args) = spec.command.split_first().expect("a command");
            let error = Command::new(program)
                .args(args)
                .env_clear()
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .current_dir(PROJECT_MOUNT)
                .exec();
            sys::StepError {
                step: format!("running {program}"),
                error,
            }
        }
    }
}

fn prepare(spec: &Spec) -> Step {
    if spec.command.is_empty() {
        return Err::<(), _>(std::io::Error::other("empty command")).step(|| "the spec".into());
    }
    sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "asking to die with the launcher",
    )?;
    // SAFETY: setsid has no arguments; it fails only for a group leader.
    unsafe { libc::setsid() };
    mounts::enter_root(spec)?;
    if spec.loopback {
        sys::loopback_up()?;
    }
    let limits = &spec.limits;
    sys::set_limit(libc::RLIMIT_AS, limits.memory, "address space")?;
    sys::set_limit(libc::RLIMIT_NPROC, limits.processes, "process")?;
    sys::set_limit(libc::RLIMIT_FSIZE, limits.file_size, "file size")?;
    sys::set_limit(libc::RLIMIT_CORE, 0, "core dump")?;
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "setting no_new_privs")
}
