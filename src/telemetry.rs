//! Logs: tracing, text or one JSON object a line, on stderr through a
//! writer that never blocks.

use crate::config::{LogConfig, LogFormat};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Lines waiting for stderr before new ones are dropped: a few seconds of a
/// busy daemon at debug level, and a bounded amount of memory when nobody
/// reads the logs at all.
const BUFFERED_LINES: usize = 16_384;

/// How long a clean exit waits for waiting lines to reach stderr.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Keeps the log writer's thread alive; dropping it writes out what is
/// waiting (within `FLUSH_WAIT`).
#[must_use = "logs stop being written when the guard is dropped"]
pub struct LogGuard {
    worker: Option<WorkerGuard>,
    dropped: ErrorCounter,
}

impl LogGuard {
    /// Lines dropped so far because stderr was not taking them.
    pub fn dropped_lines(&self) -> usize {
        self.dropped.dropped_lines()
    }
}

impl Drop for LogGuard {
    /// The flush runs on its own thread because the writer's shutdown can
    /// still wait on a stalled stderr (and reports that on stdout, which may
    /// be stalled too): ending the process must not hang on its logs.
    fn drop(&mut self) {
        let Some(worker) = self.worker.take() else {
            return;
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                drop(worker);
                let _ = done_tx.send(());
            });
        if spawned.is_ok() {
            let _ = done_rx.recv_timeout(FLUSH_WAIT);
        }
    }
}

/// Installs the global subscriber once; `RUST_LOG` overrides the level.
///
/// Events go to a queue that a dedicated thread writes to stderr, so a
/// stalled or closed stderr (a pipe whose reader stopped) never blocks or
/// fails the task that logs; when the queue is full, lines are dropped and
/// counted. Text is coloured only when stderr is a terminal; JSON is one
/// object a line (see [`JsonLines`]).
pub fn init(cfg: &LogConfig) -> LogGuard {
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // A failed write would otherwise be reported with `eprintln!`, which
        // panics in the logging task when stderr is closed.
        .log_internal_errors(false);
    let _ = match cfg.format {
        LogFormat::Json => {
            // The default hook prints a panic as plain text on stderr; a
            // task that panics is restarted, so the daemon goes on and its
            // stderr must stay JSON.
            std::panic::set_hook(Box::new(|info| {
                tracing::error!(panic = %info, "a thread panicked");
            }));
            builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .try_init()
        }
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    LogGuard {
        worker: Some(worker),
        dropped,
    }
}

/// Keys that are never overwritten by a field of the same name: such a field
/// is written as `field.<name>` instead.
const RESERVED: [&str; 4] = ["timestamp", "level", "message", "target"];

/// One JSON object a line: `timestamp`, `level`, `message`, `target`, then
/// the fields of every span the event is in (outermost first) and the
/// event's own fields, all at the top level, so `campaign`, `lead`,
/// `attempt`, `provider` and `provider_call_id` are found in the same place
/// whichever code logged. A field set by an inner span or by the event wins
/// over the same name further out; no key appears twice.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("message".into(), Value::String(String::new()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(fields) = ext.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(map) = serde_json::from_str::<Map<String, Value>>(fields.as_str()) {
                    for (k, v) in map {
                        put(&mut line, k, v, false);
                    }
                }
            }
        }
        let mut visitor = EventFields {
            line: &mut line,
            message_seen: false,
        };
        event.record(&mut visitor);
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Puts one field in the line; the fixed keys are never overwritten, except
/// `message` by the event's own message.
fn put(line: &mut Map<String, Value>, key: String, value: Value, is_message: bool) {
    if is_message {
        line.insert(key, value);
    } else if RESERVED.contains(&key.as_str()) {
        line.insert(format!("field.{key}"), value);
    } else {
        line.insert(key, value);
    }
}

struct EventFields<'a> {
    line: &'a mut Map<String, Value>,
    /// Only the first `message` (the event's text) is the message; a field
    /// that happens to be called `message` too is kept apart.
    message_seen: bool,
}

impl EventFields<'_> {
    fn field(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let is_message = name == "message" && !self.message_seen;
        if is_message {
            self.message_seen = true;
        }
        put(self.line, name.to_string(), value, is_message);
    }
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, Value::String(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, Value::String(format!("{value:?}")));
    }
}

/// How many distinct keys [`first_time`] remembers; past that it forgets
/// them all and starts again, so a key may be reported once more but memory
/// stays bounded however many leads or files misbehave.
const REMEMBERED_KEYS: usize = 10_000;

static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// True the first time `key` is asked about in this process: for a warning
/// that would otherwise repeat on every read of the same bad row or every
/// load of the same file.
pub fn first_time(key: &str) -> bool {
    let mut g = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = g.get_or_insert_with(HashSet::new);
    if seen.contains(key) {
        return false;
    }
    if seen.len() >= REMEMBERED_KEYS {
        seen.clear();
    }
    seen.insert(key.to_string());
    true
}
