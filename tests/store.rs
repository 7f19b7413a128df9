//! The store contract, run on SQLite and on PostgreSQL alike.

mod support;

use chrono::{DateTime, Duration, Utc};
use dialer::domain::{AttemptState, CallStatus, ClaimedLead, LeadStatus, Outcome};
use dialer::store::{CampaignRow, ClaimLimits, LeadNext, NewLead, Settled, Store};
use serde_json::Map;
use std::collections::HashSet;
use std::sync::Arc;
use support::TestDb;

fn t0() -> DateTime<Utc> {
    "2026-12-01T15:00:00Z".parse().unwrap()
}

fn limits(max_concurrent: u32, batch: u32) -> ClaimLimits {
    ClaimLimits {
        campaign_id: "c1".into(),
        provider: "sim".into(),
        max_concurrent,
        provider_max_concurrent: 10_000,
        batch,
    }
}

fn leads(n: usize) -> Vec<NewLead> {
    (0..n)
        .map(|i| NewLead {
            phone: format!("+1212736{:04}", i),
            name: None,
            timezone: None,
            variables: Map::new(),
        })
        .collect()
}

async fn setup(db: &TestDb, n: usize) {
    db.store
        .sync_campaigns(
            &[CampaignRow {
                id: "c1".into(),
                provider: "sim".into(),
                paused: false,
                config_hash: "h".into(),
            }],
            t0(),
        )
        .await
        .unwrap();
    let c = db.store.insert_leads("c1", &leads(n), t0()).await.unwrap();
    assert_eq!(c.imported, n as u64);
}

async fn claim_one(store: &dyn Store, now: DateTime<Utc>) -> Option<ClaimedLead> {
    store
        .claim(&limits(100, 1), "me", now, now + Duration::minutes(5))
        .await
        .unwrap()
        .pop()
}

on_both_backends! {
    two_claimers_never_get_the_same_lead => two_claimers;
    expired_lease_does_not_make_a_lead_due_early => expired_lease;
    lifecycle_transitions => lifecycle;
    not_placed_is_sent_again_as_the_same_attempt => not_placed_same_attempt;
    concurrency_limit_holds_in_the_claim => concurrency_limit;
    duplicate_and_older_statuses_change_nothing => stale_statuses;
    import_counts_duplicates => import_duplicates;
    plain_sql_lead_with_two_columns_is_claimed_and_canceled_one_is_not => plain_sql;
    removed_campaign_is_kept_and_marked => removed_campaign;
}

async fn two_claimers(db: TestDb) {
    setup(&db, 300).await;
    let store = db.store.clone();
    let claimer = |owner: &'static str, store: Arc<dyn Store>| async move {
        let mut got = Vec::new();
        loop {
            let batch = store
                .claim(&limits(10_000, 7), owner, t0(), t0() + Duration::minutes(5))
                .await
                .unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|c| c.lead.id));
        }
        got
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claimer("a", store.clone())),
        tokio::spawn(claimer("b", store.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let sa: HashSet<_> = a.iter().collect();
    let sb: HashSet<_> = b.iter().collect();
    assert!(
        sa.is_disjoint(&sb),
        "{} leads claimed by both",
        sa.intersection(&sb).count()
    );
    assert_eq!(
        sa.len() + sb.len(),
        300,
        "every lead claimed exactly once ({} + {})",
        a.len(),
        b.len()
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM leads WHERE status = 'in_progress'")
            .await,
        300
    );
}

async fn expired_lease(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    let lead = claim_one(db.store.as_ref(), now).await.expect("due lead");
    assert_eq!(lead.attempt, 1);
    // The attempt is committed, the request leaves, then the daemon dies.
    let unknown_due = now + Duration::hours(2);
    let attempt = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            None,
            now + Duration::minutes(1),
            unknown_due,
            now,
        )
        .await
        .unwrap()
        .expect("attempt row");
    assert_eq!(attempt.state, AttemptState::Sending);
    // The lease is long gone, but the retry delay for `unknown` is not.
    for later in [
        Duration::minutes(2),
        Duration::minutes(30),
        Duration::minutes(119),
    ] {
        assert!(
            claim_one(db.store.as_ref(), now + later).await.is_none(),
            "claimed {later} after a lost request"
        );
    }
    let again = claim_one(db.store.as_ref(), unknown_due)
        .await
        .expect("due after the retry delay");
    assert_eq!(
        again.attempt, 2,
        "the lost attempt counts; the next is a new attempt"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM call_attempts").await, 1);
    assert_eq!(db.scalar("SELECT attempts FROM leads").await, 1);
}

async fn lifecycle(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    assert_eq!(db.store.next_due("c1").await.unwrap(), Some(now));
    let lead = claim_one(db.store.as_ref(), now).await.unwrap();
    assert_eq!(lead.lead.status, LeadStatus::InProgress);
    let a = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            Some("+15551230001"),
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    db.store
        .attempt_placed(&a, "call-1", "ringing", now + Duration::minutes(40), now)
        .await
        .unwrap();
    let rows = db
        .rows("SELECT state, provider_call_id, from_number FROM call_attempts")
        .await;
    assert_eq!(
        rows[0],
        vec![
            Some("placed".into()),
            Some("call-1".into()),
            Some("+15551230001".into())
        ]
    );
    let found = db
        .store
        .find_attempt("sim", None, Some("call-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.attempt.id, a.id);
    assert_eq!(db.store.open_attempts("sim", 10).await.unwrap().len(), 1);

    // No answer: back to pending at the retry time, the attempt counted.
    let end = now + Duration::minutes(1);
    let status = CallStatus {
        provider_status: "no-answer".into(),
        outcome: Some(Outcome::NoAnswer),
        status_at: Some(end),
        ended_at: Some(end),
        ..Default::default()
    };
    let retry = end + Duration::hours(2);
    let next = LeadNext::pending(retry, Some("no_answer".into()));
    assert_eq!(
        db.store
            .settle(&a.id, &status, AttemptState::Ended, Some(&next), end)
            .await
            .unwrap(),
        Settled::Applied
    );
    let rows = db
        .rows("SELECT status, last_outcome, lease_owner FROM leads")
        .await;
    assert_eq!(
        rows[0],
        vec![Some("pending".into()), Some("no_answer".into()), None]
    );
    assert_eq!(db.scalar("SELECT attempts FROM leads").await, 1);
    assert!(db.store.open_attempts("sim", 10).await.unwrap().is_empty());
    assert!(claim_one(db.store.as_ref(), retry - Duration::seconds(1))
        .await
        .is_none());

    // Second attempt completes: final.
    let lead = claim_one(db.store.as_ref(), retry).await.unwrap();
    assert_eq!(lead.attempt, 2);
    let a2 = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            None,
            retry + Duration::minutes(2),
            retry + Duration::hours(2),
            retry,
        )
        .await
        .unwrap()
        .unwrap();
    let done = CallStatus {
        provider_status: "completed".into(),
        outcome: Some(Outcome::Completed),
        status_at: Some(retry),
        ..Default::default()
    };
    db.store
        .settle(
            &a2.id,
            &done,
            AttemptState::Ended,
            Some(&LeadNext::finished(LeadStatus::Completed, "completed")),
            retry,
        )
        .await
        .unwrap();
    let rows = db.rows("SELECT status, last_outcome FROM leads").await;
    assert_eq!(
        rows[0],
        vec![Some("completed".into()), Some("completed".into())]
    );
    assert_eq!(db.scalar("SELECT attempts FROM leads").await, 2);
    assert!(
        claim_one(db.store.as_ref(), retry + Duration::days(30))
            .await
            .is_none(),
        "a final lead is never claimed"
    );

    // Unknown: counted, pending at the unknown delay, outcome `unknown` on the attempt.
    db.exec("UPDATE leads SET status = 'pending', next_attempt_at = '2026-12-05T00:00:00Z'")
        .await;
    let at: DateTime<Utc> = "2026-12-05T00:00:00Z".parse().unwrap();
    let lead = claim_one(db.store.as_ref(), at)
        .await
        .expect("reopened lead is claimed");
    let a3 = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            None,
            at + Duration::minutes(2),
            at + Duration::hours(2),
            at,
        )
        .await
        .unwrap()
        .unwrap();
    db.store
        .attempt_unknown(&a3, "timeout", at + Duration::hours(2), at)
        .await
        .unwrap();
    let rows = db.rows("SELECT status, last_outcome FROM leads").await;
    assert_eq!(
        rows[0],
        vec![Some("pending".into()), Some("unknown".into())]
    );
    assert_eq!(db.scalar("SELECT attempts FROM leads").await, 3);
}

async fn not_placed_same_attempt(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    let lead = claim_one(db.store.as_ref(), now).await.unwrap();
    let a = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            None,
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db.scalar("SELECT attempts FROM leads").await,
        1,
        "a sending attempt counts"
    );
    let retry = now + Duration::seconds(30);
    db.store
        .attempt_not_placed(&a, "429 Too Many Requests", retry, now)
        .await
        .unwrap();
    assert_eq!(
        db.scalar("SELECT attempts FROM leads").await,
        0,
        "a not_placed attempt does not count"
    );
    assert!(claim_one(db.store.as_ref(), retry - Duration::seconds(1))
        .await
        .is_none());
    let lead = claim_one(db.store.as_ref(), retry).await.unwrap();
    assert_eq!(lead.attempt, 1, "sent again as the same attempt");
    let again = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            None,
            retry + Duration::minutes(2),
            retry + Duration::hours(2),
            retry,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, a.id, "the same attempt row is reused");
    assert_eq!(db.scalar("SELECT count(*) FROM call_attempts").await, 1);
    assert_eq!(db.scalar("SELECT attempts FROM leads").await, 1);
}

async fn concurrency_limit(db: TestDb) {
    setup(&db, 20).await;
    let now = t0();
    let got = db
        .store
        .claim(&limits(3, 10), "me", now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    let more = db
        .store
        .claim(&limits(3, 10), "other", now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert!(
        more.is_empty(),
        "a second daemon may not exceed max_concurrent"
    );
    // Provider-wide limit across campaigns.
    let mut l = limits(100, 10);
    l.provider_max_concurrent = 5;
    let p = db
        .store
        .claim(&l, "me", now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(p.len(), 2, "provider limit 5 with 3 already in progress");
    db.store
        .release(
            &got[0],
            &LeadNext::pending(now + Duration::hours(1), None),
            now,
        )
        .await
        .unwrap();
    let one = db
        .store
        .claim(&limits(100, 10), "x", now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(one.len(), 10, "limit lifted");
}

async fn stale_statuses(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    let lead = claim_one(db.store.as_ref(), now).await.unwrap();
    let a = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            None,
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    db.store
        .attempt_placed(&a, "c-9", "QUEUED", now + Duration::minutes(40), now)
        .await
        .unwrap();
    let live = CallStatus {
        provider_status: "ONGOING".into(),
        status_at: Some(now + Duration::seconds(10)),
        ..Default::default()
    };
    assert_eq!(
        db.store
            .settle(&a.id, &live, AttemptState::Placed, None, now)
            .await
            .unwrap(),
        Settled::Applied
    );
    let end = now + Duration::minutes(3);
    let done = CallStatus {
        provider_status: "COMPLETED".into(),
        outcome: Some(Outcome::Completed),
        status_at: Some(end),
        summary: Some("Booked a demo".into()),
        ..Default::default()
    };
    let fin = LeadNext::finished(LeadStatus::Completed, "completed");
    assert_eq!(
        db.store
            .settle(&a.id, &done, AttemptState::Ended, Some(&fin), end)
            .await
            .unwrap(),
        Settled::Applied
    );
    assert_eq!(
        db.store
            .settle(&a.id, &done, AttemptState::Ended, Some(&fin), end)
            .await
            .unwrap(),
        Settled::Stale,
        "duplicate"
    );
    assert_eq!(
        db.store
            .settle(&a.id, &live, AttemptState::Placed, None, end)
            .await
            .unwrap(),
        Settled::Stale,
        "older live status after the end"
    );
    let failed = CallStatus {
        provider_status: "FAILED".into(),
        outcome: Some(Outcome::Failed),
        status_at: Some(end + Duration::seconds(5)),
        ..Default::default()
    };
    assert_eq!(
        db.store
            .settle(
                &a.id,
                &failed,
                AttemptState::Ended,
                Some(&LeadNext::finished(LeadStatus::Exhausted, "failed")),
                end
            )
            .await
            .unwrap(),
        Settled::Stale,
        "a final status is never replaced"
    );
    let rows = db
        .rows("SELECT state, outcome, provider_status, summary FROM call_attempts")
        .await;
    assert_eq!(
        rows[0],
        vec![
            Some("ended".into()),
            Some("completed".into()),
            Some("COMPLETED".into()),
            Some("Booked a demo".into())
        ]
    );
    assert_eq!(
        db.rows("SELECT status FROM leads").await[0][0].as_deref(),
        Some("completed")
    );
}

async fn import_duplicates(db: TestDb) {
    setup(&db, 10).await;
    let c = db.store.insert_leads("c1", &leads(15), t0()).await.unwrap();
    assert_eq!((c.imported, c.duplicates), (5, 10));
    assert_eq!(db.scalar("SELECT count(*) FROM leads").await, 15);
}

async fn plain_sql(db: TestDb) {
    setup(&db, 0).await;
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('c1', '+12127360001')")
        .await;
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('c1', '+12127360002')")
        .await;
    db.exec("UPDATE leads SET status = 'canceled' WHERE phone = '+12127360002'")
        .await;
    // Inserted "now" by the database clock: due from then on.
    let later = Utc::now() + Duration::seconds(5);
    let got = db
        .store
        .claim(&limits(100, 10), "me", later, later + Duration::minutes(5))
        .await
        .unwrap();
    let phones: Vec<_> = got.iter().map(|c| c.lead.phone.as_str()).collect();
    assert_eq!(phones, ["+12127360001"]);
    assert_eq!(got[0].lead.attempts, 0);
    assert!(got[0].lead.variables.is_empty());
}

async fn removed_campaign(db: TestDb) {
    setup(&db, 1).await;
    db.store
        .sync_campaigns(
            &[CampaignRow {
                id: "c2".into(),
                provider: "sim".into(),
                paused: true,
                config_hash: "x".into(),
            }],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        db.scalar("SELECT count(*) FROM campaigns WHERE removed_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        db.store.campaign_ids().await.unwrap(),
        vec!["c1".to_string(), "c2".to_string()]
    );
}
