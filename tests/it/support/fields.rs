//! What the end-to-end tests of an agent's fields (callbacks, opt-outs)
//! share across providers: the whole daemon run in this process against a
//! fake account, the lead and do-not-call rows read back as text, `dialer
//! explain --json` on the same configuration, a weekly window closed on one
//! known day, and the two runs each provider's test makes (`CallbackRun`,
//! `OptOutRun`): their leads, campaigns and what they must show at the wire
//! and in the database. A provider's test supplies only its fake, its
//! payload shapes and its campaign keys.

use super::wire::{placed_to, Arrival};
use super::TestDb;
use chrono::{DateTime, Datelike, Days, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::domain::rfc3339;
use dialer::engine::{self, Running};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long every call lasts on a fake.
pub const CALL: Duration = Duration::from_millis(300);
/// The longest a run may take.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How far ahead a callback is asked for "soon".
pub const AHEAD_SECS: i64 = 3;
/// How far ahead the second campaign's leads of an opt-out run are due:
/// time enough for the first campaign's calls to end and be learned, on a
/// loaded machine too.
pub const LATER_SECS: i64 = 5;

/// The daemon (`Daemon::new` + `engine::start`) on a test database, its
/// configuration in a temporary directory.
pub struct InProcess {
    running: Running,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl InProcess {
    /// Writes `files` (credentials) and the configuration, then starts the
    /// daemon, serving webhooks on `listener` when given one.
    pub async fn start(
        db: &TestDb,
        daemon_toml: &str,
        campaigns: &[(String, String)],
        files: &[(&str, &str)],
        listener: Option<tokio::net::TcpListener>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let campaigns: Vec<(&str, &str)> = campaigns
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let loaded = super::write_config(dir.path(), daemon_toml, &campaigns);
        let daemon = Daemon::new(db.store.clone(), Clock::system(), &loaded).unwrap();
        daemon.set_campaigns(&loaded.campaigns).await.unwrap();
        InProcess {
            running: engine::start(daemon, listener),
            config: dir.path().join("dialer.toml"),
            dir,
        }
    }

    /// Stops the daemon; the configuration stays for `explain`.
    pub async fn stop(self) -> Stopped {
        self.running.stop(Duration::from_secs(3)).await;
        Stopped {
            config: self.config,
            _dir: self.dir,
        }
    }
}

/// A stopped daemon's configuration.
pub struct Stopped {
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stopped {
    /// `dialer explain --campaign ID --phone NUMBER --json` on it.
    pub fn explain(&self, campaign: &str, phone: &str) -> Value {
        explain(&self.config, campaign, phone)
    }
}

fn explain(config: &Path, campaign: &str, phone: &str) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(config)
        .args([
            "explain",
            "--campaign",
            campaign,
            "--phone",
            phone,
            "--json",
        ])
        .env_remove("DIALER_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "explain {campaign} {phone}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A loopback port to serve the daemon's webhooks on, and its base URL
/// (known before the daemon starts, so a fake can be told it first).
pub async fn loopback() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    (l, base)
}

/// A campaign file on a provider (its own keys in `own`), paced well above
/// what a test needs, with no legal-hours guard, then `tables`.
pub fn campaign(id: &str, own: &str, tables: &str) -> String {
    format!(
        r#"
id = "{id}"
{own}
[pacing]
calls_per_minute = 6000
burst = 10
max_concurrent = 10
[compliance]
local_hours = "off"
max_attempts_per_day = 50
{tables}
"#
    )
}

/// Inserts a lead as another system would: due now unless `due` is given.
pub async fn insert_lead(
    db: &TestDb,
    campaign: &str,
    phone: &str,
    variables: &str,
    due: Option<DateTime<Utc>>,
) {
    let (column, value) = match due {
        Some(due) => (", next_attempt_at", format!(", '{}'", rfc3339(due))),
        None => ("", String::new()),
    };
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone, variables{column}) VALUES ('{campaign}', '{phone}', '{variables}'{value})"
    ))
    .await;
}

/// Waits until `sql` (a count) is 0; panics with `what` after `limit`.
pub async fn wait_until_none(db: &TestDb, sql: &str, limit: Duration, what: &str) {
    let started = Instant::now();
    while db.scalar(sql).await > 0 {
        assert!(
            started.elapsed() < limit,
            "{}: {what} after {limit:?}: {:?}",
            db.backend(),
            db.rows("SELECT campaign_id, phone, status, last_outcome, CAST(callbacks AS TEXT) FROM leads ORDER BY campaign_id, phone")
                .await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A lead as the database holds it, times in the contract's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRow {
    pub status: String,
    pub last_outcome: String,
    pub attempts: String,
    pub callbacks: String,
    pub next_attempt_at: String,
    pub callback_at: String,
}

/// The lead `phone` of `campaign`.
pub async fn lead(db: &TestDb, campaign: &str, phone: &str) -> LeadRow {
    let rows = db
        .rows(&format!(
            "SELECT status, last_outcome, CAST(attempts AS TEXT), CAST(callbacks AS TEXT), next_attempt_at, callback_at \
             FROM leads WHERE campaign_id = '{campaign}' AND phone = '{phone}'"
        ))
        .await;
    let row = rows
        .first()
        .unwrap_or_else(|| panic!("no lead {phone} in campaign {campaign}"));
    let text = |i: usize| row[i].clone().unwrap_or_default();
    let time = |i: usize| row[i].as_deref().map(normal_time).unwrap_or_default();
    LeadRow {
        status: text(0),
        last_outcome: text(1),
        attempts: text(2),
        callbacks: text(3),
        next_attempt_at: time(4),
        callback_at: time(5),
    }
}

/// Every lead as `[campaign, phone, status, last_outcome]`, in that order.
pub async fn leads(db: &TestDb) -> Vec<Vec<String>> {
    db.rows(
        "SELECT campaign_id, phone, status, last_outcome FROM leads ORDER BY campaign_id, phone",
    )
    .await
    .into_iter()
    .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
    .collect()
}

/// `phone` is on the do-not-call list once, for the opt-out learned on its
/// call in `campaign`, naming that attempt.
pub async fn assert_opted_out(db: &TestDb, phone: &str, campaign: &str) {
    assert_eq!(
        dnc_of(db, phone).await,
        [[
            Some(format!("opt_out (campaign {campaign})")),
            Some(phone.to_string()),
            Some(campaign.to_string())
        ]],
        "{}: {phone}",
        db.backend()
    );
}

/// The do-not-call rows of `phone`, each with the number and campaign of
/// the attempt it names: `[reason, to_number, campaign_id]`.
pub async fn dnc_of(db: &TestDb, phone: &str) -> Vec<Vec<Option<String>>> {
    db.rows(&format!(
        "SELECT d.reason, a.to_number, a.campaign_id FROM dnc d \
         JOIN call_attempts a ON a.id = d.attempt_id WHERE d.phone = '{phone}'"
    ))
    .await
}

/// A stored time in the contract's form, whatever the backend's text.
pub fn normal_time(s: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%#z"))
        .unwrap_or_else(|e| panic!("`{s}`: {e}"));
    rfc3339(t.with_timezone(&Utc))
}

/// `secs` from now, in whole seconds (as a callback is written).
pub fn soon(secs: i64) -> DateTime<Utc> {
    chrono::DurationRound::duration_trunc(
        Utc::now() + chrono::Duration::seconds(secs),
        chrono::Duration::seconds(1),
    )
    .unwrap()
}

/// A weekly window open all day, every day but the one three days from
/// today in `zone`; a callback asked for noon that day, and when the
/// window next opens after it (midnight after it, local).
pub struct ClosedDay {
    /// The `weekly = [...]` line.
    pub weekly: String,
    /// Noon on the closed day, local, as an agent writes it.
    pub asked_local: String,
    pub asked: DateTime<Utc>,
    pub next_opening: DateTime<Utc>,
}

pub fn closed_day(zone: Tz) -> ClosedDay {
    let today = Utc::now().with_timezone(&zone).date_naive();
    let closed = today + Days::new(3);
    let after = closed + Days::new(1);
    let before = closed - Days::new(1);
    let day = |d: chrono::NaiveDate| d.weekday().to_string().to_ascii_lowercase();
    let local = |t: NaiveDateTime| zone.from_local_datetime(&t).earliest().unwrap();
    let noon = closed.and_hms_opt(12, 0, 0).unwrap();
    ClosedDay {
        weekly: format!("weekly = [\"{}-{} 00:00-24:00\"]", day(after), day(before)),
        asked_local: noon.format("%Y-%m-%dT%H:%M").to_string(),
        asked: local(noon).with_timezone(&Utc),
        next_opening: local(after.and_hms_opt(0, 0, 0).unwrap()).with_timezone(&Utc),
    }
}

/// `[callbacks]` on the field `callback_at`, one callback a lead, and one
/// attempt: a second call can only be the callback.
pub const ONE_CALLBACK: &str =
    "[callbacks]\nfield = \"callback_at\"\nmax_per_lead = 1\n[retry]\nmax_attempts = 1\n";

/// The callback run every provider's test makes: in campaign `cb`, `soon`
/// asks to be called back at `soon_at`, `in_the_gap` asks for a local time
/// its clocks skip (due `gap_due`); in campaign `weekly` (window
/// `closed.weekly`), `on_a_closed_day` asks for noon on the closed day.
pub struct CallbackRun<'a> {
    pub soon: &'a str,
    pub soon_at: DateTime<Utc>,
    pub in_the_gap: &'a str,
    pub gap_due: &'a str,
    pub on_a_closed_day: &'a str,
    pub closed: ClosedDay,
}

impl<'a> CallbackRun<'a> {
    /// `soon` asks `AHEAD_SECS` ahead; `on_a_closed_day` is in `zone`.
    pub fn new(
        soon: &'a str,
        in_the_gap: &'a str,
        gap_due: &'a str,
        on_a_closed_day: &'a str,
        zone: Tz,
    ) -> Self {
        CallbackRun {
            soon,
            soon_at: self::soon(AHEAD_SECS),
            in_the_gap,
            gap_due,
            on_a_closed_day,
            closed: closed_day(zone),
        }
    }

    /// The two campaign files, from the provider's own campaign maker.
    pub fn campaigns(&self, campaign: impl Fn(&str, &str) -> String) -> [(String, String); 2] {
        [
            ("cb.toml".into(), campaign("cb", ONE_CALLBACK)),
            (
                "weekly.toml".into(),
                campaign(
                    "weekly",
                    &format!("{ONE_CALLBACK}[window]\n{}\n", self.closed.weekly),
                ),
            ),
        ]
    }

    pub async fn insert_leads(&self, db: &TestDb) {
        for (c, phone) in [
            ("cb", self.soon),
            ("cb", self.in_the_gap),
            ("weekly", self.on_a_closed_day),
        ] {
            insert_lead(db, c, phone, "{}", None).await;
        }
    }

    /// Until `soon` is done (called back, or not) and the others are done
    /// or wait with their callback.
    pub async fn wait(&self, db: &TestDb, limit: Duration) {
        let sql = format!(
            "SELECT count(*) FROM leads WHERE status = 'in_progress' OR (status = 'pending' AND callbacks = 0) \
             OR (phone = '{}' AND status = 'pending')",
            self.soon
        );
        wait_until_none(db, &sql, limit, "callbacks not settled").await;
    }

    /// Judged from the fake's `log` and the database, and `explain` on the
    /// stopped daemon's configuration.
    pub async fn assert(&self, db: &TestDb, log: &[Arrival], stopped: &Stopped) {
        let backend = db.backend();
        // Called again at the instant asked and not before, although
        // `max_attempts = 1`; the same ask on that call is beyond
        // `max_per_lead`.
        let calls = placed_to(log, self.soon);
        assert_eq!(calls.len(), 2, "{backend}: {calls:?}");
        assert!(
            calls[1] >= self.soon_at,
            "{backend}: called back at {} before the {} asked",
            calls[1],
            rfc3339(self.soon_at)
        );
        let l = lead(db, "cb", self.soon).await;
        assert_eq!(
            (l.status.as_str(), l.attempts.as_str(), l.callbacks.as_str()),
            ("completed", "2", "1"),
            "{backend}: {l:?}"
        );
        // A local time in the lead's own zone, across the gap.
        waits_for_its_callback(db, log, "cb", self.in_the_gap, self.gap_due, self.gap_due).await;
        // Outside the window: due at the next opening, not at the instant
        // asked, and `explain` says it moved.
        let (asked, opening) = (
            rfc3339(self.closed.asked),
            rfc3339(self.closed.next_opening),
        );
        waits_for_its_callback(db, log, "weekly", self.on_a_closed_day, &asked, &opening).await;
        let explained = stopped.explain("weekly", self.on_a_closed_day);
        assert_eq!(
            explained["callback"],
            json!({"asked_for": asked, "due_at": opening,
                   "moved_to_next_opening": true, "callbacks": 1}),
            "{backend}: {explained}"
        );
    }
}

/// Called once, then `pending` with one callback, asked for `asked` and
/// due at `due`.
async fn waits_for_its_callback(
    db: &TestDb,
    log: &[Arrival],
    campaign: &str,
    phone: &str,
    asked: &str,
    due: &str,
) {
    let backend = db.backend();
    let l = lead(db, campaign, phone).await;
    assert_eq!(
        (l.status.as_str(), l.callbacks.as_str()),
        ("pending", "1"),
        "{backend} {phone}: {l:?}"
    );
    assert_eq!(l.callback_at, asked, "{backend} {phone}: {l:?}");
    assert_eq!(l.next_attempt_at, due, "{backend} {phone}: {l:?}");
    assert_eq!(placed_to(log, phone).len(), 1, "{backend} {phone}");
}

/// The opt-out run every provider's test makes: in campaign `a` (its
/// `[opt_out]` in `listens`), `opts_out` says so in the agent's field and
/// `hangs_up_opting_out` by an end reason, `stays` says it does not, and
/// `sent_itself` (when given) carries `opt_out = "true"` among its own
/// variables; the first three are in campaign `b` too, which has no
/// `[opt_out]`, due at `b_due`.
pub struct OptOutRun<'a> {
    pub opts_out: &'a str,
    pub hangs_up_opting_out: &'a str,
    pub stays: &'a str,
    pub sent_itself: Option<&'a str>,
    pub b_due: DateTime<Utc>,
}

impl<'a> OptOutRun<'a> {
    /// `b`'s leads are due `LATER_SECS` from now.
    pub fn new(
        opts_out: &'a str,
        hangs_up_opting_out: &'a str,
        stays: &'a str,
        sent_itself: Option<&'a str>,
    ) -> Self {
        OptOutRun {
            opts_out,
            hangs_up_opting_out,
            stays,
            sent_itself,
            b_due: soon(LATER_SECS),
        }
    }

    /// The two campaign files, from the provider's own campaign maker.
    pub fn campaigns(
        &self,
        campaign: impl Fn(&str, &str) -> String,
        listens: &str,
    ) -> [(String, String); 2] {
        [
            ("a.toml".into(), campaign("a", listens)),
            ("b.toml".into(), campaign("b", "")),
        ]
    }

    pub async fn insert_leads(&self, db: &TestDb) {
        for phone in [self.opts_out, self.hangs_up_opting_out, self.stays] {
            insert_lead(db, "a", phone, "{}", None).await;
            insert_lead(db, "b", phone, "{}", Some(self.b_due)).await;
        }
        if let Some(phone) = self.sent_itself {
            insert_lead(db, "a", phone, r#"{"opt_out": "true"}"#, None).await;
        }
    }

    pub async fn wait(&self, db: &TestDb, limit: Duration) {
        let sql = "SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')";
        wait_until_none(db, sql, limit, "leads still open").await;
    }

    /// Judged from the fake's `log` and the database. Every call ends
    /// completed: what differs is whether it opted out.
    pub async fn assert(&self, db: &TestDb, log: &[Arrival]) {
        let backend = db.backend();
        // At the wire: each number that opted out was called once, in `a`;
        // in `b` only the one that did not was called, once due.
        assert_eq!(placed_to(log, self.opts_out).len(), 1, "{backend}");
        assert_eq!(
            placed_to(log, self.hangs_up_opting_out).len(),
            1,
            "{backend}"
        );
        let stays = placed_to(log, self.stays);
        assert_eq!(stays.len(), 2, "{backend}: {stays:?}");
        assert!(stays[1] >= self.b_due, "{backend}: {stays:?}");
        let mut want = Vec::new();
        for c in ["a", "b"] {
            want.push([c, self.opts_out, "skipped", "do_not_call"]);
            want.push([c, self.hangs_up_opting_out, "skipped", "do_not_call"]);
            want.push([c, self.stays, "completed", "completed"]);
            if let Some(phone) = self.sent_itself.filter(|_| c == "a") {
                assert_eq!(placed_to(log, phone).len(), 1, "{backend}");
                want.push([c, phone, "completed", "completed"]);
            }
        }
        want.sort();
        assert_eq!(leads(db).await, want, "{backend}");
        assert_opted_out(db, self.opts_out, "a").await;
        assert_opted_out(db, self.hangs_up_opting_out, "a").await;
        assert_eq!(db.scalar("SELECT count(*) FROM dnc").await, 2, "{backend}");
    }
}
