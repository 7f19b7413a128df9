//! Signals: SIGTERM and SIGINT stop gracefully, SIGHUP asks for a reload.
//! Owns the promise that a stop request always ends the process: past a
//! deadline, or on a second SIGTERM/SIGINT, it exits without waiting further.
//! Tells systemd (`Type=notify`) when the daemon is ready or stopping.

use sd_notify::NotifyState;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Exit status when the process is ended before its graceful stop finished.
const FORCED_EXIT: i32 = 1;

/// Cancels `token` on SIGTERM/SIGINT; sends on the returned channel on SIGHUP.
/// Once stopping has begun (by a signal or anything else cancelling `token`),
/// the process exits after `deadline` even if the graceful stop is stuck, and
/// at once on a second SIGTERM/SIGINT.
pub fn listen(token: CancellationToken, deadline: Duration) -> std::io::Result<mpsc::Receiver<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        // Cancel before logging: nothing that writes may stand between a
        // signal and the stop it asks for.
        let why = loop {
            tokio::select! {
                _ = term.recv() => { token.cancel(); break "SIGTERM"; }
                _ = int.recv() => { token.cancel(); break "SIGINT"; }
                _ = hup.recv() => { let _ = tx.try_send(()); }
                _ = token.cancelled() => break "shutdown requested",
            }
        };
        exit_after(deadline);
        tracing::info!(deadline_secs = deadline.as_secs(), "{why}: stopping");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second stop signal: exiting without finishing the graceful stop");
        exit_now();
    });
    Ok(rx)
}

/// Ends the process `after` from now unless it has ended by then. A plain
/// thread, not a task: it must fire even if the runtime is wedged.
fn exit_after(after: Duration) {
    static ARMED: AtomicBool = AtomicBool::new(false);
    if ARMED.swap(true, Ordering::SeqCst) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("stop-deadline".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::error!(
                deadline_secs = after.as_secs(),
                "graceful stop did not finish in time: exiting"
            );
            exit_now();
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot arm the stop deadline");
    }
}

fn exit_now() -> ! {
    // Gives the log writer a moment to pass the last line on; it never
    // blocks, so this cannot hang.
    std::thread::sleep(Duration::from_millis(100));
    std::process::exit(FORCED_EXIT)
}

/// `sd_notify(3)`: tells `$NOTIFY_SOCKET` (if set) the daemon's state.
/// Failures are logged at debug and otherwise ignored: a service manager
/// that does not listen must not stop the daemon. The `sd-notify` crate
/// formats the states and sends to a path socket; an abstract socket
/// (`@name`, what systemd uses in some containers and test harnesses) it
/// would take for a path, so that one is addressed here.
pub fn notify(states: &[NotifyState]) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = match target.as_bytes().strip_prefix(b"@") {
        Some(name) => notify_abstract(name, states),
        None => sd_notify::notify(states),
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}

fn notify_abstract(name: &[u8], states: &[NotifyState]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.send_to_addr(msg.as_bytes(), &addr)?;
    Ok(())
}
