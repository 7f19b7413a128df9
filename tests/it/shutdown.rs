//! `dialer run` as a service manager stops it: SIGTERM ends the process
//! within its drain time even when nobody reads its stderr (a stalled or
//! vanished log reader must never keep the daemon alive).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `run` drains in-flight requests for 30 s; the rest is slack for a loaded
/// test machine.
const STOP_BOUND: Duration = Duration::from_secs(40);

/// A daemon on a fresh SQLite file with the simulated provider, a campaign
/// that is always open, debug logging (so it writes a lot) in `format` and
/// 300 leads.
fn daemon_config(dir: &Path, listen: SocketAddr, format: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        format!(
            r#"
campaigns_dir = "campaigns"
[database]
url = "sqlite://shutdown.db"
[server]
listen = "{listen}"
[log]
level = "debug"
format = "{format}"
[providers.sim]
kind = "simulated"
min_duration = "1s"
max_duration = "3s"
seed = 5
requests_per_minute = 100000
max_concurrent_calls = 50
poll_interval = "1s"
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/busy.toml"),
        r#"
id = "busy"
provider = "sim"
timezone = "America/New_York"
[pacing]
calls_per_minute = 600
burst = 20
max_concurrent = 50
[retry]
max_attempts = 3
[retry.after]
default = "1m"
[compliance]
local_hours = "off"
"#,
    )
    .unwrap();
    let mut csv = String::from("phone,name\n");
    for i in 0..300 {
        csv.push_str(&format!("+1212736{:04},Lead {i}\n", 1000 + i));
    }
    std::fs::write(dir.join("leads.csv"), csv).unwrap();
    let config = dir.join("dialer.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(&config)
        .args(["import", "--campaign", "busy"])
        .arg(dir.join("leads.csv"))
        .env_remove("DIALER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    config
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Starts `dialer run` with stderr on a pipe the test holds but never reads.
fn start(config: &Path) -> (Child, ChildStderr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env_remove("DIALER_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    (child, stderr)
}

/// Waits until the daemon answers `/healthz`: by then its signal handlers
/// are installed, so SIGTERM tests the daemon and not the default action.
fn wait_healthy(child: &mut Child, listen: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the daemon exited before it was healthy: {status}");
        }
        if let Ok(mut s) = TcpStream::connect_timeout(&listen, Duration::from_millis(500)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.") && answer.contains(" 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the daemon never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends SIGTERM and waits for the process to end, up to `STOP_BOUND`;
/// kills it and fails past that.
fn terminate(child: &mut Child) -> (ExitStatus, Duration) {
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -TERM failed");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = sent.elapsed();
            println!(
                "stopped {:.2} s after SIGTERM ({status})",
                took.as_secs_f64()
            );
            return (status, took);
        }
        if sent.elapsed() > STOP_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the daemon was still running {} s after SIGTERM",
                STOP_BOUND.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the daemon with a stderr nobody reads, lets the pipe fill, and
/// stops it with SIGTERM.
fn stop_with_a_full_stderr(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let config = daemon_config(dir.path(), listen, format);
    let (mut child, mut stderr) = start(&config);
    wait_healthy(&mut child, listen);
    // Long enough for debug logging to fill the 64 KiB pipe.
    std::thread::sleep(Duration::from_secs(5));
    let (status, _) = terminate(&mut child);
    assert!(status.success(), "{status}");
    // What the pipe holds shows it was full (64 KiB, less what partly filled
    // pages leave unused): the daemon was writing into a pipe that could take
    // no more.
    let mut held = Vec::new();
    stderr.read_to_end(&mut held).unwrap();
    println!("{format}: {} bytes were waiting in the pipe", held.len());
    assert!(held.len() >= 48 * 1024, "only {} bytes logged", held.len());
}

#[test]
fn sigterm_stops_the_daemon_while_nobody_reads_its_stderr() {
    stop_with_a_full_stderr("text");
}

#[test]
fn sigterm_stops_the_daemon_while_nobody_reads_its_json_logs() {
    stop_with_a_full_stderr("json");
}

#[test]
fn sigterm_stops_the_daemon_after_its_stderr_reader_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let config = daemon_config(dir.path(), listen, "text");
    let (mut child, stderr) = start(&config);
    wait_healthy(&mut child, listen);
    drop(stderr);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died when its log reader went away"
    );
    let (status, _) = terminate(&mut child);
    assert!(status.success(), "{status}");
}
