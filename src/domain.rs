//! The project's own vocabulary: lead and attempt statuses, outcomes, and the
//! rows that move between the store, the dispatcher and the provider adapters.
//! The string forms are the database contract (SPEC section 4).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }
    };
}

string_enum!(
    /// `leads.status`.
    LeadStatus {
        Pending => "pending",
        InProgress => "in_progress",
        Completed => "completed",
        Exhausted => "exhausted",
        Skipped => "skipped",
        Canceled => "canceled",
    }
);

impl LeadStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, LeadStatus::Pending | LeadStatus::InProgress)
    }
}

string_enum!(
    /// `call_attempts.state`.
    AttemptState {
        Sending => "sending",
        NotPlaced => "not_placed",
        Placed => "placed",
        Ended => "ended",
        Unknown => "unknown",
    }
);

string_enum!(
    /// `call_attempts.outcome`, and `leads.last_outcome` for dialled leads.
    Outcome {
        Completed => "completed",
        Transferred => "transferred",
        NoAnswer => "no_answer",
        Busy => "busy",
        Voicemail => "voicemail",
        Failed => "failed",
        Canceled => "canceled",
        Unknown => "unknown",
    }
);

impl Outcome {
    /// Outcomes that end a lead whatever attempts remain.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Outcome::Completed | Outcome::Transferred | Outcome::Canceled
        )
    }
}

string_enum!(
    /// `leads.last_outcome` of a `skipped` lead.
    SkipReason {
        InvalidNumber => "invalid_number",
        DoNotCall => "do_not_call",
        UnknownTimezone => "unknown_timezone",
        Rejected => "rejected",
    }
);

/// A row of `leads`, as the daemon reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    pub id: i64,
    pub campaign_id: String,
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub variables: Map<String, Value>,
    pub priority: i64,
    pub consent_at: Option<DateTime<Utc>>,
    pub status: LeadStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    /// Callbacks given (`[callbacks]`, `dialer callback`): each allows one
    /// attempt beyond `max_attempts`.
    pub callbacks: i32,
    /// The instant the last callback asked for.
    pub callback_at: Option<DateTime<Utc>>,
}

/// A lead handed to one dispatcher by a claim: it holds the lease until the
/// attempt is settled or the lease expires.
#[derive(Debug, Clone)]
pub struct ClaimedLead {
    pub lead: Lead,
    /// The attempt number this claim will use (an attempt left `not_placed`
    /// is sent again under the same number).
    pub attempt: i32,
    pub lease_owner: String,
    pub lease_expires_at: DateTime<Utc>,
}

/// A row of `call_attempts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub id: String,
    pub lead_id: i64,
    pub campaign_id: String,
    pub attempt: i32,
    pub provider: String,
    pub provider_call_id: Option<String>,
    pub from_number: Option<String>,
    pub to_number: String,
    pub state: AttemptState,
    pub provider_status: Option<String>,
    pub status_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
    pub requested_at: DateTime<Utc>,
}

/// What a provider said about a call, normalised. Produced by polling and by
/// webhooks alike, and applied through one path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStatus {
    /// Provider's call id, when known.
    pub provider_call_id: Option<String>,
    /// Our attempt id, when the provider echoed `dialer_attempt_id`.
    pub attempt_id: Option<String>,
    /// Raw provider status string.
    pub provider_status: String,
    /// `None` while the call is live; the outcome once it ended.
    pub outcome: Option<Outcome>,
    /// When the provider says this status happened (falls back to receipt time).
    pub status_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    pub hangup_cause: Option<String>,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub transcript: Option<Value>,
    pub recording_url: Option<String>,
    /// What the agent recorded on the call (RevRing `variables`, VoiceDock
    /// `analysis_result` / `analysis` and its structured data, Elemente
    /// custom fields): where a campaign's `[opt_out] field` is read.
    pub fields: serde_json::Map<String, Value>,
}

/// For `#[serde(serialize_with)]`: an optional time as `rfc3339`, or null.
pub fn ser_time_opt<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// Formats an instant as the contract requires everywhere: RFC 3339 UTC,
/// whole seconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The first whole second at or after `t`: due times are stored in whole
/// seconds and must never come early.
pub fn ceil_second(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{SubsecRound, Timelike};
    let floor = t.trunc_subsecs(0);
    if t.nanosecond() == 0 {
        floor
    } else {
        floor + chrono::Duration::seconds(1)
    }
}
