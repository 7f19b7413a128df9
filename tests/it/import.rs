//! `dialer import` on files large enough to watch: progress lines without a
//! terminal, a stop by SIGINT that says what it committed (and a re-run that
//! takes the rest), and an unclosed quote named by its line.

use crate::support::TestDb;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &Path, url: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        format!("campaigns_dir = \"campaigns\"\n[database]\nurl = \"{url}\"\n[providers.sim]\nkind = \"simulated\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/a.toml"),
        "id = \"spring\"\nprovider = \"sim\"\ntimezone = \"America/Chicago\"\n[window]\nweekly = [\"mon-fri 09:00-17:00\"]\n",
    )
    .unwrap();
    dir.join("dialer.toml")
}

/// `n` rows of distinct valid numbers (up to 700,000).
fn write_csv(path: &Path, n: usize) {
    let mut s = String::with_capacity(n * 40);
    s.push_str("phone,name,plan\n");
    for i in 0..n {
        s.push_str(&format!(
            "+1212{:03}{:04},Lead {i},gold\n",
            230 + i / 10_000,
            i % 10_000
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn import(cfg: &Path, csv: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dialer"));
    c.arg("--config")
        .arg(cfg)
        .args(["import", "--campaign", "spring"])
        .arg(csv)
        .env_remove("DIALER_CONFIG")
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The number after `word ` in `t`.
fn count(t: &str, word: &str) -> u64 {
    let at = t
        .find(&format!("{word} "))
        .unwrap_or_else(|| panic!("no `{word}` in {t}"));
    t[at + word.len() + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no count after `{word}` in {t}"))
}

async fn sigint_reports_what_it_committed_and_a_rerun_takes_the_rest(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &db.url);
    let csv = dir.path().join("big.csv");
    let n = 300_000;
    write_csv(&csv, n);
    let mut child = import(&cfg, &csv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop it once some batches are in, well before the end.
    let started = Instant::now();
    loop {
        let have = db.scalar("SELECT count(*) FROM leads").await;
        if have > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no row committed in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    let t = format!("{out}{err}");
    assert_eq!(status.code(), Some(130), "{t}");
    assert!(t.contains("interrupted by SIGINT"), "{t}");
    assert!(t.contains("Re-running the same import is safe"), "{t}");
    let committed = count(&err, "interrupted by SIGINT:");
    assert!(committed > 0 && committed < n as u64, "{t}");
    assert_eq!(count(&out, "imported"), committed, "{t}");
    let stored = db.scalar("SELECT count(*) FROM leads").await as u64;
    assert_eq!(
        stored, committed,
        "the message says {committed}, the database holds {stored}: {t}"
    );

    let again = import(&cfg, &csv).output().unwrap();
    let t = text(&again);
    assert_eq!(again.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!(
            "imported {}, duplicate {committed}, invalid 0",
            n as u64 - committed
        )),
        "{t}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM leads").await, n as i64);
}

async fn without_a_terminal_progress_is_printed_as_lines(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &db.url);
    let csv = dir.path().join("big.csv");
    write_csv(&csv, 210_000);
    let out = import(&cfg, &csv).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("import: ") && l.contains(" rows/s"))
        .count();
    assert!(lines >= 2, "expected progress lines on stderr: {t}");
    assert!(t.contains("import: 100000 rows,"), "{t}");
    assert!(t.contains("imported 210000, duplicate 0, invalid 0"), "{t}");
}

async fn an_unclosed_quote_is_named_by_its_line_and_merges_nothing(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &db.url);
    let csv = dir.path().join("quote.csv");
    std::fs::write(
        &csv,
        "phone,name,plan\n\
         +12127365000,Ada,gold\n\
         +12127365001,\"Bob,basic\n\
         +12127365002,Cy,gold\n\
         \n\
         +12127365003,Dee,gold\n\
         +12127365004,\"Eve,gold\n",
    )
    .unwrap();
    let out = import(&cfg, &csv).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("line 3: unclosed quote"), "{t}");
    assert!(t.contains("line 7: unclosed quote"), "{t}");
    assert!(t.contains("imported 3, duplicate 0, invalid 2"), "{t}");
    let names = db.rows("SELECT name FROM leads ORDER BY phone").await;
    assert_eq!(
        names,
        vec![
            vec![Some("Ada".to_string())],
            vec![Some("Cy".to_string())],
            vec![Some("Dee".to_string())]
        ]
    );
}

on_both_backends! {
    sigint_stops_after_a_batch => sigint_reports_what_it_committed_and_a_rerun_takes_the_rest;
    plain_progress_lines => without_a_terminal_progress_is_printed_as_lines;
    unclosed_quote => an_unclosed_quote_is_named_by_its_line_and_merges_nothing;
}
