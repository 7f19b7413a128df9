//! The store contract, run on SQLite and on PostgreSQL alike.

use crate::support::TestDb;
use chrono::{DateTime, Duration, Utc};
use dialer::domain::{AttemptState, CallStatus, ClaimedLead, LeadStatus, Outcome};
use dialer::store::{
    Begun, CampaignRow, ClaimLimits, FromChoice, LeadNext, NewLead, Settled, Store,
};
use serde_json::Map;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(crate) fn t0() -> DateTime<Utc> {
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

/// Campaign `c1` on provider `sim`, with `n` pending leads due at `t0()`.
pub(crate) async fn setup(db: &TestDb, n: usize) {
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
    import_keeps_every_field_and_the_batch_order => import_round_trip;
    a_look_takes_nothing_and_moves_only_leads_as_it_read_them => look_then_reschedule;
    release_all_changes_only_leads_still_held_as_left => release_all_held;
    plain_sql_lead_with_two_columns_is_claimed_and_canceled_one_is_not => plain_sql;
    removed_campaign_is_kept_and_marked => removed_campaign;
    lead_with_a_live_call_is_never_claimed_even_when_reopened => reopened_while_live;
    change_by_another_system_during_a_call_is_kept => other_writer_kept;
    real_end_after_a_synthetic_unknown_moves_the_lead => late_real_end;
    status_order_uses_only_the_providers_clock => provider_clock_only;
    due_times_round_up_to_the_second => due_rounds_up;
    unusable_rows_are_reported => unusable_rows;
    two_campaigns_racing_for_one_number_commit_one_attempt_under_its_cap => shared_number_cap;
    two_campaigns_sharing_numbers_call_each_once_and_wait_for_the_cap => shared_numbers_daemon;
    each_open_attempt_is_polled_by_one_daemon_at_a_time => poll_split;
    writes_committed_together_keep_each_callers_own_result => grouped_writes;
    answers_and_ends_written_as_sets_count_once_each_and_move_their_own_lead => grouped_sets;
    a_number_put_on_the_do_not_call_list_after_the_claim_commits_no_attempt => dnc_after_claim;
    capped_caller_ids_are_chosen_in_the_attempts_transaction_across_daemons => caller_id_caps;
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
            &FromChoice::fixed(None),
            None,
            &[],
            now + Duration::minutes(1),
            unknown_due,
            now,
        )
        .await
        .unwrap()
        .into_attempt()
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
    // While the row is `sending` the call may be live: never claimed, even
    // past the retry delay, until the attempt is known to be `unknown`.
    assert!(
        claim_one(db.store.as_ref(), unknown_due).await.is_none(),
        "claimed while its attempt was still sending"
    );
    // What the poller does with a `sending` row its daemon left behind.
    assert!(db
        .store
        .attempt_unknown(
            &attempt.id,
            "the daemon stopped",
            &LeadNext::pending(unknown_due, Some("unknown".into())),
            now + Duration::minutes(2),
        )
        .await
        .unwrap());
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
            &FromChoice::fixed(Some("+15551230001")),
            None,
            &[],
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
        .into_attempt()
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
            .settle(&a.id, &status, Some(&next), end)
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
            &FromChoice::fixed(None),
            None,
            &[],
            retry + Duration::minutes(2),
            retry + Duration::hours(2),
            retry,
        )
        .await
        .unwrap()
        .into_attempt()
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
            &FromChoice::fixed(None),
            None,
            &[],
            at + Duration::minutes(2),
            at + Duration::hours(2),
            at,
        )
        .await
        .unwrap()
        .into_attempt()
        .unwrap();
    db.store
        .attempt_unknown(
            &a3.id,
            "timeout",
            &LeadNext::pending(at + Duration::hours(2), Some("unknown".into())),
            at,
        )
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
            &FromChoice::fixed(None),
            None,
            &[],
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
        .into_attempt()
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
            &FromChoice::fixed(None),
            None,
            &[],
            retry + Duration::minutes(2),
            retry + Duration::hours(2),
            retry,
        )
        .await
        .unwrap()
        .into_attempt()
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
            &FromChoice::fixed(None),
            None,
            &[],
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
        .into_attempt()
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
        db.store.settle(&a.id, &live, None, now).await.unwrap(),
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
            .settle(&a.id, &done, Some(&fin), end)
            .await
            .unwrap(),
        Settled::Applied
    );
    assert_eq!(
        db.store
            .settle(&a.id, &done, Some(&fin), end)
            .await
            .unwrap(),
        Settled::Stale,
        "duplicate"
    );
    assert_eq!(
        db.store.settle(&a.id, &live, None, end).await.unwrap(),
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

async fn import_round_trip(db: TestDb) {
    setup(&db, 0).await;
    let mut vars = Map::new();
    vars.insert("note".into(), "Zoë said \"hi\", C:\\ ✓\n".into());
    vars.insert("plan".into(), "".into());
    let batch = vec![
        NewLead {
            phone: "+12127360009".into(),
            name: Some("Ann O'Neil".into()),
            timezone: Some("Europe/Paris".into()),
            variables: vars.clone(),
        },
        NewLead {
            phone: "+12127360001".into(),
            name: None,
            timezone: None,
            variables: Map::new(),
        },
        // The same number again in the same batch: a duplicate, not an error.
        NewLead {
            phone: "+12127360009".into(),
            name: Some("Again".into()),
            timezone: None,
            variables: Map::new(),
        },
    ];
    let c = db.store.insert_leads("c1", &batch, t0()).await.unwrap();
    assert_eq!((c.imported, c.duplicates), (2, 1));
    assert_eq!(
        db.rows("SELECT phone, name, timezone, status FROM leads ORDER BY id")
            .await,
        vec![
            vec![
                Some("+12127360009".to_string()),
                Some("Ann O'Neil".to_string()),
                Some("Europe/Paris".to_string()),
                Some("pending".to_string()),
            ],
            vec![
                Some("+12127360001".to_string()),
                None,
                None,
                Some("pending".to_string()),
            ],
        ]
    );
    let got = db
        .store
        .claim(&limits(100, 10), "me", t0(), t0() + Duration::minutes(5))
        .await
        .unwrap();
    let by_phone = |p: &str| got.iter().find(|c| c.lead.phone == p).unwrap();
    assert_eq!(by_phone("+12127360009").lead.variables, vars);
    assert!(by_phone("+12127360001").lead.variables.is_empty());
    assert_eq!(by_phone("+12127360009").lead.next_attempt_at, Some(t0()));
}

async fn look_then_reschedule(db: TestDb) {
    setup(&db, 30).await;
    let now = t0();
    let lease = now + Duration::minutes(5);
    // Priorities, so that the look's order is the claim's and not the ids'.
    db.exec("UPDATE leads SET priority = 1 WHERE id % 3 = 0")
        .await;
    let looked = db.store.look("c1", now, 10).await.unwrap();
    assert_eq!(looked.len(), 10);
    let mut ids: Vec<i64> = looked.iter().map(|l| l.lead.id).collect();
    ids.sort();
    // Nothing was taken: another daemon's claim gets the same first leads,
    // in the claim's order.
    let held = db
        .store
        .claim(&limits(5, 5), "other", now, lease)
        .await
        .unwrap();
    assert_eq!(held.len(), 5, "a look holds nothing");
    let in_look = |id: i64| looked.iter().any(|l| l.lead.id == id);
    assert!(
        held.iter().all(|c| in_look(c.lead.id)),
        "the look read the claim's first leads"
    );
    assert!(held.iter().all(|c| c.lead.priority == 1));
    // Another system changes two of the looked-at leads meanwhile.
    let free: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !held.iter().any(|c| c.lead.id == *id))
        .collect();
    db.exec(&format!(
        "UPDATE leads SET status = 'canceled' WHERE id = {}",
        free[0]
    ))
    .await;
    let theirs = t0() + Duration::hours(5);
    db.exec(&format!(
        "UPDATE leads SET next_attempt_at = '{}' WHERE id = {}",
        theirs.format("%Y-%m-%dT%H:%M:%SZ"),
        free[1]
    ))
    .await;
    let later = now + Duration::hours(3);
    let moves: Vec<_> = looked
        .iter()
        .map(|l| {
            let next = if l.lead.id == free[2] {
                LeadNext::finished(LeadStatus::Skipped, "do_not_call")
            } else {
                LeadNext::pending(later, None)
            };
            (l.clone(), next)
        })
        .collect();
    let moved = db.store.reschedule_all(&moves, now).await.unwrap();
    assert_eq!(
        moved, 3,
        "10 looked at, 5 claimed since and 2 changed by another system"
    );
    let row = |id: i64| {
        let db = &db;
        async move {
            db.rows(&format!(
                "SELECT status, last_outcome, lease_owner FROM leads WHERE id = {id}"
            ))
            .await
            .remove(0)
        }
    };
    let s = |v: &str| Some(v.to_string());
    for c in &held {
        assert_eq!(
            row(c.lead.id).await,
            vec![s("in_progress"), None, s("other")]
        );
    }
    assert_eq!(row(free[0]).await, vec![s("canceled"), None, None]);
    assert_eq!(row(free[1]).await, vec![s("pending"), None, None]);
    assert_eq!(
        row(free[2]).await,
        vec![s("skipped"), s("do_not_call"), None]
    );
    // The other system's due time stands; the moved leads are due at theirs.
    let due_at = |t: DateTime<Utc>| {
        let db = &db;
        async move {
            let mut got: Vec<i64> = db
                .store
                .look("c1", t, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.lead.id)
                .collect();
            got.sort();
            got
        }
    };
    let before = due_at(later - Duration::seconds(1)).await;
    assert!(!before.contains(&free[3]) && !before.contains(&free[4]));
    assert!(!before.contains(&free[1]));
    let after = due_at(later).await;
    assert!(after.contains(&free[3]) && after.contains(&free[4]));
    assert!(!after.contains(&free[1]));
    assert!(due_at(theirs).await.contains(&free[1]));
    // Moved once, a second move of the same reads changes nothing.
    assert_eq!(db.store.reschedule_all(&moves, now).await.unwrap(), 0);
}

async fn release_all_held(db: TestDb) {
    setup(&db, 4).await;
    let now = t0();
    let lease = now + Duration::minutes(5);
    let got = db
        .store
        .claim(&limits(10, 4), "me", now, lease)
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    let phone = |i: usize| got[i].lead.phone.clone();
    // Another system sets one lead aside while it is held.
    db.exec(&format!(
        "UPDATE leads SET status = 'canceled' WHERE phone = '{}'",
        phone(2)
    ))
    .await;
    // One claimed by someone else, as far as this list says.
    let mut stranger = got[3].clone();
    stranger.lease_owner = "someone else".into();
    let later = now + Duration::hours(3);
    db.store
        .release_all(
            &[
                (
                    got[0].clone(),
                    LeadNext::pending(later, Some("busy".into())),
                ),
                (
                    got[1].clone(),
                    LeadNext::finished(LeadStatus::Skipped, "do_not_call"),
                ),
                (got[2].clone(), LeadNext::pending(later, None)),
                (stranger, LeadNext::pending(later, None)),
            ],
            now,
        )
        .await
        .unwrap();
    let row = |p: String| {
        let db = &db;
        async move {
            db.rows(&format!(
                "SELECT status, last_outcome, lease_owner FROM leads WHERE phone = '{p}'"
            ))
            .await
            .remove(0)
        }
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(row(phone(0)).await, vec![s("pending"), s("busy"), None]);
    assert_eq!(
        row(phone(1)).await,
        vec![s("skipped"), s("do_not_call"), None]
    );
    assert_eq!(row(phone(2)).await, vec![s("canceled"), None, s("me")]);
    assert_eq!(row(phone(3)).await, vec![s("in_progress"), None, s("me")]);
    // The pending one is due at its new time, and not before (the lead still
    // held has its lease run out by then: it is claimable again).
    let phones_at = |t: DateTime<Utc>| {
        let db = &db;
        async move {
            db.store
                .claim(&limits(100, 10), "next", t, t + Duration::minutes(5))
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.lead.phone)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        phones_at(later - Duration::seconds(1)).await,
        vec![phone(3)]
    );
    assert_eq!(phones_at(later).await, vec![phone(0)]);
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

/// Claims the one lead and commits its attempt, placed with call id `c-1`.
async fn live_call(db: &TestDb, now: DateTime<Utc>) -> (ClaimedLead, dialer::domain::Attempt) {
    let lead = claim_one(db.store.as_ref(), now).await.expect("due lead");
    let a = db
        .store
        .begin_attempt(
            &lead,
            "sim",
            &FromChoice::fixed(None),
            None,
            &[],
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
        .into_attempt()
        .unwrap();
    db.store
        .attempt_placed(&a, "c-1", "QUEUED", now + Duration::minutes(35), now)
        .await
        .unwrap();
    (lead, a)
}

fn ended(outcome: Outcome, at: Option<DateTime<Utc>>) -> CallStatus {
    CallStatus {
        provider_status: "COMPLETED".into(),
        outcome: Some(outcome),
        status_at: at,
        ..Default::default()
    }
}

async fn reopened_while_live(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    live_call(&db, now).await;
    // The CRM reopens the lead, due at once, while its call is live.
    db.exec("UPDATE leads SET status = 'pending', next_attempt_at = '2026-12-01T15:00:00Z'")
        .await;
    for later in [
        Duration::seconds(1),
        Duration::minutes(10),
        Duration::hours(3),
    ] {
        assert!(
            claim_one(db.store.as_ref(), now + later).await.is_none(),
            "claimed {later} later while its call was live"
        );
    }
    // Once the call ends, the reopened lead is due as the CRM asked.
    let end = now + Duration::minutes(4);
    db.store
        .settle(
            &db_attempt_id(&db).await,
            &ended(Outcome::NoAnswer, None),
            Some(&LeadNext::pending(
                end + Duration::hours(2),
                Some("no_answer".into()),
            )),
            end,
        )
        .await
        .unwrap();
    let again = claim_one(db.store.as_ref(), end)
        .await
        .expect("claimable once the call ended");
    assert_eq!(again.attempt, 2);
}

async fn db_attempt_id(db: &TestDb) -> String {
    db.rows("SELECT id FROM call_attempts ORDER BY attempt DESC")
        .await[0][0]
        .clone()
        .unwrap()
}

async fn other_writer_kept(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    let (_, a) = live_call(&db, now).await;
    // A callback scheduled by the CRM during the call.
    db.exec("UPDATE leads SET status = 'pending', next_attempt_at = '2026-12-02T16:00:00Z'")
        .await;
    let end = now + Duration::minutes(3);
    assert_eq!(
        db.store
            .settle(
                &a.id,
                &ended(Outcome::Completed, Some(end)),
                Some(&LeadNext::finished(LeadStatus::Completed, "completed")),
                end,
            )
            .await
            .unwrap(),
        Settled::Applied,
        "the attempt is still recorded"
    );
    assert_eq!(
        db.rows("SELECT state, outcome FROM call_attempts").await[0],
        vec![Some("ended".into()), Some("completed".into())]
    );
    let lead = db
        .store
        .find_lead("c1", "+12127360000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lead.status,
        LeadStatus::Pending,
        "the CRM's callback is kept"
    );
    assert_eq!(
        lead.next_attempt_at,
        Some("2026-12-02T16:00:00Z".parse().unwrap())
    );
    // A lead stopped by the CRM during a call stays stopped.
    let db2 = db;
    db2.exec("UPDATE leads SET status = 'canceled'").await;
    assert!(!db2
        .store
        .attempt_unknown(&a.id, "x", &LeadNext::pending(end, None), end)
        .await
        .unwrap());
    assert_eq!(
        db2.rows("SELECT status FROM leads").await[0][0].as_deref(),
        Some("canceled")
    );
}

async fn late_real_end(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    let (_, a) = live_call(&db, now).await;
    // The call outlives max_call_duration: reconciled as unknown.
    let later = now + Duration::minutes(31);
    let unknown_due = later + Duration::hours(2);
    assert!(db
        .store
        .attempt_unknown(
            &a.id,
            "no final status within max_call_duration",
            &LeadNext::pending(unknown_due, Some("unknown".into())),
            later,
        )
        .await
        .unwrap());
    assert_eq!(
        db.rows("SELECT state FROM call_attempts").await[0][0].as_deref(),
        Some("unknown"),
        "still open to evidence"
    );
    // The real end arrives later (a redelivered webhook, a late poll), with
    // a provider time older than our reconciliation.
    let real = ended(Outcome::Completed, Some(now + Duration::minutes(2)));
    assert_eq!(
        db.store
            .settle(
                &a.id,
                &real,
                Some(&LeadNext::finished(LeadStatus::Completed, "completed")),
                later + Duration::minutes(1),
            )
            .await
            .unwrap(),
        Settled::Applied
    );
    assert_eq!(
        db.rows("SELECT l.status, a.state, a.outcome FROM leads l JOIN call_attempts a ON a.lead_id = l.id")
            .await[0],
        vec![Some("completed".into()), Some("ended".into()), Some("completed".into())]
    );
    assert!(claim_one(db.store.as_ref(), unknown_due).await.is_none());
    // A second real end never replaces the first.
    assert_eq!(
        db.store
            .settle(&a.id, &ended(Outcome::Failed, None), None, later)
            .await
            .unwrap(),
        Settled::Stale
    );
}

async fn provider_clock_only(db: TestDb) {
    setup(&db, 1).await;
    // Our clock is 10 s ahead of the provider's: the call ended at the
    // provider before our clock's time of the place answer.
    let ours = t0();
    let (_, a) = live_call(&db, ours).await;
    let theirs = ours - Duration::seconds(10);
    let live = CallStatus {
        provider_status: "ONGOING".into(),
        status_at: Some(theirs - Duration::seconds(1)),
        ..Default::default()
    };
    assert_eq!(
        db.store.settle(&a.id, &live, None, ours).await.unwrap(),
        Settled::Applied
    );
    let older = CallStatus {
        provider_status: "QUEUED".into(),
        status_at: Some(theirs - Duration::seconds(5)),
        ..Default::default()
    };
    assert_eq!(
        db.store.settle(&a.id, &older, None, ours).await.unwrap(),
        Settled::Stale,
        "an older live status by the provider's clock"
    );
    assert_eq!(
        db.store
            .settle(
                &a.id,
                &ended(Outcome::Completed, Some(theirs)),
                Some(&LeadNext::finished(LeadStatus::Completed, "completed")),
                ours,
            )
            .await
            .unwrap(),
        Settled::Applied,
        "an end stamped before our clock's place answer still applies"
    );
    assert_eq!(
        db.rows("SELECT status FROM leads").await[0][0].as_deref(),
        Some("completed")
    );
}

async fn due_rounds_up(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    let lead = claim_one(db.store.as_ref(), now).await.unwrap();
    let due = now + Duration::milliseconds(2_300);
    db.store
        .release(&lead, &LeadNext::pending(due, None), now)
        .await
        .unwrap();
    let lead = db
        .store
        .find_lead("c1", "+12127360000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lead.next_attempt_at,
        Some(now + Duration::seconds(3)),
        "a due time is never early"
    );
    assert!(
        claim_one(db.store.as_ref(), now + Duration::milliseconds(2_900))
            .await
            .is_none()
    );
}

async fn unusable_rows(db: TestDb) {
    setup(&db, 2).await;
    db.exec("UPDATE leads SET next_attempt_at = NULL WHERE phone = '+12127360001'")
        .await;
    db.exec("INSERT INTO leads (campaign_id, phone) VALUES ('nobody', '+12127369999')")
        .await;
    let rows = db.store.unusable_leads(100).await.unwrap();
    let whys: Vec<_> = rows
        .iter()
        .map(|r| (r.campaign_id.as_str(), r.why))
        .collect();
    assert_eq!(
        whys,
        vec![
            ("c1", dialer::store::Unusable::NoDueTime),
            ("nobody", dialer::store::Unusable::UnknownCampaign)
        ]
    );
    assert_eq!(db.store.campaign_stats("c1").await.unwrap().unusable, 1);
}

/// Other systems write SQLite times in the forms SQLite's own functions
/// produce; the daemon compares due times as RFC 3339 text.
#[tokio::test]
async fn sqlite_due_times_in_any_sqlite_form_are_read_right() {
    let db = crate::support::sqlite().await;
    setup(&db, 5).await;
    let now = t0(); // 2026-12-01T15:00:00Z
    for (phone, sql) in [
        ("+12127360000", "datetime('2026-12-01 15:00:00', '+1 hour')"),
        ("+12127360001", "'2026-12-01 15:00:00.25'"),
        ("+12127360002", "'2026-12-01T17:00:00+01:00'"),
        ("+12127360003", "unixepoch('2026-12-01 16:30:00')"),
    ] {
        db.exec(&format!(
            "UPDATE leads SET next_attempt_at = {sql} WHERE phone = '{phone}'"
        ))
        .await;
    }
    db.exec("INSERT INTO leads (campaign_id, phone, next_attempt_at) VALUES ('c1', '+12127360099', '2026-12-01 14:00:00')")
        .await;
    let stored = db
        .rows("SELECT phone, next_attempt_at FROM leads ORDER BY phone")
        .await;
    let stored: Vec<(String, String)> = stored
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(
        stored,
        vec![
            ("+12127360000".into(), "2026-12-01T16:00:00Z".into()),
            ("+12127360001".into(), "2026-12-01T15:00:01Z".into()),
            ("+12127360002".into(), "2026-12-01T16:00:00Z".into()),
            ("+12127360003".into(), "2026-12-01T16:30:00Z".into()),
            ("+12127360004".into(), "2026-12-01T15:00:00Z".into()),
            ("+12127360099".into(), "2026-12-01T14:00:00Z".into()),
        ]
    );
    // Only the leads due by then are claimed.
    let got = db
        .store
        .claim(&limits(100, 100), "me", now, now + Duration::minutes(5))
        .await
        .unwrap();
    let phones: HashSet<_> = got.iter().map(|l| l.lead.phone.as_str()).collect();
    assert_eq!(phones, HashSet::from(["+12127360004", "+12127360099"]));
}

/// The number both campaigns below call.
const SHARED: &str = "+12127369999";

/// Two campaigns holding a lead each for one number, as two daemons would
/// after their claims.
async fn two_campaigns_one_number(db: &TestDb, now: DateTime<Utc>) -> (ClaimedLead, ClaimedLead) {
    let rows: Vec<CampaignRow> = ["c1", "c2"]
        .iter()
        .map(|id| CampaignRow {
            id: id.to_string(),
            provider: "sim".into(),
            paused: false,
            config_hash: "h".into(),
        })
        .collect();
    db.store.sync_campaigns(&rows, now).await.unwrap();
    let lead = NewLead {
        phone: SHARED.into(),
        name: None,
        timezone: None,
        variables: Map::new(),
    };
    let mut held = Vec::new();
    for id in ["c1", "c2"] {
        db.store
            .insert_leads(id, std::slice::from_ref(&lead), now)
            .await
            .unwrap();
        let limits = ClaimLimits {
            campaign_id: id.into(),
            ..limits(100, 1)
        };
        let claimed = db
            .store
            .claim(&limits, id, now, now + Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{id} claims its lead");
        held.extend(claimed);
    }
    let second = held.pop().unwrap();
    (held.pop().unwrap(), second)
}

/// Commits the attempt of a claimed lead, with at most one counted attempt
/// to its number per rolling day.
async fn begin_capped(store: &dyn Store, lead: &ClaimedLead, now: DateTime<Utc>) -> Begun {
    store
        .begin_attempt(
            lead,
            "sim",
            &FromChoice::fixed(None),
            None,
            &[(Duration::hours(24), 1)],
            now + Duration::minutes(2),
            now + Duration::hours(2),
            now,
        )
        .await
        .unwrap()
}

async fn counted_to_shared(db: &TestDb) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM call_attempts WHERE to_number = '{SHARED}' AND state <> 'not_placed'"
    ))
    .await
}

async fn shared_number_cap(db: TestDb) {
    let now = t0();
    let (a, b) = two_campaigns_one_number(&db, now).await;
    // Two daemons: separate handles on the same database.
    let one = dialer::store::connect(&db.url, 2).await.unwrap();
    let two = dialer::store::connect(&db.url, 2).await.unwrap();
    let (x, y) = tokio::join!(
        begin_capped(one.as_ref(), &a, now),
        begin_capped(two.as_ref(), &b, now)
    );
    assert_eq!(
        counted_to_shared(&db).await,
        1,
        "{}: attempts committed to one number with a cap of 1 a day ({x:?}, {y:?})",
        db.backend()
    );
    let (won, lost) = match (&x, &y) {
        (Begun::Attempt(_), Begun::Capped) => (&a, &b),
        (Begun::Capped, Begun::Attempt(_)) => (&b, &a),
        other => panic!(
            "{}: one attempt and one refusal expected, got {other:?}",
            db.backend()
        ),
    };
    // The refused lead is still held by its claimer, untouched: no lease
    // extension, no due time moved, no attempt counted.
    let rows = db
        .rows(&format!(
            "SELECT status, lease_owner, CAST(attempts AS TEXT), last_attempt_at FROM leads WHERE id = {}",
            lost.lead.id
        ))
        .await;
    assert_eq!(
        rows[0],
        vec![
            Some("in_progress".into()),
            Some(lost.lease_owner.clone()),
            Some("0".into()),
            None
        ]
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT attempts FROM leads WHERE id = {}",
            won.lead.id
        ))
        .await,
        1
    );
    // A daemon whose instant was taken before the committed attempt's (it
    // waited for the lock meanwhile) still counts that attempt.
    assert_eq!(
        begin_capped(db.store.as_ref(), lost, now - Duration::seconds(5)).await,
        Begun::Capped
    );
    // Still capped a second before the call leaves the rolling day, and
    // free at that instant.
    let day = Duration::hours(24);
    assert_eq!(
        begin_capped(db.store.as_ref(), lost, now + day - Duration::seconds(1)).await,
        Begun::Capped
    );
    assert_eq!(counted_to_shared(&db).await, 1);
    assert!(matches!(
        begin_capped(db.store.as_ref(), lost, now + day).await,
        Begun::Attempt(_)
    ));
    assert_eq!(counted_to_shared(&db).await, 2);
}

/// Both campaigns below, differing only by id: every lead may be retried at
/// once, but not within a day of the last call to its number.
fn capped_campaign(id: &str) -> String {
    format!(
        r#"
id = "{id}"
provider = "revring"
agent_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
from_numbers = ["+15551230001"]
timezone = "America/New_York"
[pacing]
calls_per_minute = 6000
burst = 20
max_concurrent = 40
[retry]
max_attempts = 3
[retry.after]
default = "1s"
[compliance]
local_hours = "off"
max_attempts_per_day = 1
"#
    )
}

/// The whole daemon, two campaigns on the same 40 numbers racing through
/// them: the provider sees each number once, and every lead (the one called
/// and the one refused) waits until that call leaves the rolling day.
async fn shared_numbers_daemon(db: TestDb) {
    use crate::support::fake_revring::{Behaviour, End, FakeRevRing};
    use std::collections::HashMap;

    const KEY: &str = "rr_test_key";
    let phones: Vec<String> = (0..40).map(|i| format!("+1212555{:04}", i)).collect();
    let (fake, fake_url) = FakeRevRing::start(KEY, |_| Behaviour::Answer {
        ms: 50,
        end: End::NoAnswer,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    let daemon_toml = format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{}"
[log]
level = "warn"
[providers.revring]
kind = "revring"
base_url = "{fake_url}"
api_key_file = "key"
requests_per_minute = 60000
max_concurrent_calls = 100
request_timeout = "2s"
poll_interval = "1s"
"#,
        db.url
    );
    let (c1, c2) = (capped_campaign("c1"), capped_campaign("c2"));
    let loaded = crate::support::write_config(
        dir.path(),
        &daemon_toml,
        &[("c1.toml", c1.as_str()), ("c2.toml", c2.as_str())],
    );
    let clock = dialer::clock::Clock::system();
    dialer::daemon::sync_campaign_rows(db.store.as_ref(), &loaded.campaigns, clock.now())
        .await
        .unwrap();
    let leads: Vec<NewLead> = phones
        .iter()
        .map(|p| NewLead {
            phone: p.clone(),
            name: None,
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    for id in ["c1", "c2"] {
        db.store
            .insert_leads(id, &leads, clock.now())
            .await
            .unwrap();
    }
    let daemon = dialer::daemon::Daemon::new(db.store.clone(), clock.clone(), &loaded).unwrap();
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let running = dialer::engine::start(daemon, None);
    let started = std::time::Instant::now();
    let waiting = |rows: &[Vec<Option<String>>]| {
        let later = Utc::now() + Duration::hours(1);
        rows.iter()
            .filter(|r| {
                r[1].as_deref() == Some("pending")
                    && r[2]
                        .as_deref()
                        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                        .is_some_and(|t| t > later)
            })
            .count()
    };
    let query =
        "SELECT phone, status, next_attempt_at, campaign_id FROM leads ORDER BY phone, campaign_id";
    while started.elapsed() < std::time::Duration::from_secs(60) {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if waiting(&db.rows(query).await) == 80 {
            break;
        }
    }
    running.stop(std::time::Duration::from_secs(5)).await;

    let mut accepted: HashMap<String, usize> = HashMap::new();
    for r in fake.requests() {
        if r.answered == 201 {
            *accepted.entry(r.to.clone()).or_default() += 1;
        }
    }
    let over: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        over.is_empty(),
        "{}: numbers called more than once in a day with a cap of 1: {over:?}",
        db.backend()
    );
    assert_eq!(accepted.len(), 40, "every number is called once");

    let requested: HashMap<String, DateTime<Utc>> = db
        .rows("SELECT to_number, requested_at FROM call_attempts WHERE state <> 'not_placed'")
        .await
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let rows = db.rows(query).await;
    assert_eq!(rows.len(), 80);
    for r in &rows {
        let phone = r[0].as_deref().unwrap();
        let called = requested[phone];
        assert_eq!(
            (r[1].as_deref(), r[2].as_deref()),
            (
                Some("pending"),
                Some(dialer::domain::rfc3339(called + Duration::hours(24)).as_str())
            ),
            "{}: lead {phone} of {:?}, called at {called}",
            db.backend(),
            r[3]
        );
    }
}

/// Two daemons polling one provider: an open attempt taken by one is not
/// polled by the other until the first one's turn has run out.
async fn poll_split(db: TestDb) {
    setup(&db, 1).await;
    let now = t0();
    let (_, a) = live_call(&db, now).await;
    let ids = vec![a.id.clone()];
    let us = |t: DateTime<Utc>| t.timestamp_micros();
    let first = db
        .store
        .take_polls(&ids, us(now), us(now + Duration::seconds(10)))
        .await
        .unwrap();
    assert_eq!(first, ids, "the first daemon takes the open attempt");
    let second = db
        .store
        .take_polls(
            &ids,
            us(now + Duration::seconds(5)),
            us(now + Duration::seconds(15)),
        )
        .await
        .unwrap();
    assert!(
        second.is_empty(),
        "taken by the second daemon while the first holds it"
    );
    let later = db
        .store
        .take_polls(
            &ids,
            us(now + Duration::seconds(10)),
            us(now + Duration::seconds(20)),
        )
        .await
        .unwrap();
    assert_eq!(
        later, ids,
        "free again once the first daemon's turn ran out"
    );
}

/// `n` leads set up, then claimed together by owner `me`.
async fn claim_all(db: &TestDb, n: usize, now: DateTime<Utc>) -> Vec<ClaimedLead> {
    setup(db, n).await;
    let claimed = db
        .store
        .claim(
            &limits(1_000, n as u32),
            "me",
            now,
            now + Duration::minutes(5),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), n);
    claimed
}

/// Attempts of many leads begun at once share transactions: one that fails
/// in the database, and one whose number is capped, change nothing of the
/// others, and each caller learns its own fate.
async fn grouped_writes(db: TestDb) {
    const N: usize = 60;
    let now = t0();
    let claimed = claim_all(&db, N, now).await;
    let phone = |i: usize| format!("+1212736{i:04}");
    // The database refuses any attempt to lead 17's number...
    let refused = phone(17);
    match db.backend() {
        "sqlite" => {
            db.exec(&format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON call_attempts WHEN NEW.to_number = '{refused}'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ))
            .await;
        }
        _ => {
            db.exec(&format!(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN IF NEW.to_number = '{refused}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                 RETURN NEW; END $$"
            ))
            .await;
            db.exec("CREATE TRIGGER refuse BEFORE INSERT ON call_attempts FOR EACH ROW EXECUTE FUNCTION refuse()")
                .await;
        }
    }
    // ...and lead 40's number was called an hour ago (its cap is one a day).
    let capped = phone(40);
    let capped_id = claimed
        .iter()
        .find(|c| c.lead.phone == capped)
        .unwrap()
        .lead
        .id;
    db.exec(&format!(
        "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, to_number, state, requested_at)
         VALUES ('earlier', {capped_id}, 'c1', 0, 'sim', '{capped}', 'ended', '2026-12-01T14:00:00Z')"
    ))
    .await;
    let begins = claimed.iter().map(|lead| {
        let store = db.store.clone();
        let lead = lead.clone();
        tokio::spawn(async move {
            let begun = store
                .begin_attempt(
                    &lead,
                    "sim",
                    &FromChoice::fixed(None),
                    None,
                    &[(Duration::hours(24), 1)],
                    now + Duration::minutes(2),
                    now + Duration::hours(2),
                    now,
                )
                .await;
            (lead.lead.phone.clone(), begun)
        })
    });
    let mut began = 0;
    for handle in begins.collect::<Vec<_>>() {
        let (phone, begun) = handle.await.unwrap();
        match begun {
            Err(e) => assert_eq!(phone, refused, "{}: {phone} failed: {e}", db.backend()),
            Ok(Begun::Capped) => assert_eq!(phone, capped, "{}: {phone} capped", db.backend()),
            Ok(Begun::Attempt(a)) => {
                assert!(
                    phone != refused && phone != capped,
                    "{}: {phone} began",
                    db.backend()
                );
                assert_eq!(a.to_number, phone);
                began += 1;
            }
            Ok(other) => panic!("{}: {phone}: {other:?}", db.backend()),
        }
    }
    assert_eq!(began, N - 2, "{}", db.backend());
    // What each caller was told is what the database holds.
    assert_eq!(
        db.scalar("SELECT count(*) FROM call_attempts WHERE state = 'sending'")
            .await,
        (N - 2) as i64
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM leads WHERE attempts = 1 AND last_attempt_at IS NOT NULL")
            .await,
        (N - 2) as i64
    );
    // The refused and the capped leads are still held as claimed, untouched.
    let untouched = db
        .rows(&format!(
            "SELECT phone, status, lease_owner, last_attempt_at FROM leads
              WHERE phone IN ('{refused}', '{capped}') ORDER BY phone"
        ))
        .await;
    for (row, p) in untouched.iter().zip([&refused, &capped]) {
        assert_eq!(
            row,
            &vec![
                Some(p.clone()),
                Some("in_progress".into()),
                Some("me".into()),
                None
            ],
            "{}",
            db.backend()
        );
    }
}

/// Many placed answers and ends written at once run as a few set-based
/// statements: an end sent twice (a webhook and a poll) is applied once, a
/// stale answer after the end keeps the end, and each lead moves as its own
/// attempt's end says, whatever else shared its statement.
async fn grouped_sets(db: TestDb) {
    const N: usize = 40;
    let now = t0();
    let claimed = claim_all(&db, N, now).await;
    let mut attempts = Vec::new();
    for lead in &claimed {
        let a = db
            .store
            .begin_attempt(
                lead,
                "sim",
                &FromChoice::fixed(None),
                None,
                &[],
                now + Duration::minutes(2),
                now + Duration::hours(2),
                now,
            )
            .await
            .unwrap()
            .into_attempt()
            .unwrap();
        attempts.push(a);
    }
    let end = now + Duration::minutes(1);
    // Even leads complete, odd ones are busy and come back in three hours.
    let fate = |i: usize| {
        if i % 2 == 0 {
            (
                Outcome::Completed,
                LeadNext::finished(LeadStatus::Completed, "completed"),
            )
        } else {
            (
                Outcome::Busy,
                LeadNext::pending(end + Duration::hours(3), Some("busy".into())),
            )
        }
    };
    let mut tasks = Vec::new();
    for (i, a) in attempts.iter().enumerate() {
        let (outcome, next) = fate(i);
        for copy in 0..2 {
            let (store, a, next) = (db.store.clone(), a.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let status = CallStatus {
                    provider_call_id: Some(format!("call-{i}")),
                    ..ended(outcome, Some(end))
                };
                let s = store
                    .settle(&a.id, &status, Some(&next), end)
                    .await
                    .unwrap();
                (i, copy, Some(s))
            }));
        }
        let (store, a) = (db.store.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            store
                .attempt_placed(&a, &format!("call-{i}"), "QUEUED", end, now)
                .await
                .unwrap();
            (i, 2, None)
        }));
    }
    let mut applied = vec![0; N];
    for t in tasks {
        if let (i, _, Some(Settled::Applied)) = t.await.unwrap() {
            applied[i] += 1;
        }
    }
    assert_eq!(
        applied,
        vec![1; N],
        "{}: each end applied once",
        db.backend()
    );
    for (i, a) in attempts.iter().enumerate() {
        let row = db
            .rows(&format!(
                "SELECT a.state, a.outcome, a.provider_call_id, l.status, l.last_outcome, l.lease_owner
                   FROM call_attempts a JOIN leads l ON l.id = a.lead_id WHERE a.id = '{}'",
                a.id
            ))
            .await;
        let (outcome, lead_status) = if i % 2 == 0 {
            ("completed", "completed")
        } else {
            ("busy", "pending")
        };
        assert_eq!(
            row[0],
            vec![
                Some("ended".into()),
                Some(outcome.into()),
                Some(format!("call-{i}")),
                Some(lead_status.into()),
                Some(outcome.into()),
                None
            ],
            "{}: attempt {i}",
            db.backend()
        );
    }
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM leads WHERE status = 'pending' AND next_attempt_at IS NOT NULL"
        )
        .await,
        (N / 2) as i64
    );
}

async fn dnc_after_claim(db: TestDb) {
    let now = t0();
    setup(&db, 2).await;
    let claimed = db
        .store
        .claim(&limits(100, 2), "me", now, now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // The callee opts out between the claim and the attempt.
    let (out, other) = (&claimed[0], &claimed[1]);
    db.store
        .add_dnc(std::slice::from_ref(&out.lead.phone), "opt-out", now)
        .await
        .unwrap();
    assert_eq!(
        begin_capped(db.store.as_ref(), out, now).await,
        Begun::DoNotCall,
        "{}",
        db.backend()
    );
    assert!(matches!(
        begin_capped(db.store.as_ref(), other, now).await,
        Begun::Attempt(_)
    ));
    // No attempt to the opted-out number, and its lead still held as claimed.
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM call_attempts WHERE to_number = '{}'",
            out.lead.phone
        ))
        .await,
        0
    );
    let rows = db
        .rows(&format!(
            "SELECT status, lease_owner, last_attempt_at FROM leads WHERE id = {}",
            out.lead.id
        ))
        .await;
    assert_eq!(
        rows[0],
        vec![Some("in_progress".into()), Some("me".into()), None]
    );
}

/// `[caller_id]` caps: 30 claimed leads begun at once through two store
/// handles (two daemons), each offered three caller IDs in its own order,
/// four calls an hour and six a day per number. One number was used 30
/// minutes ago and one two days ago. Exactly the room the caps leave is
/// committed, spread over the numbers; every other lead is told when a
/// number frees and is left as claimed.
async fn caller_id_caps(db: TestDb) {
    const N: usize = 30;
    const A: &str = "+12125550101";
    const B: &str = "+13125550102";
    const C: &str = "+14155550103";
    let now = t0();
    let claimed = claim_all(&db, N, now).await;
    // Other leads' calls, stored as attempt 0 of leads 0, 1 and 2.
    let earlier = |i: usize, id: &str, from: &str, at: DateTime<Utc>| {
        format!(
            "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, from_number, to_number, state, requested_at)
             VALUES ('{id}', {}, 'c1', 0, 'sim', '{from}', '+33142685300', 'ended', '{}')",
            claimed[i].lead.id,
            dialer::domain::rfc3339(at)
        )
    };
    db.exec(&earlier(0, "half-hour-ago", A, now - Duration::minutes(30)))
        .await;
    db.exec(&earlier(1, "two-days-ago", C, now - Duration::days(2)))
        .await;
    // Refused before placing: never counts.
    db.exec(&earlier(2, "refused", B, now - Duration::minutes(5)))
        .await;
    db.exec("UPDATE call_attempts SET state = 'not_placed' WHERE id = 'refused'")
        .await;
    let one = dialer::store::connect(&db.url, 4).await.unwrap();
    let two = dialer::store::connect(&db.url, 4).await.unwrap();
    let caps = vec![(Duration::hours(1), 4), (Duration::hours(24), 6)];
    let begins = claimed.iter().enumerate().map(|(i, lead)| {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        let mut numbers = vec![A.to_string(), B.to_string(), C.to_string()];
        numbers.rotate_left(i % 3);
        let from = FromChoice {
            numbers,
            caps: caps.clone(),
        };
        let lead = lead.clone();
        tokio::spawn(async move {
            store
                .begin_attempt(
                    &lead,
                    "sim",
                    &from,
                    None,
                    &[],
                    now + Duration::minutes(2),
                    now + Duration::hours(2),
                    now,
                )
                .await
                .unwrap()
        })
    });
    let mut from_numbers = HashMap::<String, usize>::new();
    let mut capped = 0;
    for handle in begins.collect::<Vec<_>>() {
        match handle.await.unwrap() {
            Begun::Attempt(a) => {
                *from_numbers
                    .entry(a.from_number.clone().expect("a caller ID"))
                    .or_default() += 1
            }
            Begun::CallerIdCapped { until } => {
                // A's call of half an hour ago leaves its hour first.
                assert_eq!(until, now + Duration::minutes(30), "{}", db.backend());
                capped += 1;
            }
            other => panic!("{}: {other:?}", db.backend()),
        }
    }
    assert_eq!(
        from_numbers,
        HashMap::from([(A.to_string(), 3), (B.to_string(), 4), (C.to_string(), 4)]),
        "{}",
        db.backend()
    );
    assert_eq!(capped, N - 11, "{}", db.backend());
    // What the callers were told is what the database holds.
    let stored = db
        .rows(
            "SELECT from_number, CAST(count(*) AS TEXT) FROM call_attempts
              WHERE state = 'sending' GROUP BY from_number ORDER BY from_number",
        )
        .await;
    assert_eq!(
        stored,
        [
            [Some(A.to_string()), Some("3".to_string())],
            [Some(B.to_string()), Some("4".to_string())],
            [Some(C.to_string()), Some("4".to_string())],
        ],
        "{}",
        db.backend()
    );
    // The leads told "capped" are held as claimed, with nothing written.
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM leads WHERE status = 'in_progress' AND lease_owner = 'me'
               AND last_attempt_at IS NULL AND attempts = 0"
        )
        .await,
        (N - 11) as i64,
        "{}",
        db.backend()
    );
    // The count `explain` reads is the one the attempts were held to.
    let used = db
        .store
        .caller_id_use(
            &[A.to_string(), B.to_string(), C.to_string()],
            now - Duration::hours(1),
        )
        .await
        .unwrap();
    let counts: HashMap<&str, usize> = used.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
    assert_eq!(
        counts,
        HashMap::from([(A, 4), (B, 4), (C, 4)]),
        "{}",
        db.backend()
    );
}
