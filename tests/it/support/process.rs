//! The daemon as a real process, for tests that kill it or run several:
//! `dialer run` on a configuration directory, its output in a log file.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Numbers the schedule accepts at any hour (no local-hours law applies).
pub fn any_hour_phone(i: usize) -> String {
    if i % 2 == 0 {
        format!("+1212736{:04}", 1000 + i)
    } else {
        format!("+1310555{:04}", 2000 + i)
    }
}

/// Starts `dialer run` on `dir/dialer.toml`, stdout and stderr in `dir/<log>`.
pub fn spawn_daemon(dir: &Path, log: &str) -> Child {
    let out = std::fs::File::create(dir.join(log)).unwrap();
    let err = out.try_clone().unwrap();
    spawn_daemon_to(dir, out, err)
}

/// Starts `dialer run` on `dir/dialer.toml` with stdout and stderr to the
/// files given (apart, when a test reads stderr alone).
pub fn spawn_daemon_to(dir: &Path, out: std::fs::File, err: std::fs::File) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(dir.join("dialer.toml"))
        .arg("run")
        .env_remove("DIALER_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// `n` distinct numbers the schedule accepts at any hour, for runs larger
/// than `any_hour_phone` covers (past a few thousand its numbers grow a
/// fifth subscriber digit and are no longer valid): up to 20,000.
pub fn any_hour_phones(n: usize) -> Vec<String> {
    assert!(n <= 20_000, "{n} numbers asked, 20,000 at most");
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("+1212736{:04}", i / 2)
            } else {
                format!("+1310555{:04}", i / 2)
            }
        })
        .collect()
}
