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

/// Writes a daemon file whose only provider table carries `provider_extra`,
/// and one campaign file with `campaign_extra` appended.
fn bounded_config(
    dir: &Path,
    daemon_extra: &str,
    provider_extra: &str,
    campaign: &str,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::write(
        dir.join("dialer.toml"),
        format!(
            "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://test.db\"\n{daemon_extra}\n[providers.sim]\nkind = \"simulated\"\n{provider_extra}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/c1.toml"),
        format!("id = \"c1\"\nprovider = \"sim\"\ntimezone = \"America/Chicago\"\n{campaign}\n"),
    )
    .unwrap();
    dir.join("dialer.toml")
}

#[test]
fn check_lists_every_value_out_of_range_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bounded_config(
        dir.path(),
        "max_connections = 5000",
        r#"
requests_per_minute = 2000000
max_concurrent_calls = 0
request_timeout = "10m"
poll_interval = "10ms"
max_call_duration = "100000y"
min_duration = "0s"
max_duration = "30d"
pause_after_unknown = 0
"#,
        r#"
[pacing]
calls_per_minute = 2000000
burst = 20000
max_concurrent = 200000
[retry]
max_attempts = 5000
[retry.after]
no_answer = "300000y"
busy = "500ms"
default = "400d"
[compliance]
max_attempts_per_day = 0
"#,
    );
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    for expected in [
        "dialer.toml: `database.max_connections`: 5000 is out of range (at most 1000)",
        "dialer.toml: `providers.sim.requests_per_minute`: 2000000 is out of range (at most 1000000)",
        "dialer.toml: `providers.sim.max_concurrent_calls`: 0 is out of range (at least 1)",
        "dialer.toml: `providers.sim.request_timeout`: `10m` is out of range (at most 5m)",
        "dialer.toml: `providers.sim.poll_interval`: `10ms` is out of range (at least 100ms)",
        "dialer.toml: `providers.sim.max_call_duration`: `100000y` is out of range (at most 1d)",
        "dialer.toml: `providers.sim.max_duration`: `30d` is out of range (at most 1d)",
        "dialer.toml: `providers.sim.pause_after_unknown`: 0 is out of range (at least 1)",
        "c1.toml: `pacing.calls_per_minute`: 2000000 is out of range (at most 1000000)",
        "c1.toml: `pacing.burst`: 20000 is out of range (at most 10000)",
        "c1.toml: `pacing.max_concurrent`: 200000 is out of range (at most 100000)",
        "c1.toml: `retry.max_attempts`: 5000 is out of range (at most 1000)",
        "c1.toml: `retry.after.no_answer`: `300000y` is out of range (at most 365d)",
        "c1.toml: `retry.after.busy`: `500ms` is out of range",
        "c1.toml: `retry.after.default`: `400d` is out of range (at most 365d)",
        "c1.toml: `compliance.max_attempts_per_day`: 0 is out of range (at least 1)",
    ] {
        assert!(t.contains(expected), "missing `{expected}` in:\n{t}");
    }
}

#[test]
fn check_accepts_every_value_at_its_range_limits() {
    let dir = tempfile::tempdir().unwrap();
    for (provider, campaign) in [
        (
            r#"
requests_per_minute = 1000000
max_concurrent_calls = 100000
request_timeout = "5m"
poll_interval = "1d"
max_call_duration = "1d"
min_duration = "1d"
max_duration = "1d"
pause_after_unknown = 1000
"#,
            r#"
[pacing]
calls_per_minute = 1000000
burst = 10000
max_concurrent = 100000
[retry]
max_attempts = 1000
[retry.after]
no_answer = "365d"
default = "365d"
[compliance]
max_attempts_per_day = 1000
"#,
        ),
        (
            r#"
requests_per_minute = 1
max_concurrent_calls = 1
request_timeout = "1s"
poll_interval = "100ms"
max_call_duration = "1s"
min_duration = "0s"
max_duration = "0s"
pause_after_unknown = 1
"#,
            r#"
[pacing]
calls_per_minute = 1
burst = 1
max_concurrent = 1
[retry]
max_attempts = 1
[retry.after]
no_answer = "0s"
busy = "1s"
default = "0s"
[compliance]
max_attempts_per_day = 1
"#,
        ),
    ] {
        let cfg = bounded_config(dir.path(), "max_connections = 1000", provider, campaign);
        let out = dialer(&cfg, &["check"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        assert!(t.contains("campaign c1"), "{t}");
    }
}

#[test]
fn check_warns_when_campaigns_can_ask_a_provider_for_more_than_its_request_rate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
    let cfg = dir.path().join("dialer.toml");
    std::fs::write(
        &cfg,
        "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://test.db\"\n\
         [providers.sim]\nkind = \"simulated\"\nrequests_per_minute = 100\n\
         [providers.other]\nkind = \"simulated\"\nrequests_per_minute = 100\n",
    )
    .unwrap();
    let campaign = |id: &str, provider: &str, cpm: u32, paused: bool| {
        std::fs::write(
            dir.path().join(format!("campaigns/{id}.toml")),
            format!(
                "id = \"{id}\"\nprovider = \"{provider}\"\ntimezone = \"UTC\"\npaused = {paused}\n\
                 [pacing]\ncalls_per_minute = {cpm}\n"
            ),
        )
        .unwrap();
    };
    // 60 + 50 a minute on a provider allowing 100: over.
    campaign("spring", "sim", 60, false);
    campaign("summer", "sim", 50, false);
    // 100 exactly, once the paused one is left out: not over.
    campaign("autumn", "other", 100, false);
    campaign("winter", "other", 90, true);
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "a warning is not an error: {t}");
    let warnings: Vec<&str> = t.lines().filter(|l| l.starts_with("warning:")).collect();
    let sim: Vec<&&str> = warnings.iter().filter(|l| l.contains("`sim`")).collect();
    assert_eq!(sim.len(), 1, "one warning for provider sim in:\n{t}");
    for expected in [
        "110 calls a minute",
        "spring 60",
        "summer 50",
        "requests_per_minute = 100",
        "placing will wait for the provider's budget",
        "the campaigns share it",
        "polling",
    ] {
        assert!(sim[0].contains(expected), "missing `{expected}` in:\n{t}");
    }
    assert!(
        !warnings.iter().any(|l| l.contains("`other`")),
        "provider other is not over-asked:\n{t}"
    );
}

#[test]
fn an_unknown_region_is_refused_before_any_row_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let csv = dir.path().join("leads.csv");
    std::fs::write(&csv, "phone\n212 736 5001\n212 736 5002\n").unwrap();
    let out = dialer(
        &cfg,
        &[
            "import",
            "--campaign",
            "spring",
            csv.to_str().unwrap(),
            "--region",
            "XX",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("--region: `XX` is not a region code"), "{t}");
    assert!(!t.contains("imported"), "rows were read: {t}");
    let out = dialer(&cfg, &["dnc", "add", "212 736 5001", "--region", "XX"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = dialer(
        &cfg,
        &["dnc", "import", csv.to_str().unwrap(), "--region", "XX"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Nothing was stored: the same import with a real region takes both rows.
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
    assert!(
        text(&out).contains("imported 2, duplicate 0, invalid 0"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_misspelt_log_level_is_refused_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    for (level, ok) in [
        ("warning", false),
        ("infoo", false),
        ("dialer=verbose", false),
        ("warn", true),
        ("dialer=debug,info", true),
    ] {
        let text_before = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, format!("{text_before}[log]\nlevel = \"{level}\"\n")).unwrap();
        let out = dialer(&cfg, &["check"]);
        let t = text(&out);
        if ok {
            assert_eq!(out.status.code(), Some(0), "{level}: {t}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{level}: {t}");
            assert!(
                t.contains("dialer.toml") && t.contains("log.level"),
                "{level}: {t}"
            );
            assert!(
                t.contains("is not one of trace, debug, info, warn, error, off"),
                "{level}: {t}"
            );
        }
        std::fs::write(&cfg, text_before).unwrap();
    }
}

/// `sim_config` with the campaign file replaced by `campaign`.
fn config_with_campaign(dir: &Path, campaign: &str) -> std::path::PathBuf {
    let cfg = sim_config(dir);
    std::fs::write(dir.join("campaigns/a.toml"), campaign).unwrap();
    cfg
}

#[test]
fn without_a_campaign_timezone_check_and_status_say_each_lead_has_its_own_zone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_campaign(
        dir.path(),
        "id = \"spring\"\nprovider = \"sim\"\n[window]\nweekly = [\"mon-fri 09:00-17:00\"]\n",
    );
    for args in [&["check"][..], &["status"][..]] {
        let out = dialer(&cfg, args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {t}");
        assert!(!t.contains("none within 366 days"), "{args:?}: {t}");
        assert!(t.contains("next opening 20"), "{args:?}: {t}");
        assert!(t.contains("for a lead in UTC"), "{args:?}: {t}");
        assert!(
            t.contains("each lead is called in its own zone"),
            "{args:?}: {t}"
        );
    }
}

#[test]
fn status_of_a_campaign_whose_file_is_gone_shows_its_leads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let csv = dir.path().join("leads.csv");
    std::fs::write(&csv, "phone\n+12127365000\n+12127365001\n").unwrap();
    let out = dialer(
        &cfg,
        &["import", "--campaign", "spring", csv.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::write(
        dir.path().join("campaigns/a.toml"),
        "id = \"summer\"\nprovider = \"sim\"\ntimezone = \"UTC\"\n",
    )
    .unwrap();
    let out = dialer(&cfg, &["status", "--campaign", "spring"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("campaign spring"), "{t}");
    assert!(t.contains("campaign file gone"), "{t}");
    assert!(t.contains("pending 2"), "{t}");
    let out = dialer(&cfg, &["status", "--campaign", "spring", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["campaigns"][0]["leads"]["pending"], 2, "{v}");
    assert_eq!(v["campaigns"][0]["file_gone"], true, "{v}");
    // A campaign with neither file nor leads is still unknown.
    let out = dialer(&cfg, &["status", "--campaign", "autumn"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn booleans_written_as_strings_are_refused_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_campaign(
        dir.path(),
        "id = \"spring\"\nprovider = \"sim\"\ntimezone = \"UTC\"\npaused = \"yes\"\n\
         [compliance]\nrequire_consent = \"no\"\n",
    );
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("a.toml: `paused`: \"yes\" is a string"), "{t}");
    assert!(
        t.contains("a.toml: `compliance.require_consent`: \"no\" is a string"),
        "{t}"
    );
    let cfg = config_with_campaign(
        dir.path(),
        "id = \"spring\"\nprovider = \"sim\"\ntimezone = \"UTC\"\npaused = true\n",
    );
    let out = dialer(&cfg, &["check"]);
    assert!(text(&out).contains("[paused]"), "{}", text(&out));
}

#[test]
fn an_unreadable_webhook_secret_file_is_an_error_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    std::fs::write(dir.path().join("key"), "k").unwrap();
    std::fs::write(
        &cfg,
        "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://test.db\"\n\
         [providers.sim]\nkind = \"simulated\"\n\
         [providers.rr]\nkind = \"revring\"\napi_key_file = \"key\"\n\
         webhook_secret_file = \"no-such-secret\"\n",
    )
    .unwrap();
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("dialer.toml: `providers.rr.webhook_secret_file`: cannot read"),
        "{t}"
    );
    assert!(t.contains("no-such-secret"), "{t}");
}

#[test]
fn an_error_in_an_environment_override_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(&cfg)
        .arg("check")
        .env_remove("DIALER_CONFIG")
        .env("DIALER__DATABASE__MAX_CONNECTIONS", "5000")
        .env("DIALER__DATABSE__URL", "sqlite://other.db")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(
            "environment variable DIALER__DATABASE__MAX_CONNECTIONS: `database.max_connections`: 5000 is out of range"
        ),
        "{t}"
    );
    assert!(
        t.contains("environment variable DIALER__DATABSE__URL: `databse`: unknown key"),
        "{t}"
    );
    assert!(!t.contains("dialer.toml: `database"), "{t}");
}

#[test]
fn dnc_add_names_every_bad_number_and_adds_none() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    let out = dialer(
        &cfg,
        &["dnc", "add", "+12127365000", "hello", "+12127365001", "12"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("2 of 4 numbers are not valid; nothing was added"),
        "{t}"
    );
    assert!(t.contains("number 2 `hello`"), "{t}");
    assert!(t.contains("number 4 `12`"), "{t}");
    let out = dialer(&cfg, &["dnc", "add", "+12127365000", "+12127365001"]);
    assert!(
        text(&out).contains("added 2, already listed 0"),
        "{}",
        text(&out)
    );
}

#[test]
fn campaigns_dir_after_log_is_read_with_a_deprecation_warning_and_top_level_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    let daemon = "[database]\nurl = \"sqlite://test.db\"\n[providers.sim]\nkind = \"simulated\"\n\
                  [log]\nformat = \"text\"\ncampaigns_dir = \"campaigns\"\n";
    std::fs::write(&cfg, daemon).unwrap();
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("campaign spring"), "{t}");
    let warned: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("log.campaigns_dir"))
        .collect();
    assert_eq!(warned.len(), 1, "{t}");
    assert!(warned[0].contains("dialer.toml"), "{t}");
    assert!(warned[0].contains("deprecated"), "{t}");
    // Both set: the top level wins (an empty directory: no campaign).
    std::fs::write(&cfg, format!("campaigns_dir = \"elsewhere\"\n{daemon}")).unwrap();
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!t.contains("campaign spring"), "{t}");
    assert!(t.contains("the top-level campaigns_dir wins"), "{t}");
}

#[test]
fn a_wrong_outbound_webhook_is_refused_naming_entry_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config(dir.path());
    std::fs::write(dir.path().join("crm_secret"), "s3cret").unwrap();
    std::fs::write(
        &cfg,
        "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://test.db\"\n\
         [providers.sim]\nkind = \"simulated\"\n\
         [[outbound_webhooks]]\nurl = \"https://crm.example/hook\"\nsecret_file = \"crm_secret\"\n\
         [[outbound_webhooks]]\nurl = \"ftp://crm.example/hook\"\nsecret_file = \"crm_secret\"\n\
         events = [\"lead.final\", \"call.done\"]\ntimeout = \"0s\"\n\
         [[outbound_webhooks]]\nname = \"https://crm.example/hook\"\nurl = \"https://b.example/\"\n",
    )
    .unwrap();
    let out = dialer(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    for expected in [
        "`outbound_webhooks[1].url`: `ftp://crm.example/hook` is not an http(s) URL",
        "`outbound_webhooks[1].events`: `call.done` is not an event",
        "`outbound_webhooks[1].timeout`: `0s` is out of range",
        "`outbound_webhooks[2].secret_env`: set secret_env or secret_file",
        "`outbound_webhooks[2].name`: `https://crm.example/hook` names another outbound webhook too",
    ] {
        assert!(t.contains(expected), "missing {expected:?} in:\n{t}");
    }
    assert!(!t.contains("outbound_webhooks[0]"), "{t}");
}
