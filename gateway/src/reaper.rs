//! Starting child processes and reaping every one of them, as PID 1 must.
//!
//! In a container the gateway is PID 1, so every orphan in the container
//! becomes its child: each bootstrap runs in a process group of its own
//! (started by the gateway, or by the RIE, which a bootstrap outlives if the
//! RIE crashes). On a host the gateway makes itself a child subreaper for
//! the same effect.
//! One task waits for `SIGCHLD` and reaps with `waitpid(-1)`; it tells
//! whoever started a process how it ended. This is why the gateway uses
//! `std::process` rather than `tokio::process`, which reaps only its own
//! children and would race with `waitpid(-1)`.

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io;
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How a child process ended, for logs.
pub type Exit = Option<String>;

/// Starts children and reaps all of them.
#[derive(Debug)]
pub struct Reaper {
    /// Who to tell when a child we started ends, by pid, and whether it
    /// leads a process group of its own.
    waiters: Mutex<HashMap<i32, (watch::Sender<Exit>, bool)>>,
}

impl Reaper {
    /// Becomes a child subreaper and starts the reaping task. Call it once,
    /// inside the runtime, before starting any child.
    pub fn start() -> io::Result<Arc<Reaper>> {
        // As PID 1 every orphan comes to us anyway; on a host this makes it
        // so. Where the kernel interface is missing (qemu-user, which runs
        // the arm64 build in `make test-shipped`, answers EINVAL), orphans
        // go to the system's init instead, and our own children are still
        // reaped here: worth a warning, not a refusal to start.
        #[cfg(target_os = "linux")]
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(error = %e, "cannot become a child subreaper; orphans go to init");
        }
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Arc::new(Reaper { waiters: Mutex::new(HashMap::new()) });
        let weak = Arc::downgrade(&reaper);
        tokio::spawn(async move {
            while sigchld.recv().await.is_some() {
                match weak.upgrade() {
                    Some(reaper) => reaper.reap(),
                    None => break,
                }
            }
        });
        Ok(reaper)
    }

    /// A reaper that reaps nothing, for tests whose environments start no
    /// process.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn idle() -> Arc<Reaper> {
        Arc::new(Reaper { waiters: Mutex::new(HashMap::new()) })
    }

    /// Spawns `command`; the receiver turns `Some` when the process ends.
    ///
    /// A process that `leads_group` (started with `process_group(0)`) has
    /// its group killed the moment it is reaped: whatever it started goes
    /// with it, and later no one signals a group id that the kernel may
    /// by then have given to another process.
    ///
    /// With `logs` (a function's name and where to count what is dropped),
    /// its stdout and stderr are piped through the gateway ([`crate::logs`]);
    /// without, they are the gateway's own.
    pub fn spawn(
        &self,
        command: &mut Command,
        leads_group: bool,
        logs: Option<(&Arc<str>, &crate::metrics::Metrics, &crate::logs::Tail)>,
    ) -> io::Result<(Pid, watch::Receiver<Exit>)> {
        if logs.is_some() {
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        }
        // Holding the lock across the spawn means a child that exits at once
        // is registered before the reaper looks it up.
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = command.spawn()?;
        let pid = child.id() as i32;
        if let Some((function, metrics, tail)) = logs {
            let stdout = child.stdout.take().map(std::os::fd::OwnedFd::from);
            let stderr = child.stderr.take().map(std::os::fd::OwnedFd::from);
            crate::logs::forward(function, metrics, tail, stdout, stderr);
        }
        // std does not reap a dropped `Child`; the reaper does.
        drop(child);
        let (tx, rx) = watch::channel(None);
        waiters.insert(pid, (tx, leads_group));
        Ok((Pid::from_raw(pid), rx))
    }

    /// Reaps every child that has ended, ours or adopted.
    fn reap(&self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    let how = match status {
                        WaitStatus::Exited(_, code) => format!("exited with {code}"),
                        WaitStatus::Signaled(_, signal, _) => format!("killed by {signal}"),
                        other => format!("{other:?}"),
                    };
                    let waiter = self
                        .waiters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&pid.as_raw());
                    match waiter {
                        Some((tx, leads_group)) => {
                            if leads_group {
                                // Its id stays reserved while members remain.
                                let _ = nix::sys::signal::killpg(
                                    pid,
                                    nix::sys::signal::Signal::SIGKILL,
                                );
                            }
                            let _ = tx.send(Some(how));
                        }
                        None => {
                            tracing::debug!(pid = pid.as_raw(), %how, "reaped an adopted process")
                        }
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    return;
                }
            }
        }
    }
}

/// The children of `pid`, found through `/proc`.
pub fn children_of(pid: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&child| parent_of(Pid::from_raw(child)) == Some(pid))
        .map(Pid::from_raw)
        .collect()
}

/// The parent of `pid` (`ppid` is the fourth field of `/proc/<pid>/stat`,
/// after the parenthesised command name), if `pid` exists.
pub fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse::<i32>().ok().map(Pid::from_raw)
}
