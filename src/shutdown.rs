//! Signals: SIGTERM and SIGINT stop gracefully, SIGHUP asks for a reload.
//! Tells systemd (`Type=notify`) when the daemon is ready or stopping.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGTERM/SIGINT; sends on the returned channel on SIGHUP.
pub fn listen(token: CancellationToken) -> std::io::Result<mpsc::Receiver<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); token.cancel(); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); token.cancel(); break; }
                _ = hup.recv() => { let _ = tx.try_send(()); }
                _ = token.cancelled() => break,
            }
        }
    });
    Ok(rx)
}

/// `sd_notify(3)`: a datagram to `$NOTIFY_SOCKET`. Written here because the
/// protocol is one `sendto` and the crates for it pull in more than they give.
pub fn notify(state: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    if path.starts_with('@') {
        // Abstract sockets need Linux-specific addressing; systemd uses a path by default.
        return;
    }
    if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = sock.send_to(state.as_bytes(), &path);
    }
}
