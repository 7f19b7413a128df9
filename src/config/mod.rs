//! Configuration: the daemon file (`config/dialer.toml`, with `DIALER__SECTION__KEY`
//! environment overrides) and one file per campaign, validated into typed
//! structs. Every problem is collected (file, key, why) before refusing.

pub mod bounds;
mod campaign;
mod daemon;
mod table;

pub use campaign::{
    load_campaigns, parse_callback, Callbacks, CampaignConfig, Compliance, OptOut, Pacing,
    RetryPolicy, WindowConfig,
};
pub use daemon::{
    DaemonConfig, DatabaseConfig, LogConfig, LogFormat, OutboundWebhookConfig, ProviderConfig,
    ProviderKind, ServerConfig, SimConfig, OUTBOUND_EVENTS,
};
pub use table::{parse_duration, Problem, Problems};

use std::path::{Path, PathBuf};

/// A secret (API key, webhook secret). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The whole configuration: the daemon file and every campaign file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub daemon: DaemonConfig,
    pub campaigns: Vec<CampaignConfig>,
    /// Things worth saying that do not stop the daemon.
    pub warnings: Vec<String>,
}

/// Every problem found, in file order.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct Invalid(pub Vec<Problem>);

/// Loads and validates the daemon file and every campaign file it points to.
pub fn load(path: &Path) -> Result<Loaded, Invalid> {
    let mut warnings = Vec::new();
    let daemon = daemon::load(path, &mut warnings);
    let (daemon, mut problems) = match daemon {
        Ok((d, p)) => (Some(d), p),
        Err(p) => (None, p),
    };
    let campaigns = match &daemon {
        Some(d) => match load_campaigns(d, &mut warnings) {
            Ok(c) => c,
            Err(p) => {
                problems.extend(p);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    if let Some(d) = &daemon {
        warnings.extend(over_asked_providers(d, &campaigns));
    }
    match daemon {
        Some(daemon) if problems.is_empty() => Ok(Loaded {
            daemon,
            campaigns,
            warnings,
        }),
        _ => Err(Invalid(problems)),
    }
}

/// The `[log]` settings of the daemon file as far as they can be read, for
/// setting up logging before the whole configuration is loaded (so that its
/// warnings and problems are logged in the configured format). The defaults
/// (text, info) when the file cannot be read or `[log]` is not valid.
pub fn log_settings(path: &Path) -> LogConfig {
    match daemon::load(path, &mut Vec::new()) {
        // A `[log]` key that is not valid is left at its default here.
        Ok((d, _)) => d.log,
        Err(_) => LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        },
    }
}

/// A warning for each provider whose running campaigns, placing alone, may
/// ask for more requests a minute than its `requests_per_minute`: nothing is
/// exceeded (the provider's limiter holds), but the campaigns will not reach
/// their own `calls_per_minute`, which an operator sizing a campaign expects.
/// Paused campaigns ask for nothing and are left out.
fn over_asked_providers(d: &DaemonConfig, campaigns: &[CampaignConfig]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, p) in &d.providers {
        let asking: Vec<&CampaignConfig> = campaigns
            .iter()
            .filter(|c| &c.provider == name && !c.paused)
            .collect();
        let total: u64 = asking
            .iter()
            .map(|c| u64::from(c.pacing.calls_per_minute))
            .sum();
        if total <= u64::from(p.requests_per_minute) {
            continue;
        }
        let each = asking
            .iter()
            .map(|c| format!("{} {}", c.id, c.pacing.calls_per_minute))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(format!(
            "provider `{name}`: its campaigns may place {total} calls a minute ({each}), \
             more than its requests_per_minute = {}; placing will wait for the provider's \
             budget, the campaigns share it, and polling call statuses takes from it too, \
             so they will call slower than their pacing.calls_per_minute",
            p.requests_per_minute
        ));
    }
    out
}

/// Reads one TOML file with the `config` crate into its root table.
fn read_toml(
    path: &Path,
    env_prefix: Option<&str>,
    problems: &mut Problems,
) -> Option<config::Map<String, config::Value>> {
    if !path.exists() {
        problems.add("", "file not found");
        return None;
    }
    let mut builder = config::Config::builder().add_source(
        config::File::from(path.to_path_buf())
            .format(config::FileFormat::Toml)
            .required(true),
    );
    if let Some(prefix) = env_prefix {
        builder = builder.add_source(
            config::Environment::with_prefix(prefix)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
    }
    match builder
        .build()
        .and_then(|c| c.try_deserialize::<config::Map<String, config::Value>>())
    {
        Ok(map) => Some(map),
        Err(e) => {
            let msg = e.to_string();
            let msg = msg
                .strip_prefix(&format!("{} ", path.display()))
                .unwrap_or(&msg)
                .to_string();
            problems.add("", msg);
            None
        }
    }
}

/// Resolves `p` against the directory of `file` unless absolute.
pub fn resolve(file: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome;
    use std::time::Duration;

    fn load_files(daemon_extra: &str, campaign: &str) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
        std::fs::write(
            dir.path().join("dialer.toml"),
            format!(
                "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://x.db\"\n[providers.sim]\nkind = \"simulated\"\n{daemon_extra}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("campaigns/c.toml"),
            format!("id = \"c\"\nprovider = \"sim\"\n{campaign}\n"),
        )
        .unwrap();
        load(&dir.path().join("dialer.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_explicit_default_wins_over_every_built_in_delay() {
        let loaded = load_files("", "[retry.after]\ndefault = \"1h\"\nno_answer = \"3h\"\n");
        let r = &loaded.campaigns[0].retry;
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(r.delay_after(Outcome::NoAnswer), h(3));
        for o in [
            Outcome::Busy,
            Outcome::Voicemail,
            Outcome::Failed,
            Outcome::Unknown,
        ] {
            assert_eq!(r.delay_after(o), h(1), "{o:?}");
        }
    }

    #[test]
    fn without_a_default_the_built_in_delays_stay() {
        let loaded = load_files("", "[retry.after]\nno_answer = \"3h\"\n");
        let r = &loaded.campaigns[0].retry;
        assert_eq!(
            r.delay_after(Outcome::NoAnswer),
            Duration::from_secs(3 * 3600)
        );
        assert_eq!(r.delay_after(Outcome::Busy), Duration::from_secs(20 * 60));
        assert_eq!(
            r.delay_after(Outcome::Voicemail),
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn pause_after_unknown_defaults_to_five() {
        let loaded = load_files("", "");
        assert_eq!(loaded.daemon.providers["sim"].pause_after_unknown, 5);
        let loaded = load_files("pause_after_unknown = 12", "");
        assert_eq!(loaded.daemon.providers["sim"].pause_after_unknown, 12);
    }

    /// Loads a daemon file with one provider `p` (its table `provider`,
    /// `kind` included) and one campaign on it: the problems as
    /// (file name, key, why), the warnings, and the configuration when valid.
    fn load_one(provider: &str, campaign: &str) -> (Vec<(String, String, String)>, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
        std::fs::write(dir.path().join("key"), "k").unwrap();
        std::fs::write(
            dir.path().join("dialer.toml"),
            format!(
                "campaigns_dir = \"campaigns\"\n[database]\nurl = \"sqlite://x.db\"\n[providers.p]\n{provider}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("campaigns/c.toml"),
            format!("id = \"c\"\nprovider = \"p\"\n{campaign}\n"),
        )
        .unwrap();
        let mut warnings = Vec::new();
        let (d, mut problems) = daemon::load(&dir.path().join("dialer.toml"), &mut warnings)
            .unwrap_or_else(|p| panic!("{p:?}"));
        let campaigns = match load_campaigns(&d, &mut warnings) {
            Ok(c) => c,
            Err(p) => {
                problems.extend(p);
                Vec::new()
            }
        };
        let listed = problems
            .into_iter()
            .map(|p| {
                let file = p.file.file_name().unwrap().to_string_lossy().to_string();
                (file, p.key, p.why)
            })
            .collect();
        (
            listed,
            Loaded {
                daemon: d,
                campaigns,
                warnings,
            },
        )
    }

    /// For every kind in the provider list, what configuration requires,
    /// refuses and fills in is what the kind's facts say: nothing in
    /// `config/` decides it per kind on its own.
    #[test]
    fn configuration_follows_each_kinds_facts() {
        use crate::provider::{CallerId, Webhooks, KINDS};
        let p = |s: &str, k: &str, w: String| (s.to_string(), k.to_string(), w);
        for f in KINDS {
            let kind = format!("kind = \"{}\"", f.name);

            // Nothing but the kind: every required key is reported, and
            // nothing else.
            let (problems, loaded) = load_one(&kind, "");
            let mut expected = Vec::new();
            if f.needs_api_key {
                expected.push(p(
                    "dialer.toml",
                    "providers.p.api_key_env",
                    "an API key is required: set api_key_env or api_key_file".into(),
                ));
            }
            if f.needs_username {
                expected.push(p(
                    "dialer.toml",
                    "providers.p.username",
                    format!("is required for kind = \"{}\" (HTTP Basic user)", f.name),
                ));
            }
            if f.default_agent_id.is_none() {
                expected.push(p("c.toml", "agent_id", "is required".into()));
            }
            if f.needs_skill_id {
                expected.push(p(
                    "c.toml",
                    "skill_id",
                    format!(
                        "is required for {} {} provider",
                        if f.name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                            "an"
                        } else {
                            "a"
                        },
                        f.name
                    ),
                ));
            }
            if f.caller_id == CallerId::E164 {
                expected.push(p(
                    "c.toml",
                    "from_numbers",
                    format!("{} needs at least one E.164 caller ID", f.title),
                ));
            }
            assert_eq!(problems, expected, "kind {}", f.name);
            let warned = loaded
                .warnings
                .iter()
                .any(|w| w.contains("no webhook secret is set"));
            assert_eq!(
                warned,
                f.webhooks == Webhooks::SecretRequired,
                "kind {}: {:?}",
                f.name,
                loaded.warnings
            );
            let cfg = &loaded.daemon.providers["p"];
            assert_eq!(cfg.base_url, f.default_base_url.unwrap_or(""), "{}", f.name);
            assert_eq!(
                cfg.requests_per_minute, f.default_requests_per_minute,
                "{}",
                f.name
            );

            // Everything any kind asks for: valid for every kind.
            let full = format!(
                "{kind}\napi_key_file = \"key\"\nwebhook_secret_file = \"key\"\nusername = \"u\"\n"
            );
            let campaign =
                "agent_id = \"a\"\nskill_id = \"s\"\nfrom_numbers = [\"+15551230001\"]\n";
            let (problems, loaded) = load_one(&full, campaign);
            assert_eq!(problems, vec![], "kind {}", f.name);
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            assert_eq!(loaded.campaigns[0].agent_id, "a");

            // A campaign without agent_id takes the kind's default.
            if let Some(default) = f.default_agent_id {
                let (problems, loaded) = load_one(&full, "");
                assert_eq!(problems, vec![], "kind {}", f.name);
                assert_eq!(loaded.campaigns[0].agent_id, default);
            }

            // A caller ID that is not E.164 matters only where it must be.
            let (problems, _) = load_one(
                &full,
                "agent_id = \"a\"\nskill_id = \"s\"\nfrom_numbers = [\"5551230001\"]\n",
            );
            let expected = match f.caller_id {
                CallerId::E164 => vec![p(
                    "c.toml",
                    "from_numbers",
                    "`5551230001` is not an E.164 number (+15551230001)".into(),
                )],
                CallerId::NumberId | CallerId::Unused | CallerId::Recorded => vec![],
            };
            assert_eq!(problems, expected, "kind {}", f.name);

            // The simulation keys belong to the kinds that simulate.
            let (problems, loaded) = load_one(&format!("{full}seed = 7\n"), campaign);
            if f.simulation {
                assert_eq!(problems, vec![], "kind {}", f.name);
                assert_eq!(loaded.daemon.providers["p"].sim.as_ref().unwrap().seed, 7);
            } else {
                let only: Vec<String> = KINDS
                    .iter()
                    .filter(|k| k.simulation)
                    .map(|k| format!("kind = \"{}\"", k.name))
                    .collect();
                let why = format!("only for {}", only.join(" or "));
                assert_eq!(
                    problems,
                    vec![p("dialer.toml", "providers.p.seed", why)],
                    "kind {}",
                    f.name
                );
            }
        }
    }

    /// The messages built from the facts read as they always have.
    #[test]
    fn per_kind_messages_keep_their_wording() {
        let (problems, _) = load_one(
            "kind = \"elemente\"\napi_key_file = \"key\"",
            "agent_id = \"a\"",
        );
        let whys: Vec<&str> = problems.iter().map(|p| p.2.as_str()).collect();
        assert_eq!(
            whys,
            [
                "is required for kind = \"elemente\" (HTTP Basic user)",
                "is required for an elemente provider",
            ]
        );
        let (problems, _) = load_one(
            "kind = \"revring\"\napi_key_file = \"key\"",
            "agent_id = \"a\"",
        );
        let whys: Vec<&str> = problems.iter().map(|p| p.2.as_str()).collect();
        assert_eq!(whys, ["RevRing needs at least one E.164 caller ID"]);
        let (problems, _) = load_one("kind = \"simulated\"", "");
        assert_eq!(problems, vec![]);
        let (problems, _) = load_one(
            "kind = \"voicedock\"\napi_key_file = \"key\"\nseed = 1",
            "agent_id = \"a\"",
        );
        let whys: Vec<&str> = problems.iter().map(|p| p.2.as_str()).collect();
        assert_eq!(whys, ["only for kind = \"simulated\""]);
        assert_eq!(
            ProviderKind::parse("twilio"),
            Err("unknown kind `twilio`; expected revring, voicedock, elemente or simulated".into())
        );
    }

    #[test]
    fn caller_id_tables_are_checked_per_kind() {
        let revring = "kind = \"revring\"\napi_key_file = \"key\"";
        let numbers = "agent_id = \"a\"\nfrom_numbers = [\"+12125550100\", \"+13125550100\"]\n";
        let (problems, loaded) = load_one(
            revring,
            &format!("{numbers}[caller_id]\nchoose = \"local\"\ncalls_per_hour = 30\ncalls_per_day = 200\n"),
        );
        assert_eq!(problems, vec![]);
        let ids = &loaded.campaigns[0].caller_ids;
        assert_eq!(ids.choose, crate::caller_id::Choose::Local);
        assert_eq!(
            ids.caps,
            [
                (chrono::Duration::hours(1), 30),
                (chrono::Duration::hours(24), 200)
            ]
        );
        let whys = |provider: &str, campaign: &str| -> Vec<(String, String)> {
            load_one(provider, campaign)
                .0
                .into_iter()
                .map(|(_, key, why)| (key, why))
                .collect()
        };
        assert_eq!(
            whys(
                revring,
                &format!("{numbers}[caller_id]\nchoose = \"nearest\"\ncalls_per_hour = 0\nper_minute = 1\n")
            ),
            [
                (
                    "caller_id.choose".to_string(),
                    "`nearest` is not a way to choose (round_robin, local, sticky)".to_string()
                ),
                (
                    "caller_id.calls_per_hour".to_string(),
                    "0 is out of range (at least 1)".to_string()
                ),
                ("caller_id.per_minute".to_string(), "unknown key".to_string()),
            ]
        );
        assert_eq!(
            whys(
                "kind = \"elemente\"\napi_key_file = \"key\"\nusername = \"u\"",
                "agent_id = \"a\"\nskill_id = \"s\"\n[caller_id]\nchoose = \"sticky\"\n"
            ),
            [(
                "caller_id.choose".to_string(),
                "Elemente places calls from its own numbers (it has no caller-ID field): [caller_id] cannot apply".to_string()
            )]
        );
        // VoiceDock's from_numbers are number ids: local presence needs the
        // number each one dials from.
        let voicedock = "kind = \"voicedock\"\napi_key_file = \"key\"";
        let ids = "agent_id = \"a\"\nfrom_numbers = [\"num_NY\", \"num_IL\"]\n[caller_id]\nchoose = \"local\"\n";
        assert_eq!(
            whys(voicedock, &format!("{ids}[caller_id.numbers]\nnum_NY = \"+12125550100\"\nnum_XX = \"+13125550100\"\n")),
            [
                ("caller_id.numbers.num_XX".to_string(), "is not one of from_numbers".to_string()),
                (
                    "caller_id.numbers".to_string(),
                    "choose = \"local\" needs the number each VoiceDock number id dials from: add `num_IL` = \"+1...\" under [caller_id.numbers]".to_string()
                ),
            ]
        );
        let (problems, loaded) = load_one(
            voicedock,
            &format!(
                "{ids}[caller_id.numbers]\nnum_NY = \"+12125550100\"\nnum_IL = \"+13125550100\"\n"
            ),
        );
        assert_eq!(problems, vec![]);
        assert_eq!(
            loaded.campaigns[0]
                .caller_ids
                .candidates("c", Some(1), "+17735550199", 0)[0],
            "num_IL"
        );
        assert_eq!(
            whys("kind = \"simulated\"", "[caller_id]\nchoose = \"sticky\"\n"),
            [(
                "caller_id.choose".to_string(),
                "[caller_id] needs from_numbers to choose from".to_string()
            )]
        );
    }

    /// Every bounded duration at its maximum, added to a time the way the
    /// daemon does (retry delays, leases, reconciliation, simulated call
    /// ends), far in the future: no overflow, no panic.
    #[test]
    fn time_arithmetic_with_every_maximum_does_not_panic() {
        let loaded = load_files(
            r#"requests_per_minute = 1000000
max_concurrent_calls = 100000
request_timeout = "5m"
poll_interval = "1d"
max_call_duration = "1d"
min_duration = "1d"
max_duration = "1d"
pause_after_unknown = 1000"#,
            r#"[pacing]
calls_per_minute = 1000000
burst = 10000
max_concurrent = 100000
[retry]
max_attempts = 1000
[retry.after]
no_answer = "365d"
busy = "365d"
voicemail = "365d"
failed = "365d"
unknown = "365d"
default = "365d"
[compliance]
max_attempts_per_day = 1000"#,
        );
        let p = &loaded.daemon.providers["sim"];
        let c = &loaded.campaigns[0];
        let sim = p.sim.as_ref().unwrap();
        let far: chrono::DateTime<chrono::Utc> = "9999-12-31T23:59:59Z".parse().unwrap();
        let spans = [
            p.request_timeout,
            p.poll_interval,
            p.max_call_duration,
            sim.min_duration,
            sim.max_duration,
            c.retry.default,
        ]
        .into_iter()
        .chain(c.retry.after.values().copied());
        for d in spans {
            let d = chrono::Duration::from_std(d).unwrap();
            // As the dispatcher and poller do: twice the timeout plus a
            // minute, a call's lease, twelve poll intervals.
            let _ = far + d * 2 + chrono::Duration::seconds(60);
            let _ = far + d * 12;
            let _ = far - d;
        }
        assert_eq!(c.retry.delay_after(Outcome::Busy), bounds::RETRY_AFTER.max);
    }
}
