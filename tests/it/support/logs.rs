//! Every log line the daemon writes while this test binary runs, captured
//! in memory by one global subscriber (a process has only one), so a test
//! can check what reached the logs, secrets above all.

use std::sync::{Mutex, Once};

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Sink;

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once, whichever test asks first).
pub fn capture() {
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("dialer=debug,info")
            .with_ansi(false)
            .with_writer(|| Sink)
            .try_init();
    });
}

/// Everything captured so far, from every test of the binary.
pub fn text() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}
