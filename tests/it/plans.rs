//! The claim's order and the hot path's query plans, on both backends: the
//! claim hands leads over highest priority first, then longest due, then
//! oldest, and every hot query reads `leads` and `call_attempts` through an
//! index (no table scan, and no sort of the due leads in the claim).

use crate::store::{setup, t0};
use crate::support::TestDb;
use chrono::{DateTime, Duration, Utc};
use dialer::store::ClaimLimits;

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

on_both_backends! {
    claim_takes_priority_then_longest_due_then_oldest => claim_order;
    claim_order_holds_past_sixteen_priority_levels => claim_order_many_levels;
    hot_queries_read_leads_and_attempts_through_indexes => hot_plans;
}

async fn claim_order(db: TestDb) {
    claim_order_with(db, 40, 3).await;
}

/// The claim walks up to sixteen levels one by one and the rest together.
async fn claim_order_many_levels(db: TestDb) {
    claim_order_with(db, 120, 23).await;
}

async fn claim_order_with(db: TestDb, n: usize, levels: usize) {
    setup(&db, n).await;
    let ids: Vec<i64> = db
        .rows("SELECT CAST(id AS TEXT) FROM leads ORDER BY id")
        .await
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    // (id, priority, due, claimable)
    let mut expected = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let priority = (i % levels) as i64;
        // Due times spread over the last hour, several leads sharing one.
        let due = t0() - Duration::minutes((i as i64 * 7) % 5 * 10);
        let (status, lease, due, claimable) = match i {
            // Not due yet, highest priority: never taken.
            3 | 6 => ("pending", None, t0() + Duration::hours(1), false),
            // In progress under a live lease: not taken.
            9 => ("in_progress", Some(t0() + Duration::minutes(5)), due, false),
            // In progress under a lease that ran out (a dead daemon): taken,
            // in its place in the order.
            12 | 13 => ("in_progress", Some(t0() - Duration::minutes(1)), due, true),
            // A whole level, the highest, due later: passed over.
            _ if levels > 3 && i % levels == levels - 1 => {
                ("pending", None, t0() + Duration::days(2), false)
            }
            _ => ("pending", None, due, true),
        };
        let lease = lease.map_or("NULL".into(), |l| format!("'{}'", at(l)));
        db.exec(&format!(
            "UPDATE leads SET priority = {priority}, status = '{status}', daemon_status = '{status}',
                    next_attempt_at = '{d}', daemon_next_attempt_at = '{d}',
                    lease_owner = CASE WHEN '{status}' = 'in_progress' THEN 'gone' END,
                    lease_expires_at = {lease}
              WHERE id = {id}",
            d = at(due)
        ))
        .await;
        if claimable {
            expected.push((*id, priority, due));
        }
    }
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    let expected: Vec<i64> = expected.into_iter().map(|e| e.0).collect();

    let limits = ClaimLimits {
        campaign_id: "c1".into(),
        provider: "sim".into(),
        max_concurrent: 1_000,
        provider_max_concurrent: 1_000,
        batch: 7,
    };
    let mut got = Vec::new();
    loop {
        let batch = db
            .store
            .claim(&limits, "me", t0(), t0() + Duration::minutes(5))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 7);
        got.extend(batch.into_iter().map(|c| c.lead.id));
    }
    assert_eq!(got, expected, "claim order on {}", db.backend());
}

/// A plan line that reads a whole table (or a whole index) of `leads` or
/// `call_attempts`. The hot queries may scan only `campaigns` (a handful of
/// rows; aliased `cp`), the claim's list of priority levels (`pr`, at most
/// 17 rows), the rows a set write binds (`v`, at most 64) and
/// `leads_in_progress`, the partial index of leads in progress, whose size
/// the concurrency caps bound.
fn scans_a_big_table(backend: &str, line: &str) -> bool {
    let line = line.trim();
    match backend {
        "sqlite" => line.strip_prefix("SCAN ").is_some_and(|rest| {
            !(rest.starts_with("cp")
                || rest == "pr"
                || rest == "v"
                || rest.starts_with('(')
                || rest.starts_with("CONSTANT")
                || rest.ends_with("INDEX leads_in_progress"))
        }),
        _ => line.contains("Seq Scan on leads") || line.contains("Seq Scan on call_attempts"),
    }
}

/// Whether the claim sorts leads as they come from an index walk, rather
/// than the few a `LIMIT` already cut (or the leads in progress): the
/// lines of a sort over every due lead. SQLite says so in one line;
/// PostgreSQL's plan is a tree, where a read of `leads` (other than
/// through `leads_in_progress`) must meet a `Limit` before any `Sort` on
/// its way up.
fn unbounded_sorts(backend: &str, plan: &str) -> Vec<String> {
    if backend == "sqlite" {
        return plan
            .lines()
            .filter(|l| l.contains("TEMP B-TREE"))
            .map(String::from)
            .collect();
    }
    // (indent, node text) of each plan node; detail lines are skipped.
    let nodes: Vec<(usize, &str)> = plan
        .lines()
        .filter_map(|l| {
            let text = l.trim_start();
            let indent = l.len() - text.len();
            let node = text.strip_prefix("->  ").unwrap_or(text);
            (text.starts_with("->") || indent == 0).then_some((indent, node))
        })
        .collect();
    let mut found = Vec::new();
    for (i, &(indent, node)) in nodes.iter().enumerate() {
        let reads_leads = (node.contains(" on leads") || node.contains("using leads"))
            && !node.contains("leads_in_progress")
            && node.contains("Scan");
        if !reads_leads {
            continue;
        }
        let mut level = indent;
        for &(up_indent, up) in nodes[..i].iter().rev() {
            if up_indent >= level {
                continue;
            }
            level = up_indent;
            if up.starts_with("Limit") {
                break;
            }
            if up.starts_with("Sort") || up.starts_with("Incremental Sort") {
                found.push(format!("{node} under {up}"));
                break;
            }
        }
    }
    found
}

/// A plan line that reads attempts by their provider alone.
fn reads_a_providers_attempts(backend: &str, line: &str) -> bool {
    let line = line.trim();
    if backend == "sqlite" {
        line.ends_with("(provider=?)")
    } else {
        line.starts_with("Index Cond:") && line.contains("provider") && !line.contains("AND")
            || line.starts_with("Recheck Cond:") && line.contains(" OR ")
    }
}

async fn hot_plans(db: TestDb) {
    // Enough rows, spread over priorities and due times, with attempts, for
    // the planners' statistics to look like a real campaign's.
    setup(&db, 5_000).await;
    db.exec("UPDATE leads SET priority = id % 4").await;
    db.exec(&format!(
        "UPDATE leads SET next_attempt_at = '{t}', daemon_next_attempt_at = '{t}' WHERE id % 10 <> 0",
        t = at(t0() + Duration::days(1))
    ))
    .await;
    db.exec(
        "INSERT INTO call_attempts (id, lead_id, campaign_id, attempt, provider, provider_call_id, from_number, to_number, state, requested_at)
         SELECT 'a' || CAST(id AS TEXT), id, campaign_id, 1, 'sim', 'call-' || CAST(id AS TEXT),
                '+1212555' || CAST(id % 500 AS TEXT), phone, 'ended', '2026-12-01T14:00:00Z'
           FROM leads",
    )
    .await;
    db.exec("ANALYZE").await;

    let plans = db.store.hot_query_plans("c1", t0()).await.unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        [
            "claim",
            "due_priorities",
            "next_due",
            "recent_attempts",
            "number_attempts",
            "is_dnc",
            "caller_id_use",
            "find_attempt",
            "open_attempts",
            "export_page",
            "begin_attempt",
            "begin_leads",
            "placed_attempts",
            "placed_leads",
            "settle",
            "move_leads",
            "look"
        ]
    );
    let backend = db.backend();
    for (name, plan) in &plans {
        assert!(
            !plan.lines().any(|l| scans_a_big_table(backend, l)),
            "{backend}: `{name}` scans a table:\n{plan}"
        );
    }
    // A webhook's lookup reads one attempt by its id or its call id, never
    // the range of every attempt of the provider.
    let find = &plans[7].1;
    assert!(
        !find.lines().any(|l| reads_a_providers_attempts(backend, l)),
        "{backend}: `find_attempt` reads every attempt of the provider:\n{find}"
    );
    let caller_ids = &plans[6].1;
    assert!(
        caller_ids.contains("call_attempts_from"),
        "{backend}: a caller ID's count does not use call_attempts_from:\n{caller_ids}"
    );
    let claim = &plans[0].1;
    assert!(
        claim.contains("leads_claim"),
        "{backend}: the claim does not use leads_claim:\n{claim}"
    );
    let sorts = unbounded_sorts(backend, claim);
    assert!(
        sorts.is_empty(),
        "{backend}: the claim sorts leads as it walks them: {sorts:?}\n{claim}"
    );
    // The rules' look walks the same index in the same order.
    let look = &plans[16].1;
    assert!(
        look.contains("leads_claim"),
        "{backend}: the look does not use leads_claim:\n{look}"
    );
    let sorts = unbounded_sorts(backend, look);
    assert!(
        sorts.is_empty(),
        "{backend}: the look sorts leads as it walks them: {sorts:?}\n{look}"
    );
    // An export page walks leads in id order (the primary key, or
    // `leads_campaign_id` when the campaign is a small part of the table):
    // a sort would read the whole campaign for every page.
    let export = &plans[9].1;
    let sorts = unbounded_sorts(backend, export);
    assert!(
        sorts.is_empty(),
        "{backend}: an export page sorts the campaign's leads: {sorts:?}\n{export}"
    );
}
