//! The lead lifecycle against a fake RevRing account over real HTTP, judged
//! from what reaches the fake (its own log, on its own clock) and from the
//! database: another system reopening or rescheduling a lead during a live
//! call, a real end arriving after the daemon gave up on a call, a provider
//! clock running behind, retry delays, a failed write of the call id, a
//! provider outage, times written by another system, durable SQLite writes.

use crate::support::fake_revring::{Behaviour, End, FakeRevRing, Received};
use crate::support::TestDb;
use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use dialer::daemon::Daemon;
use dialer::engine::{self, Running};
use std::future::Future;
use std::time::{Duration, Instant};

const API_KEY: &str = "rr_test_key_lifecycle";
const SECRET: &str = "whsec_lifecycle";
const AGENT: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";

fn phone(i: usize) -> String {
    format!("+1212555{:04}", i)
}

/// What a test sets on the provider and the campaign.
struct Setup {
    poll_interval: &'static str,
    max_call_duration: &'static str,
    /// `[retry]` table of the campaign, `[retry.after]` included.
    retry: &'static str,
    max_concurrent: u32,
    /// Post-call webhooks from the fake to the daemon.
    webhooks: bool,
    clock: Clock,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            poll_interval: "200ms",
            max_call_duration: "1m",
            retry: "[retry]\nmax_attempts = 3\n[retry.after]\nunknown = \"3s\"\ndefault = \"3s\"\n",
            max_concurrent: 20,
            webhooks: false,
            clock: Clock::system(),
        }
    }
}

struct Rig {
    db: TestDb,
    fake: FakeRevRing,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

fn daemon_toml(db_url: &str, fake_url: &str, s: &Setup) -> String {
    format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{db_url}"
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "info"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
webhook_secret_file = "secret"
requests_per_minute = 60000
max_concurrent_calls = 100
request_timeout = "2s"
poll_interval = "{poll}"
max_call_duration = "{max_call}"
"#,
        poll = s.poll_interval,
        max_call = s.max_call_duration,
    )
}

fn campaign_toml(s: &Setup) -> String {
    format!(
        r#"
id = "c1"
provider = "revring"
agent_id = "{AGENT}"
from_numbers = ["+15551230001"]
timezone = "UTC"
[pacing]
calls_per_minute = 60000
burst = 20
max_concurrent = {mc}
{retry}
[compliance]
local_hours = "off"
max_attempts_per_day = 50
"#,
        mc = s.max_concurrent,
        retry = s.retry,
    )
}

/// Starts a fake, inserts `leads` numbers with plain SQL, starts the daemon.
async fn rig(
    db: TestDb,
    leads: usize,
    s: Setup,
    script: impl Fn(&str) -> Behaviour + Send + Sync + 'static,
) -> Rig {
    let (fake, fake_url) = FakeRevRing::start_with_clock(API_KEY, s.clock.clone(), script).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let loaded = crate::support::write_config(
        dir.path(),
        &daemon_toml(&db.url, &fake_url, &s),
        &[("c1.toml", &campaign_toml(&s))],
    );
    for i in 0..leads {
        db.exec(&format!(
            "INSERT INTO leads (campaign_id, phone) VALUES ('c1', '{}')",
            phone(i)
        ))
        .await;
    }
    let daemon = Daemon::new(db.store.clone(), s.clock.clone(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    if s.webhooks {
        fake.set_webhook_url(format!(
            "http://{}/webhooks/revring?token={SECRET}",
            listener.local_addr().unwrap()
        ));
    }
    let running = engine::start(daemon, Some(listener));
    Rig {
        db,
        fake,
        running: Some(running),
        _dir: dir,
    }
}

impl Rig {
    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop(Duration::from_secs(3)).await;
        }
    }

    async fn lead(&self, to: &str) -> Vec<Option<String>> {
        self.db
            .rows(&format!(
                "SELECT status, last_outcome, next_attempt_at, CAST(attempts AS TEXT) FROM leads WHERE phone = '{to}'"
            ))
            .await
            .remove(0)
    }

    /// `state, outcome, provider_call_id` of every attempt to `to`, in order.
    async fn attempts(&self, to: &str) -> Vec<Vec<Option<String>>> {
        self.db
            .rows(&format!(
                "SELECT state, outcome, provider_call_id FROM call_attempts WHERE to_number = '{to}' ORDER BY attempt"
            ))
            .await
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
async fn wait_for<F: Future<Output = bool>>(limit: Duration, mut cond: impl FnMut() -> F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond().await
}

/// A time as another system writes it into `next_attempt_at` (the SQLite
/// text form; PostgreSQL casts the literal).
fn sql_time(t: DateTime<Utc>) -> String {
    format!("'{}'", dialer::domain::rfc3339(t))
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

on_both_backends! {
    reopened_while_live_is_not_dialled_twice => reopened_while_live;
    callback_set_during_call_is_kept => callback_during_call;
    late_real_status_after_unknown_settles_the_lead => late_real_status;
    provider_clock_behind_still_settles => clock_behind;
    retry_delay_is_never_early => retry_never_early;
    default_delay_applies_to_every_unlisted_outcome => default_delay;
    call_id_survives_a_database_error => call_id_survives;
    provider_outage_does_not_burn_leads => outage;
}

/// Another system reopens a lead whose call is live: the call must not be
/// placed a second time while the first is still going.
async fn reopened_while_live(db: TestDb) {
    let to = phone(0);
    let mut rig = rig(db, 1, Setup::default(), |_| Behaviour::Answer {
        ms: 4000,
        end: End::Completed,
    })
    .await;
    let placed = wait_for(Duration::from_secs(5), || async {
        !rig.fake.accepted_to(&to).is_empty()
    })
    .await;
    assert!(placed, "the lead was never dialled");
    let first = rig.fake.accepted_to(&to)[0].at;
    rig.db
        .exec(&format!(
            "UPDATE leads SET status = 'pending', next_attempt_at = {} WHERE phone = '{to}'",
            sql_time(Utc::now())
        ))
        .await;
    // Watch until just before the first call ends at the fake.
    let live_until = first + Duration::from_millis(3900);
    tokio::time::sleep(live_until.saturating_duration_since(Instant::now())).await;
    let during: Vec<Received> = rig
        .fake
        .accepted_to(&to)
        .into_iter()
        .filter(|r| r.at < live_until)
        .collect();
    rig.stop().await;
    let gaps: Vec<f64> = during.iter().map(|r| secs(r.at - first)).collect();
    println!("place requests while the first call was live, seconds after it: {gaps:?}");
    assert_eq!(
        during.len(),
        1,
        "the number was dialled again while its first call was live ({gaps:?} s after it)"
    );
}

/// Another system schedules a callback while the call is live: the call's
/// end must not overwrite it, and the attempt is still recorded.
async fn callback_during_call(db: TestDb) {
    let to = phone(0);
    let mut rig = rig(db, 1, Setup::default(), |_| Behaviour::Answer {
        ms: 3000,
        end: End::Completed,
    })
    .await;
    let placed = wait_for(Duration::from_secs(5), || async {
        !rig.fake.accepted_to(&to).is_empty()
    })
    .await;
    assert!(placed, "the lead was never dialled");
    let callback = Utc::now() + chrono::Duration::hours(1);
    let callback = parse_time(&dialer::domain::rfc3339(callback));
    rig.db
        .exec(&format!(
            "UPDATE leads SET status = 'pending', next_attempt_at = {} WHERE phone = '{to}'",
            sql_time(callback)
        ))
        .await;
    let ended = wait_for(Duration::from_secs(8), || async {
        rig.attempts(&to).await[0][0].as_deref() == Some("ended")
    })
    .await;
    // Let anything the end triggers happen.
    tokio::time::sleep(Duration::from_millis(600)).await;
    rig.stop().await;
    let lead = rig.lead(&to).await;
    let attempts = rig.attempts(&to).await;
    println!("lead after the call: {lead:?}; attempts: {attempts:?}");
    assert!(ended, "the attempt never ended: {attempts:?}");
    assert_eq!(attempts[0][0].as_deref(), Some("ended"));
    assert_eq!(attempts[0][1].as_deref(), Some("completed"));
    assert_eq!(
        lead[0].as_deref(),
        Some("pending"),
        "the callback another system set during the call was overwritten: {lead:?}"
    );
    assert_eq!(
        lead[2].as_deref().map(parse_time),
        Some(callback),
        "the callback's time was changed: {lead:?}"
    );
    assert_eq!(rig.fake.accepted_to(&to).len(), 1);
}

/// The call outlives `max_call_duration` (the daemon settles it as
/// `unknown`), then its real end shows in the next poll (no webhook is
/// configured on this account): the lead takes the real outcome and is not
/// called again.
async fn late_real_status(db: TestDb) {
    let to = phone(0);
    let setup = Setup {
        max_call_duration: "2s",
        retry: "[retry]\nmax_attempts = 3\n[retry.after]\nunknown = \"3s\"\n",
        webhooks: false,
        ..Setup::default()
    };
    let mut rig = rig(db, 1, setup, |_| Behaviour::Answer {
        ms: 3500,
        end: End::Completed,
    })
    .await;
    let placed = wait_for(Duration::from_secs(5), || async {
        !rig.fake.accepted_to(&to).is_empty()
    })
    .await;
    assert!(placed, "the lead was never dialled");
    let first = rig.fake.accepted_to(&to)[0].at;
    // Settled as unknown at ~2 s; the real end at 3.5 s; a retry after
    // `unknown` (3 s delay) would reach the fake at ~5 s.
    tokio::time::sleep((first + Duration::from_secs(3)).saturating_duration_since(Instant::now()))
        .await;
    let before_end = rig.attempts(&to).await;
    println!("attempt 3 s into the call (max_call_duration 2s): {before_end:?}");
    tokio::time::sleep((first + Duration::from_secs(8)).saturating_duration_since(Instant::now()))
        .await;
    rig.stop().await;
    let calls: Vec<f64> = rig
        .fake
        .accepted_to(&to)
        .iter()
        .map(|r| secs(r.at - first))
        .collect();
    let webhook_answers = rig.fake.inner.lock().unwrap().webhook_answers.clone();
    let lead = rig.lead(&to).await;
    let attempts = rig.attempts(&to).await;
    println!(
        "calls at {calls:?} s; webhook answers {webhook_answers:?}; lead {lead:?}; attempts {attempts:?}"
    );
    assert_eq!(
        calls.len(),
        1,
        "called again after the real end arrived: {calls:?}"
    );
    assert_eq!(
        (lead[0].as_deref(), lead[1].as_deref()),
        (Some("completed"), Some("completed")),
        "lead: {lead:?}"
    );
    assert_eq!(
        (attempts[0][0].as_deref(), attempts[0][1].as_deref()),
        (Some("ended"), Some("completed")),
        "attempt: {attempts:?}"
    );
}

fn skewed_end(i: usize) -> End {
    match i % 4 {
        0 => End::Completed,
        1 => End::NoAnswer,
        2 => End::Voicemail,
        _ => End::Transferred,
    }
}

fn outcome_of(end: End) -> &'static str {
    match end {
        End::Completed => "completed",
        End::NoAnswer => "no_answer",
        End::Voicemail => "voicemail",
        End::Failed => "failed",
        End::Transferred => "transferred",
    }
}

/// The provider's clock runs 5 s behind ours: its statuses still settle
/// every call with its real outcome within a few poll intervals.
async fn clock_behind(db: TestDb) {
    let n = 20;
    let setup = Setup {
        retry: "[retry]\nmax_attempts = 1\n",
        ..Setup::default()
    };
    let mut rig = rig(db, n, setup, |to| Behaviour::Answer {
        ms: 100,
        end: skewed_end(to[8..].parse().unwrap()),
    })
    .await;
    rig.fake.set_skew(chrono::Duration::seconds(-5));
    let all = wait_for(Duration::from_secs(8), || async {
        rig.fake
            .requests()
            .iter()
            .filter(|r| r.answered == 201)
            .count()
            >= n
    })
    .await;
    assert!(all, "not every lead was dialled");
    let last_end = rig.fake.inner.lock().unwrap().ended.values().max().copied();
    // Ten poll intervals after the last call ended at the fake.
    let deadline = last_end.unwrap_or_else(Instant::now) + Duration::from_secs(2);
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    rig.stop().await;
    let mut wrong = Vec::new();
    for i in 0..n {
        let to = phone(i);
        for a in rig.attempts(&to).await {
            if a[2].is_some()
                && (a[0].as_deref(), a[1].as_deref())
                    != (Some("ended"), Some(outcome_of(skewed_end(i))))
            {
                wrong.push(format!(
                    "{to}: {a:?}, fake ended it {}",
                    outcome_of(skewed_end(i))
                ));
            }
        }
    }
    let by_state = rig
        .db
        .rows("SELECT state, COALESCE(outcome, '-'), CAST(count(*) AS TEXT) FROM call_attempts GROUP BY state, outcome ORDER BY 1, 2")
        .await;
    println!("attempts by state/outcome 2 s after the last end: {by_state:?}");
    assert!(
        wrong.is_empty(),
        "{} of {n} attempts not settled with the provider's outcome: {wrong:#?}",
        wrong.len()
    );
}

/// For every number: seconds from the moment the fake told the daemon that
/// call k ended to the arrival of call k+1.
fn gaps_after_told(fake: &FakeRevRing, to: &str) -> Vec<f64> {
    let calls = fake.accepted_to(to);
    calls
        .windows(2)
        .map(|w| {
            let told = w[0]
                .call_id
                .as_deref()
                .and_then(|id| fake.told(id))
                .expect("the daemon was told of the end before calling again");
            w[1].at.saturating_duration_since(told).as_secs_f64()
                - told.saturating_duration_since(w[1].at).as_secs_f64()
        })
        .collect()
}

/// `no_answer = "3s"`: the next call never reaches the provider earlier than
/// 3 s after the provider told the daemon the previous one ended.
async fn retry_never_early(db: TestDb) {
    let n = 5;
    let setup = Setup {
        retry: "[retry]\nmax_attempts = 2\n[retry.after]\nno_answer = \"3s\"\n",
        ..Setup::default()
    };
    let mut rig = rig(db, n, setup, |_| Behaviour::Answer {
        ms: 50,
        end: End::NoAnswer,
    })
    .await;
    let all = wait_for(Duration::from_secs(12), || async {
        (0..n).all(|i| rig.fake.accepted_to(&phone(i)).len() >= 2)
    })
    .await;
    rig.stop().await;
    let gaps: Vec<(String, Vec<f64>)> = (0..n)
        .map(|i| (phone(i), gaps_after_told(&rig.fake, &phone(i))))
        .collect();
    println!("seconds from `ended` told to the next call: {gaps:?}");
    assert!(all, "not every number was called a second time: {gaps:?}");
    let early: Vec<_> = gaps
        .iter()
        .filter(|(_, g)| g.iter().any(|s| *s < 3.0))
        .collect();
    assert!(
        early.is_empty(),
        "called again earlier than no_answer = 3s: {early:?}"
    );
}

/// Only `default = "2s"` is set: a voicemail (an outcome not listed) is
/// retried 2 s later, not after a built-in delay.
async fn default_delay(db: TestDb) {
    let n = 3;
    let setup = Setup {
        retry: "[retry]\nmax_attempts = 2\n[retry.after]\ndefault = \"2s\"\n",
        ..Setup::default()
    };
    let mut rig = rig(db, n, setup, |_| Behaviour::Answer {
        ms: 50,
        end: End::Voicemail,
    })
    .await;
    let all = wait_for(Duration::from_secs(8), || async {
        (0..n).all(|i| rig.fake.accepted_to(&phone(i)).len() >= 2)
    })
    .await;
    rig.stop().await;
    let gaps: Vec<(String, Vec<f64>)> = (0..n)
        .map(|i| (phone(i), gaps_after_told(&rig.fake, &phone(i))))
        .collect();
    let leads = rig
        .db
        .rows("SELECT phone, status, last_outcome, next_attempt_at FROM leads ORDER BY phone")
        .await;
    println!("seconds from voicemail told to the next call: {gaps:?}; leads {leads:?}");
    assert!(
        all,
        "a voicemail was not retried within 8 s under default = 2s: {leads:?}"
    );
    for (to, g) in &gaps {
        assert!(
            g.iter().all(|s| (2.0..5.0).contains(s)),
            "{to}: retried {g:?} s after the voicemail, default is 2s"
        );
    }
}

/// The write that records the call id fails once (a trigger another system
/// has): the daemon still ends the attempt with its call id and real
/// outcome, and does not place the call again.
async fn call_id_survives(db: TestDb) {
    let to = phone(0);
    db.exec("CREATE TABLE fault (armed INTEGER NOT NULL)").await;
    db.exec("INSERT INTO fault VALUES (1)").await;
    match db.backend() {
        "sqlite" => {
            db.exec(
                "CREATE TRIGGER inject_fault BEFORE UPDATE ON call_attempts \
                 WHEN NEW.provider_call_id IS NOT NULL AND OLD.provider_call_id IS NULL \
                 AND (SELECT armed FROM fault) = 1 \
                 BEGIN UPDATE fault SET armed = 0; SELECT RAISE(ABORT, 'injected'); END",
            )
            .await;
        }
        _ => {
            db.exec(
                "CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF (SELECT armed FROM fault) = 1 THEN UPDATE fault SET armed = 0; \
                 RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$",
            )
            .await;
            db.exec(
                "CREATE TRIGGER inject_fault BEFORE UPDATE ON call_attempts FOR EACH ROW \
                 WHEN (NEW.provider_call_id IS NOT NULL AND OLD.provider_call_id IS NULL) \
                 EXECUTE FUNCTION inject_fault()",
            )
            .await;
        }
    }
    let setup = Setup {
        retry: "[retry]\nmax_attempts = 3\n[retry.after]\nunknown = \"2s\"\ndefault = \"2s\"\n",
        ..Setup::default()
    };
    let mut rig = rig(db, 1, setup, |_| Behaviour::Answer {
        ms: 1500,
        end: End::Completed,
    })
    .await;
    let placed = wait_for(Duration::from_secs(5), || async {
        !rig.fake.accepted_to(&to).is_empty()
    })
    .await;
    assert!(placed, "the lead was never dialled");
    let first = rig.fake.accepted_to(&to)[0].clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The abort undoes the trigger's own disarm on both backends; disarm here
    // once the daemon has had its failed write.
    let still_armed = rig.db.scalar("SELECT armed FROM fault").await;
    rig.db.exec("UPDATE fault SET armed = 0").await;
    tokio::time::sleep(
        (first.at + Duration::from_secs(8)).saturating_duration_since(Instant::now()),
    )
    .await;
    rig.stop().await;
    let calls: Vec<f64> = rig
        .fake
        .accepted_to(&to)
        .iter()
        .map(|r| secs(r.at - first.at))
        .collect();
    let attempts = rig.attempts(&to).await;
    let lead = rig.lead(&to).await;
    println!(
        "fault still armed after the failed write: {still_armed}; calls at {calls:?} s; attempts {attempts:?}; lead {lead:?}"
    );
    assert_eq!(calls.len(), 1, "the call was placed again: {calls:?}");
    assert_eq!(
        attempts[0],
        vec![
            Some("ended".to_string()),
            Some("completed".to_string()),
            first.call_id.clone()
        ],
        "the attempt lost its call id or its outcome"
    );
    assert_eq!(lead[0].as_deref(), Some("completed"), "lead: {lead:?}");
}

/// The provider answers 500 to everything for a while: the daemon stops
/// placing after a few unknown results, probes, and resumes once the probe
/// succeeds; no lead is spent on the outage.
async fn outage(db: TestDb) {
    let n = 20;
    // 60x: a pause of minutes on the daemon's clock is seconds here.
    let clock = Clock::scaled(Utc::now(), 60.0);
    let setup = Setup {
        poll_interval: "5s",
        max_call_duration: "10m",
        retry: "[retry]\nmax_attempts = 3\n[retry.after]\nunknown = \"1m\"\ndefault = \"1m\"\n",
        max_concurrent: 2,
        clock,
        ..Setup::default()
    };
    let mut rig = rig(db, 0, setup, |_| Behaviour::Answer {
        ms: 100,
        end: End::Completed,
    })
    .await;
    rig.fake.set_outage(true);
    for i in 0..n {
        rig.db
            .exec(&format!(
                "INSERT INTO leads (campaign_id, phone) VALUES ('c1', '{}')",
                phone(i)
            ))
            .await;
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    rig.fake.set_outage(false);
    let outage_end = Instant::now();
    let done = wait_for(Duration::from_secs(14), || async {
        rig.db
            .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
            .await
            == 0
    })
    .await;
    rig.stop().await;
    let requests = rig.fake.requests();
    let during = requests.iter().filter(|r| r.at < outage_end).count();
    let refused = requests.iter().filter(|r| r.answered == 500).count();
    let first_after = requests
        .iter()
        .filter(|r| r.at >= outage_end && r.answered == 201)
        .map(|r| r.at)
        .min();
    let probes_between: Vec<f64> = rig
        .fake
        .gets()
        .iter()
        .filter(|(_, at, code)| {
            *at >= outage_end && first_after.is_none_or(|f| *at <= f) && *code != 500
        })
        .map(|(_, at, _)| secs(*at - start))
        .collect();
    let by_status = rig
        .db
        .rows("SELECT status, COALESCE(last_outcome, '-'), CAST(count(*) AS TEXT) FROM leads GROUP BY status, last_outcome ORDER BY 1, 2")
        .await;
    let mut burnt = Vec::new();
    for i in 0..n {
        let to = phone(i);
        let lead = rig.lead(&to).await;
        if lead[0].as_deref() == Some("exhausted") && rig.fake.accepted_to(&to).is_empty() {
            burnt.push(to);
        }
    }
    println!(
        "place requests during the 4 s outage: {during} ({refused} answered 500); \
         first accepted after it: {:?} s after its end; probes before that at {probes_between:?} s; \
         leads {by_status:?}",
        first_after.map(|f| secs(f - outage_end))
    );
    assert!(
        during <= 5 + 2,
        "{during} place requests reached the provider during the outage"
    );
    assert!(
        burnt.is_empty(),
        "leads exhausted without ever being accepted: {burnt:?}"
    );
    assert!(
        done,
        "leads still open 14 s after the outage: {by_status:?}"
    );
    assert!(
        !probes_between.is_empty(),
        "placing resumed without a successful probe first"
    );
    assert_eq!(
        rig.db
            .scalar("SELECT count(*) FROM leads WHERE status = 'completed'")
            .await,
        n as i64
    );
}

/// The daemon as a separate process on SQLite, for what shows in its log and
/// in `dialer status`.
struct Process {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Process {
    fn start(config: &std::path::Path, log: std::path::PathBuf) -> Process {
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Process { child, log }
    }

    fn stop(&mut self) -> String {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log lines that name lead `id` (a `lead`/`lead_id` field or its number).
fn lines_naming_lead<'a>(log: &'a str, id: i64, phone: &str) -> Vec<&'a str> {
    let keys = [
        format!("\"lead\":{id},"),
        format!("\"lead\":{id}}}"),
        format!("\"lead_id\":{id},"),
        format!("\"lead_id\":{id}}}"),
        format!("\"lead\":\"{id}\""),
        format!("\"lead_id\":\"{id}\""),
    ];
    log.lines()
        .filter(|l| l.contains(phone) || keys.iter().any(|k| l.contains(k.as_str())))
        .collect()
}

/// SQLite: another system writes times in SQLite's own form; leads with no
/// due time or no campaign file are reported, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_times_written_by_another_system() {
    let db = crate::support::sqlite().await;
    let (fake, fake_url) = FakeRevRing::start(API_KEY, |_| Behaviour::Answer {
        ms: 100,
        end: End::Completed,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), API_KEY).unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let setup = Setup::default();
    crate::support::write_config(
        dir.path(),
        &daemon_toml(&db.url, &fake_url, &setup),
        &[("c1.toml", &campaign_toml(&setup))],
    );
    let control = phone(0);
    let reopened = phone(1);
    let no_due = phone(2);
    let ghost = phone(3);
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone) VALUES ('c1', '{control}')"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone, status, last_outcome) VALUES ('c1', '{reopened}', 'completed', 'completed')"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone, next_attempt_at) VALUES ('c1', '{no_due}', NULL)"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO leads (campaign_id, phone) VALUES ('ghost-campaign', '{ghost}')"
    ))
    .await;
    let no_due_id = db
        .scalar(&format!("SELECT id FROM leads WHERE phone = '{no_due}'"))
        .await;

    let mut daemon = Process::start(
        &dir.path().join("dialer.toml"),
        dir.path().join("daemon.log"),
    );
    let mut problems = Vec::new();
    let working = wait_for(Duration::from_secs(10), || async {
        !fake.accepted_to(&control).is_empty()
    })
    .await;
    assert!(working, "the daemon never dialled a plain lead");
    db.exec(&format!(
        "UPDATE leads SET status = 'pending', next_attempt_at = datetime('now', '+1 hour') WHERE phone = '{reopened}'"
    ))
    .await;
    let reopened_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let early: Vec<f64> = fake
        .accepted_to(&reopened)
        .iter()
        .map(|r| secs(r.at.saturating_duration_since(reopened_at)))
        .collect();
    println!("calls to the lead reopened for +1 hour, seconds after the reopen: {early:?}");
    if !early.is_empty() {
        problems.push(format!(
            "lead reopened for an hour later was dialled {early:?} s after the reopen"
        ));
    }

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_dialer"))
        .arg("--config")
        .arg(dir.path().join("dialer.toml"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let log = daemon.stop();
    let text = String::from_utf8_lossy(&status.stdout);
    println!("status --json: {text}");
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => {
            let c1 = v["campaigns"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["id"] == "c1"))
                .cloned()
                .unwrap_or_default();
            if c1["unusable_leads"] != serde_json::json!(1) {
                problems.push(format!(
                    "status: c1 `unusable_leads` is {} (one pending lead has no due time)",
                    c1["unusable_leads"]
                ));
            }
            if v["unknown_campaign_leads"] != serde_json::json!({"ghost-campaign": 1}) {
                problems.push(format!(
                    "status: `unknown_campaign_leads` is {} (one lead of `ghost-campaign`)",
                    v["unknown_campaign_leads"]
                ));
            }
        }
        Err(e) => problems.push(format!("status --json is not JSON ({e}): {text}")),
    }

    let ghost_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ghost-campaign"))
        .collect();
    let no_due_lines = lines_naming_lead(&log, no_due_id, &no_due);
    println!(
        "log lines naming the unknown campaign: {}; naming the lead with no due time: {}",
        ghost_lines.len(),
        no_due_lines.len()
    );
    if ghost_lines.len() != 1 {
        problems.push(format!(
            "the daemon's log names `ghost-campaign` {} times in ~5 s: {:?}",
            ghost_lines.len(),
            &ghost_lines[..ghost_lines.len().min(3)]
        ));
    }
    if no_due_lines.len() != 1 {
        problems.push(format!(
            "the daemon's log names the lead with no due time {} times in ~5 s: {:?}",
            no_due_lines.len(),
            &no_due_lines[..no_due_lines.len().min(3)]
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// SQLite: the daemon's connections commit with `synchronous = FULL`, so an
/// attempt committed before its request left survives a power cut.
#[tokio::test]
async fn sqlite_attempts_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let store = dialer::store::SqliteStore::connect(&url, 2).await.unwrap();
    let mut seen = Vec::new();
    // Every connection of the pool, not just the first.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = store.pool().acquire().await.unwrap();
        let v: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        seen.push(v);
        held.push(conn);
    }
    println!("PRAGMA synchronous on the daemon's connections: {seen:?}");
    assert!(
        seen.iter().all(|v| *v == 2),
        "synchronous is {seen:?}, not FULL (2)"
    );
}
