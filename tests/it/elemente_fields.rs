//! What an Elemente agent records on a call, end to end through the daemon,
//! in Elemente's own shapes: the daemon places with `POST /api/v1/calls`
//! (HTTP Basic) and learns each end by listing `GET /api/v1/calls` over a
//! `dateRange` (Elemente has no webhooks), where the agent's `callback_at` /
//! `opt_out` come back among `customerOverride.customFields`, beside what
//! the daemon sent there. Elemente documents no end reason; a record that
//! carries `endReason` is read for `[opt_out] end_reasons` all the same.
//! Judged from the fake's own log and clock: a callback asked for a few
//! seconds ahead (with an offset) is called then and not before, although
//! `max_attempts = 1`; a local time is read in the lead's zone (Berlin, in
//! a New York campaign) across the spring-forward gap; a callback on a day
//! the window is closed is due at the next opening, and `explain` says it
//! moved; an opt-out skips the lead as `do_not_call`, lists its number with
//! the reason and the attempt, and the same number in another campaign is
//! never called while that campaign's other lead is; a custom field the
//! daemon itself sent, echoed back, is no opt-out.

use crate::support::fake_elemente::{CallEnd, FakeElemente};
use crate::support::fields::{self, CallbackRun, InProcess, OptOutRun, CALL, DEADLINE};
use crate::support::wire::Kind;
use crate::support::TestDb;
use dialer::clock::Clock;
use serde_json::json;

/// The HTTP Basic user `account_daemon_toml` configures.
const USER: &str = "acme";
const PASSWORD: &str = "el_test_password_fields";
/// The offset `SOON` writes its time with (Central European winter time).
const SOON_OFFSET_SECS: i32 = 3600;

/// Berlin: asks to be called back `fields::AHEAD_SECS` from now, in RFC
/// 3339 with an offset.
const SOON: &str = "+4915112345601";
/// Berlin, in a campaign whose zone is New York: asks for 02:30 local on
/// 2027-03-28, inside the hour its clocks skip; read in its own zone as
/// 03:30 CEST (in the campaign's it would be 06:30Z).
const IN_THE_GAP: &str = "+4915112345602";
const IN_THE_GAP_ASKS: &str = "2027-03-28T02:30";
const IN_THE_GAP_DUE: &str = "2027-03-28T01:30:00Z";
/// Berlin, in the campaign with a weekly window: asks for noon on the day
/// the window is closed.
const ON_A_CLOSED_DAY: &str = "+4915112345603";

/// The agent sets `opt_out = "true"`.
const OPTS_OUT: &str = "+4915112345611";
/// The record ends with a reason `[opt_out] end_reasons` lists.
const HANGS_UP_OPTING_OUT: &str = "+4915112345612";
const OPT_OUT_REASON: &str = "customer_requested_no_contact";
/// The agent sets `opt_out = "false"`.
const STAYS: &str = "+4915112345613";
/// Imported with `opt_out = "true"` among its own variables: sent in the
/// custom fields and echoed back, not learned on the call.
const SENT_ITSELF: &str = "+4915112345614";

fn campaign(id: &str, tables: &str) -> String {
    fields::campaign(
        id,
        r#"provider = "elemente"
agent_id = "123e4567-e89b-12d3-a456-426614174000"
skill_id = "123e4567-e89b-12d3-a456-426614174001"
timezone = "America/New_York""#,
        tables,
    )
}

async fn start(db: &TestDb, fake_url: &str, campaigns: &[(String, String)]) -> InProcess {
    InProcess::start(
        db,
        &crate::support::account_daemon_toml(&db.url, "elemente", fake_url, "200ms"),
        campaigns,
        &[("key", PASSWORD)],
        None,
    )
    .await
}

/// Every request carried the credentials and the documented shape, and
/// the ends were learned by listing.
fn assert_all_accepted(fake: &FakeElemente, backend: &str) {
    let log = fake.log();
    assert!(
        log.iter().all(|a| a.status == 200),
        "{backend}: refused requests: {log:?}"
    );
    assert!(
        log.iter().any(|a| a.kind == Kind::List),
        "{backend}: nothing was listed"
    );
}

async fn callbacks(db: TestDb) {
    let run = CallbackRun::new(
        SOON,
        IN_THE_GAP,
        IN_THE_GAP_DUE,
        ON_A_CLOSED_DAY,
        chrono_tz::Europe::Berlin,
    );
    let offset = chrono::FixedOffset::east_opt(SOON_OFFSET_SECS).unwrap();
    let soon_text = run
        .soon_at
        .with_timezone(&offset)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let (fake, fake_url) = FakeElemente::start(USER, PASSWORD, Clock::system(), CALL).await;
    fake.set_end(SOON, CallEnd::recorded(json!({"callback_at": soon_text})));
    fake.set_end(
        IN_THE_GAP,
        CallEnd::recorded(json!({"callback_at": IN_THE_GAP_ASKS})),
    );
    fake.set_end(
        ON_A_CLOSED_DAY,
        CallEnd::recorded(json!({"callback_at": run.closed.asked_local})),
    );
    run.insert_leads(&db).await;
    let daemon = start(&db, &fake_url, &run.campaigns(campaign)).await;
    run.wait(&db, DEADLINE).await;
    let stopped = daemon.stop().await;
    assert_all_accepted(&fake, db.backend());
    run.assert(&db, &fake.log(), &stopped).await;
}

async fn opt_outs(db: TestDb) {
    let run = OptOutRun::new(OPTS_OUT, HANGS_UP_OPTING_OUT, STAYS, Some(SENT_ITSELF));
    let (fake, fake_url) = FakeElemente::start(USER, PASSWORD, Clock::system(), CALL).await;
    fake.set_end(OPTS_OUT, CallEnd::recorded(json!({"opt_out": "true"})));
    fake.set_end(
        HANGS_UP_OPTING_OUT,
        CallEnd {
            end_reason: Some(OPT_OUT_REASON),
            ..CallEnd::default()
        },
    );
    fake.set_end(STAYS, CallEnd::recorded(json!({"opt_out": "false"})));
    run.insert_leads(&db).await;
    let listens = format!("[opt_out]\nfield = \"opt_out\"\nend_reasons = [\"{OPT_OUT_REASON}\"]\n");
    let daemon = start(&db, &fake_url, &run.campaigns(campaign, &listens)).await;
    run.wait(&db, DEADLINE).await;
    daemon.stop().await;
    assert_all_accepted(&fake, db.backend());
    run.assert(&db, &fake.log()).await;
}

crate::on_both_backends! {
    callbacks_from_the_listed_call => callbacks;
    opt_outs_from_the_listed_call => opt_outs;
}
