//! The `dialer` binary as an operator runs it: exit codes, messages, output.

use std::path::Path;
use std::process::{Command, Output};

fn dialer(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("DIALER_CONFIG")
        .output()
        .expect("run dialer")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sim_config(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://test.db\"\n[providers.sim]\nkind = \"simulated\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/a.toml"),
        "id = \"spring\"\nprovider = \"sim\"\ntimezone = \"America/Chicago\"\n[window]\nweekly = [\"mon-fri 09:00-17:00\"]\n",
    )
    .unwrap();
    dir.join("dialer.toml")
}

#[test]
fn check_lists_every_problem_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("campaigns")).unwrap();
    std::fs::write(
        d.join("dialer.toml"),
        r#"
campaigns_dir = "campaigns"
[database]
urll = "sqlite://x.db"
[server]
listen = "not an address"
[providers.sim]
kind = "simulated"
[providers.bad]
kind = "carrier-pigeon"
"#,
    )
    .unwrap();
    std::fs::write(
        d.join("campaigns/one.toml"),
        r#"
id = "one"
provider = "nope"
timezone = "Mars/Olympus_Mons"
[pacing]
calls_per_minut = 30
[retry.after]
no_answer = "soon"
"#,
    )
    .unwrap();
    std::fs::write(
        d.join("campaigns/two.toml"),
        "provider = \"sim\"\npriority = \"high\"\n",
    )
    .unwrap();
    let out = dialer(&d.join("dialer.toml"), &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    for expected in [
        "dialer.toml: `database.urll`: unknown key",
        "dialer.toml: `server.listen`",
        "dialer.toml: `providers.bad.kind`: unknown kind `carrier-pigeon`",
        "one.toml: `provider`: `nope` is not a provider",
        "one.toml: `timezone`: `Mars/Olympus_Mons` is not an IANA time zone",
        "one.toml: `pacing.calls_per_minut`: unknown key",
        "one.toml: `retry.after.no_answer`: `soon` is not a duration",
        "two.toml: `id`: is required",
        "two.toml: `priority`",
    ] {
        assert!(t.contains(expected), "missing `{expected}` in:\n{t}");
    }
}

#[test]
fn check_on_a_good_config_prints_next_opening() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("campaign spring"), "{t}");
    assert!(t.contains("next opening 20"), "{t}");
}

#[test]
fn import_takes_good_rows_and_names_each_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let csv = dir.path().join("leads.csv");
    std::fs::write(
        &csv,
        "phone,name,timezone,plan\n\
         +1 212-736-5000,Ada,America/New_York,gold\n\
         +1 099 555 0123,Bob,,basic\n\
         212 736 5001,Cy,,basic\n\
         +33 1 42 68 53 00,Dee,Europe/Atlantis,gold\n\
         +44 20 7946 0123,Eve,,gold,extra\n\
         +44 20 7946 0958,Fay,Europe/London,basic\n",
    )
    .unwrap();
    let out = dialer(
        &cfg,
        &[
            "import",
            "--campaign",
            "spring",
            csv.to_str().unwrap(),
            "--region",
            "US",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("imported 3, duplicate 0, invalid 3"), "{t}");
    assert!(t.contains("line 3: phone"), "{t}");
    assert!(t.contains("line 5: timezone: `Europe/Atlantis`"), "{t}");
    assert!(t.contains("line 6: 5 fields, the header has 4"), "{t}");
    // Importing again adds nothing.
    let again = dialer(
        &cfg,
        &[
            "import",
            "--campaign",
            "spring",
            csv.to_str().unwrap(),
            "--region",
            "US",
        ],
    );
    assert!(
        text(&again).contains("imported 0, duplicate 3, invalid 3"),
        "{}",
        text(&again)
    );

    let status = dialer(&cfg, &["status", "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    let c = &v["campaigns"][0];
    assert_eq!(c["id"], "spring");
    assert_eq!(c["provider"], "sim");
    assert_eq!(c["paused"], false);
    assert_eq!(c["leads"]["pending"], 3);
    assert_eq!(c["in_flight"], 0);
    assert!(c["next_opening"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn unknown_campaign_is_a_runtime_failure_and_bad_csv_header_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "number,name\n+12127365000,Ada\n").unwrap();
    let out = dialer(
        &cfg,
        &["import", "--campaign", "winter", csv.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown campaign `winter`"));
    let out = dialer(
        &cfg,
        &["import", "--campaign", "spring", csv.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("x.csv: line 1: the header has no `phone` column"),
        "{}",
        text(&out)
    );
    let out = dialer(&cfg, &["status", "--campaign", "winter"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    assert_eq!(dialer(&cfg, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(dialer(&cfg, &["import"]).status.code(), Some(2));
    assert_eq!(
        dialer(&dir.path().join("missing.toml"), &["check"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn demo_runs_to_the_end_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .args(["demo", "--leads", "60"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("ALWAYS OPEN"), "{t}");
    assert!(t.contains("summary after"), "{t}");
    assert!(t.contains("every lead reached a final status"), "{t}");
}

#[test]
fn dnc_add_and_import_from_a_plain_list_and_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let out = dialer(
        &cfg,
        &[
            "dnc",
            "add",
            "+12127365000",
            "212 736 5001",
            "--region",
            "US",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("added 2, already listed 0"),
        "{}",
        text(&out)
    );
    let plain = dir.path().join("dnc.txt");
    std::fs::write(
        &plain,
        "# opted out\n+12127365000\n+33 1 42 68 53 00\nnot a number\n",
    )
    .unwrap();
    let out = dialer(&cfg, &["dnc", "import", plain.to_str().unwrap()]);
    assert!(
        text(&out).contains("added 1, already listed 1, invalid 1"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("line 4:"), "{}", text(&out));
    let csv = dir.path().join("dnc.csv");
    std::fs::write(&csv, "name,phone\nAda,+12127365002\nBob,+12127365001\n").unwrap();
    let out = dialer(&cfg, &["dnc", "import", csv.to_str().unwrap()]);
    assert!(
        text(&out).contains("added 1, already listed 1, invalid 0"),
        "{}",
        text(&out)
    );
    // A listed number is explained as never callable.
    let out = dialer(
        &cfg,
        &[
            "explain",
            "--campaign",
            "spring",
            "--phone",
            "+12127365002",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["blocked_by"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("do_not_call")),
        "{v}"
    );
    assert_eq!(v["callable"], false);
    assert!(v["next_callable_at"].is_null(), "{v}");
    assert_eq!(
        dialer(&cfg, &["dnc", "add", "hello"]).status.code(),
        Some(2)
    );
}
