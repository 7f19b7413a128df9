//! What a VoiceDock assistant's analysis records on a call, end to end
//! through the daemon, in VoiceDock's own shapes: `callback_at` and
//! `opt_out` arrive either in the `analysis` of the signed
//! `end-of-call-report` sent to `/webhooks/voicedock` (the daemon polls
//! nothing meanwhile) or in the `analysis_result` of the Call that `GET
//! /calls/{id}` returns (no webhook is sent), flat or under
//! `structured_data`; an opt-out may also be an `end_reason` listed in
//! `[opt_out] end_reasons`. Judged from the fake's own log and clock: a
//! callback asked for a few seconds ahead is called then and not before,
//! although `max_attempts = 1`; a local time is read in the lead's zone
//! (Los Angeles, in a New York campaign) across the spring-forward gap; a
//! callback on a day the window is closed is due at the next opening, and
//! `explain` says it moved; an opt-out skips the lead as `do_not_call`,
//! lists its number with the reason and the attempt, and the same number in
//! another campaign is never called while that campaign's other lead is.

use crate::support::fake_voicedock::{CallEnd, FakeVoiceDock, Kind};
use crate::support::fields::{self, CallbackRun, InProcess, OptOutRun, CALL, DEADLINE};
use crate::support::TestDb;
use dialer::clock::Clock;
use dialer::domain::rfc3339;
use serde_json::json;

const KEY: &str = "vd_test_key_fields";
const SECRET: &str = "vd-webhook-secret-fields";

/// New York: asks to be called back `fields::AHEAD_SECS` from now (RFC
/// 3339, under `structured_data`).
const SOON: &str = "+12127362001";
/// Los Angeles, in a campaign whose zone is New York: asks for 02:30 local
/// on 2027-03-14, inside the hour its clocks skip; read in its own zone as
/// 03:30 PDT (in the campaign's it would be 07:30Z).
const IN_THE_GAP: &str = "+13105552002";
const IN_THE_GAP_ASKS: &str = "2027-03-14T02:30";
const IN_THE_GAP_DUE: &str = "2027-03-14T10:30:00Z";
/// New York, in the campaign with a weekly window: asks for noon on the
/// day the window is closed.
const ON_A_CLOSED_DAY: &str = "+12127362003";

/// Answers; the analysis has `opt_out: true`.
const OPTS_OUT: &str = "+12127362011";
/// Answers; the call ends with a reason `[opt_out] end_reasons` lists
/// (there in capitals: compared without regard to case).
const HANGS_UP_OPTING_OUT: &str = "+12127362012";
const OPT_OUT_REASON: &str = "customer-requested-no-contact";
/// Answers; the analysis has `opt_out: false`.
const STAYS: &str = "+12127362013";

/// How the daemon learns a call's end.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// The signed end-of-call report; polled once an hour, so never here.
    Report,
    /// `GET /calls/{id}` every 200 ms; no webhook is sent.
    Polled,
}

fn campaign(id: &str, tables: &str) -> String {
    fields::campaign(
        id,
        r#"provider = "voicedock"
agent_id = "assistant-fields"
from_numbers = ["pn-fields-1"]
timezone = "America/New_York""#,
        tables,
    )
}

/// The daemon on the fake (whose calls' ends are set), the two told of
/// each other before the first lead is claimed.
async fn start(
    db: &TestDb,
    fake: &FakeVoiceDock,
    fake_url: &str,
    path: Path,
    campaigns: &[(String, String)],
) -> InProcess {
    let (poll, listener) = match path {
        Path::Report => {
            let (listener, base) = fields::loopback().await;
            fake.send_reports_to(format!("{base}/webhooks/voicedock"), SECRET);
            ("1h", Some(listener))
        }
        Path::Polled => ("200ms", None),
    };
    InProcess::start(
        db,
        &crate::support::account_daemon_toml(&db.url, "voicedock", fake_url, poll),
        campaigns,
        &[("key", KEY), ("secret", SECRET)],
        listener,
    )
    .await
}

/// The end of every call reached the daemon by `path` alone.
fn assert_learned_by(fake: &FakeVoiceDock, path: Path, backend: &str) {
    let log = fake.log();
    let polls = log.iter().filter(|a| a.kind != Kind::Place).count();
    let reports = fake.report_answers();
    match path {
        Path::Report => {
            assert_eq!(polls, 0, "{backend}: the daemon polled: {log:?}");
            assert!(
                !reports.is_empty() && reports.iter().all(|s| *s == 200),
                "{backend}: reports answered {reports:?}"
            );
        }
        Path::Polled => {
            assert!(polls > 0, "{backend}: nothing was polled");
            assert!(reports.is_empty(), "{backend}: {reports:?}");
        }
    }
}

async fn callbacks(db: TestDb, path: Path) {
    let run = CallbackRun::new(
        SOON,
        IN_THE_GAP,
        IN_THE_GAP_DUE,
        ON_A_CLOSED_DAY,
        chrono_tz::America::New_York,
    );
    let (fake, fake_url) = FakeVoiceDock::start(KEY, Clock::system(), CALL, 0).await;
    let asks_soon = json!({
        "summary": "Asked to be called back shortly.",
        "sentiment": 7,
        "structured_data": {"callback_at": rfc3339(run.soon_at)},
    });
    fake.set_end(SOON, CallEnd::analysed(asks_soon));
    fake.set_end(
        IN_THE_GAP,
        CallEnd::analysed(json!({"sentiment": 6, "callback_at": IN_THE_GAP_ASKS})),
    );
    let asks_closed = json!({"structured_data": {"callback_at": run.closed.asked_local}});
    fake.set_end(ON_A_CLOSED_DAY, CallEnd::analysed(asks_closed));
    run.insert_leads(&db).await;
    let daemon = start(&db, &fake, &fake_url, path, &run.campaigns(campaign)).await;
    run.wait(&db, DEADLINE).await;
    let stopped = daemon.stop().await;
    assert_learned_by(&fake, path, db.backend());
    run.assert(&db, &fake.log(), &stopped).await;
}

async fn opt_outs(db: TestDb, path: Path) {
    let run = OptOutRun::new(OPTS_OUT, HANGS_UP_OPTING_OUT, STAYS, None);
    let (fake, fake_url) = FakeVoiceDock::start(KEY, Clock::system(), CALL, 0).await;
    let opts_out = json!({
        "summary": "Asked not to be called again.",
        "sentiment": 2,
        "structured_data": {"opt_out": true, "callback_at": null},
    });
    fake.set_end(OPTS_OUT, CallEnd::analysed(opts_out));
    fake.set_end(
        HANGS_UP_OPTING_OUT,
        CallEnd {
            end_reason: OPT_OUT_REASON.into(),
            ..CallEnd::default()
        },
    );
    fake.set_end(
        STAYS,
        CallEnd::analysed(json!({"sentiment": 8, "opt_out": false})),
    );
    run.insert_leads(&db).await;
    let listens = format!(
        "[opt_out]\nfield = \"opt_out\"\nend_reasons = [\"{}\"]\n",
        OPT_OUT_REASON.to_uppercase()
    );
    let campaigns = run.campaigns(campaign, &listens);
    let daemon = start(&db, &fake, &fake_url, path, &campaigns).await;
    run.wait(&db, DEADLINE).await;
    daemon.stop().await;
    assert_learned_by(&fake, path, db.backend());
    run.assert(&db, &fake.log()).await;
}

crate::on_both_backends! {
    callbacks_from_the_end_of_call_report => callbacks(Path::Report);
    callbacks_from_the_polled_call => callbacks(Path::Polled);
    opt_outs_from_the_end_of_call_report => opt_outs(Path::Report);
    opt_outs_from_the_polled_call => opt_outs(Path::Polled);
}
