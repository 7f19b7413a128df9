//! `dialer run` started the way deploy/dialer.service starts it: working
//! directory and `$STATE_DIRECTORY` the state directory, the configuration
//! in another directory it must not write to, `$NOTIFY_SOCKET` and
//! `$WATCHDOG_USEC` set. The test plays systemd: it binds the notify socket
//! and reads what the daemon tells it.

use crate::support::process::free_port;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            out.insert(e.path(), (m.len(), m.modified().unwrap()));
        }
    }
    out
}

enum Socket {
    Path,
    Abstract,
}

/// The notify socket the test listens on, and the `$NOTIFY_SOCKET` naming it.
fn notify_socket(kind: Socket, dir: &Path) -> (UnixDatagram, String) {
    let sock = match kind {
        Socket::Path => {
            let path = dir.join("notify");
            let s = UnixDatagram::bind(&path).unwrap();
            (s, path.display().to_string())
        }
        Socket::Abstract => {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("dialer-test-{}", uuid::Uuid::new_v4().simple());
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
        }
    };
    sock.0
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    sock
}

/// Messages read from the notify socket until `until` says stop or `within`
/// passes; returns every line read.
fn read_until(
    sock: &UnixDatagram,
    within: Duration,
    mut until: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !until(&lines) {
        if let Ok(n) = sock.recv(&mut buf) {
            lines.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            );
        }
    }
    lines
}

fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the daemon as the unit does on `url` and checks what systemd would see.
fn runs_as_the_unit_runs_it(url: &str, socket: Socket) {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("etc");
    let state = root.path().join("state");
    std::fs::create_dir_all(config.join("campaigns")).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let port = free_port();
    std::fs::write(
        config.join("dialer.toml"),
        format!(
            "campaigns_dir = \"campaigns\"\n[database]\nurl = \"{url}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n[providers.sim]\nkind = \"simulated\"\npoll_interval = \"10s\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("campaigns/a.toml"),
        "id = \"spring\"\nprovider = \"sim\"\ntimezone = \"America/Chicago\"\n[window]\nweekly = [\"mon-fri 09:00-17:00\"]\n",
    )
    .unwrap();
    let before = snapshot(&config);
    let (sock, notify_env) = notify_socket(socket, root.path());

    let child = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(config.join("dialer.toml"))
        .arg("run")
        .current_dir(&state)
        .env("STATE_DIRECTORY", &state)
        .env("NOTIFY_SOCKET", &notify_env)
        // Pings every second while every loop beat within the last 2 s.
        .env("WATCHDOG_USEC", "4000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("DIALER_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Killed(child);

    let lines = read_until(&sock, Duration::from_secs(60), |l| {
        l.iter().any(|m| m == "READY=1")
    });
    assert!(
        lines.iter().any(|m| m == "READY=1"),
        "no READY=1 on {notify_env} (read {lines:?}; exited: {:?})",
        child.0.try_wait()
    );
    assert!(
        healthz(port),
        "/healthz does not answer once READY=1 is sent"
    );

    let lines = read_until(&sock, Duration::from_secs(10), |l| {
        l.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3
    });
    let pings = lines.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(
        pings >= 3,
        "{pings} WATCHDOG=1 in 10 s with WATCHDOG_USEC=4s: {lines:?}"
    );

    let term = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let lines = read_until(&sock, Duration::from_secs(40), |l| {
        l.iter().any(|m| m == "STOPPING=1")
    });
    assert!(
        lines.iter().any(|m| m == "STOPPING=1"),
        "no STOPPING=1 after SIGTERM: {lines:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running 40 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "stopped with {status}");

    if url.starts_with("sqlite://") {
        assert!(
            state.join("dialer.db").is_file(),
            "the database is not in the state directory"
        );
    }
    assert_eq!(
        snapshot(&config),
        before,
        "the daemon created or changed files in its configuration directory"
    );
}

#[test]
fn sqlite_in_the_state_directory_with_readiness_and_watchdog_on_a_path_socket() {
    runs_as_the_unit_runs_it("sqlite://dialer.db", Socket::Path);
}

#[test]
fn notifications_reach_an_abstract_socket() {
    runs_as_the_unit_runs_it("sqlite://dialer.db", Socket::Abstract);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_readiness_and_watchdog() {
    let Some(db) = crate::support::postgres().await else {
        return;
    };
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || runs_as_the_unit_runs_it(&url, Socket::Path))
        .await
        .unwrap();
}

/// `api_key_file = "revring"` names a systemd credential: read from
/// `$CREDENTIALS_DIRECTORY` when it holds one of that name.
#[test]
fn a_relative_key_file_is_read_from_the_credentials_directory() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("etc");
    let creds = root.path().join("creds");
    std::fs::create_dir_all(config.join("campaigns")).unwrap();
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(
        config.join("dialer.toml"),
        "campaigns_dir = \"campaigns\"\n[providers.revring]\nkind = \"revring\"\napi_key_file = \"revring\"\n",
    )
    .unwrap();
    let check = |creds_env: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dialer"));
        c.arg("--config")
            .arg(config.join("dialer.toml"))
            .arg("check")
            .env_remove("DIALER_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY");
        if let Some(d) = creds_env {
            c.env("CREDENTIALS_DIRECTORY", d);
        }
        c.output().unwrap()
    };
    let out = check(None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing key file must be refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("api_key_file"));

    std::fs::write(creds.join("revring"), "rr_live_key\n").unwrap();
    let out = check(Some(&creds));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
