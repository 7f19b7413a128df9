//! `dialer import --campaign ID FILE.csv [--region US]`: bulk-load leads.
//! A header row is required; `phone` is required, `name` and `timezone` are
//! optional, every other column goes into `variables`. Invalid rows are
//! reported by line number as they are met and not imported; existing
//! numbers are counted as duplicates, so importing the same file twice adds
//! nothing.
//!
//! The file is streamed: rows are read and committed a batch at a time, so
//! memory stays flat whatever the file's size. SIGINT and SIGTERM stop the
//! import between batches; what was committed is said, and re-running the
//! same import picks up the rest (committed rows count as duplicates).

use super::{load, open_store, CliError, CliResult};
use crate::clock::Clock;
use crate::store::NewLead;
use chrono_tz::Tz;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// Rows committed per transaction: large enough that the per-transaction
/// cost vanishes, small enough that a stop request is honoured quickly and
/// memory stays small.
const BATCH: usize = 5_000;

/// Without a terminal, a progress line at least this often...
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// ...or every this many rows, whichever comes first.
const PLAIN_EVERY_ROWS: u64 = 100_000;

/// A CSV of leads, read a batch at a time.
pub struct Rows {
    path: PathBuf,
    reader: csv::Reader<File>,
    region: Option<String>,
    headers: Vec<String>,
    phone_col: usize,
    name_col: Option<usize>,
    tz_col: Option<usize>,
    record: csv::StringRecord,
    /// The file's size and whether its last byte is a line break.
    size: u64,
    ends_with_newline: bool,
    /// Rows read, valid or not.
    pub rows: u64,
    done: bool,
}

impl Rows {
    /// Opens the file and reads its header row.
    pub fn open(file: &Path, region: Option<&str>) -> Result<Rows, CliError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            // `\n` alone ends a record, so that the reader's line count
            // includes each record's own line break; a `\r` before it is
            // trimmed with the field.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_path(file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| anyhow::anyhow!("{}: cannot read the header row: {e}", file.display()))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let Some(phone_col) = headers.iter().position(|h| h == "phone") else {
            return Err(anyhow::anyhow!(
                "{}: line 1: the header has no `phone` column",
                file.display()
            )
            .into());
        };
        let io = |e: std::io::Error| anyhow::anyhow!("{}: {e}", file.display());
        let mut tail = File::open(file).map_err(io)?;
        let size = tail.metadata().map_err(io)?.len();
        let mut last = [0u8];
        if size > 0 {
            tail.seek(SeekFrom::End(-1)).map_err(io)?;
            std::io::Read::read_exact(&mut tail, &mut last).map_err(io)?;
        }
        Ok(Rows {
            size,
            ends_with_newline: last[0] == b'\n',
            path: file.to_path_buf(),
            name_col: headers.iter().position(|h| h == "name"),
            tz_col: headers.iter().position(|h| h == "timezone"),
            reader,
            region: region.map(str::to_string),
            headers,
            phone_col,
            record: csv::StringRecord::new(),
            rows: 0,
            done: false,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of the file read so far.
    pub fn byte(&self) -> u64 {
        self.reader.position().byte()
    }

    /// True once the last row has been read.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The valid leads among the next `max` rows; each invalid row goes to
    /// `invalid` as (line, why) as it is met.
    pub fn next_batch(
        &mut self,
        max: usize,
        invalid: &mut impl FnMut(u64, String),
    ) -> Result<Vec<NewLead>, CliError> {
        let mut leads = Vec::with_capacity(max.min(BATCH));
        let first = self.rows;
        while self.rows - first < max as u64 && !self.done {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    if self.record.len() == 1 && self.record[0].trim().is_empty() {
                        continue; // a blank line
                    }
                    self.rows += 1;
                    let (start, line) = self.record_start();
                    if self.record.iter().any(|f| f.contains('\n')) {
                        // A line break inside a field: a quote opened on this
                        // line and closed (if ever) on a later one. Taking it
                        // would merge lines; refuse the row and read on from
                        // the next line as if the quote had closed there.
                        invalid(
                            line,
                            "unclosed quote: a quoted field opens on this line and does not \
                             close on it (a field may not span lines)"
                                .to_string(),
                        );
                        self.resume_after(&start, line)?;
                        continue;
                    }
                    match self.lead() {
                        Ok(lead) => leads.push(lead),
                        Err(why) => invalid(line, why),
                    }
                }
                Err(e) => {
                    if let csv::ErrorKind::Io(_) = e.kind() {
                        return Err(anyhow::anyhow!("{}: {e}", self.path.display()).into());
                    }
                    self.rows += 1;
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    invalid(line, format!("unreadable row: {e}"));
                }
            }
        }
        Ok(leads)
    }

    /// Where the record just read begins, and the line its first field is
    /// on. The reader's position for a record is taken before it skips
    /// blank lines, so the line is counted back from the record's end.
    fn record_start(&self) -> (csv::Position, u64) {
        let start = self
            .record
            .position()
            .cloned()
            .unwrap_or_else(csv::Position::new);
        let end = self.reader.position();
        let breaks: u64 = self
            .record
            .iter()
            .map(|f| f.bytes().filter(|b| *b == b'\n').count() as u64)
            .sum();
        // The line after the record's last, unless the file ended mid-line.
        let unterminated = end.byte() >= self.size && !self.ends_with_newline;
        let last = if unterminated {
            end.line()
        } else {
            end.line() - 1
        };
        (start.clone(), last.saturating_sub(breaks).max(start.line()))
    }

    /// Moves the reader to the line after `line`, reading on from `start`
    /// (the record's position, at or before that line).
    fn resume_after(&mut self, start: &csv::Position, line: u64) -> Result<(), CliError> {
        let io = |e: std::io::Error| anyhow::anyhow!("{}: {e}", self.path.display());
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(start.byte())).map_err(io)?;
        let mut file = BufReader::new(file);
        let mut byte = start.byte();
        let mut skip = Vec::new();
        for _ in start.line()..=line {
            skip.clear();
            byte += file.read_until(b'\n', &mut skip).map_err(io)? as u64;
        }
        let mut next = csv::Position::new();
        next.set_byte(byte)
            .set_line(line + 1)
            .set_record(start.record() + 1);
        self.reader
            .seek(next)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        Ok(())
    }

    /// The current record as a lead, or why it is not one.
    fn lead(&self) -> Result<NewLead, String> {
        let record = &self.record;
        if record.len() != self.headers.len() {
            return Err(format!(
                "{} fields, the header has {}",
                record.len(),
                self.headers.len()
            ));
        }
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let raw_phone = field(self.phone_col);
        let phone = crate::phone::normalize(raw_phone, self.region.as_deref())
            .map_err(|why| format!("phone: {why}"))?;
        let timezone = match self.tz_col.map(field).filter(|s| !s.is_empty()) {
            Some(t) => match t.parse::<Tz>() {
                Ok(_) => Some(t.to_string()),
                Err(_) => return Err(format!("timezone: `{t}` is not an IANA time zone")),
            },
            None => None,
        };
        let mut variables = Map::new();
        for (i, h) in self.headers.iter().enumerate() {
            if Some(i) == self.name_col
                || i == self.phone_col
                || Some(i) == self.tz_col
                || h.is_empty()
            {
                continue;
            }
            variables.insert(h.clone(), Value::String(field(i).to_string()));
        }
        Ok(NewLead {
            phone,
            name: self
                .name_col
                .map(field)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            timezone,
            variables,
        })
    }
}

/// Batches the reading thread has parsed and not yet handed over: one is
/// parsed while the one before it is written, and memory stays bounded.
const READ_AHEAD: usize = 2;

/// One batch of rows, parsed.
struct Read {
    leads: Vec<NewLead>,
    /// (line, why) of each invalid row in the batch.
    invalid: Vec<(u64, String)>,
    /// Rows read from the file's start to the batch's end, and the byte
    /// reached.
    rows: u64,
    byte: u64,
    done: bool,
}

/// Reads and parses the file on its own thread, a batch ahead of the
/// writes: checking phone numbers costs as much as storing them, so the two
/// overlap. The thread ends at the file's end, at an error, or when the
/// receiver is dropped.
fn read_ahead(mut rows: Rows) -> tokio::sync::mpsc::Receiver<Result<Read, CliError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    std::thread::spawn(move || loop {
        let mut invalid = Vec::new();
        let read = rows
            .next_batch(BATCH, &mut |line, why| invalid.push((line, why)))
            .map(|leads| Read {
                leads,
                invalid,
                rows: rows.rows,
                byte: rows.byte(),
                done: rows.done(),
            });
        let last = read.as_ref().map_or(true, |r| r.done);
        if tx.blocking_send(read).is_err() || last {
            break;
        }
    });
    rx
}

/// A stop request and the exit status it asks for.
#[derive(Debug, Clone, Copy)]
struct Stop {
    signal: &'static str,
    code: u8,
}

/// Watches SIGINT and SIGTERM. The first asks the import to stop after the
/// batch in progress; a second ends the process at once (the transaction in
/// flight is then rolled back by the database).
fn watch_signals(
    committed: Arc<AtomicU64>,
    progress: Progress,
) -> Result<Arc<OnceLock<Stop>>, CliError> {
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| anyhow::anyhow!("cannot watch SIGINT: {e}"))?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| anyhow::anyhow!("cannot watch SIGTERM: {e}"))?;
    let stop = Arc::new(OnceLock::new());
    let seen = stop.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = int.recv() => Stop { signal: "SIGINT", code: 130 },
            _ = term.recv() => Stop { signal: "SIGTERM", code: 143 },
        };
        let _ = seen.set(first);
        progress.note(&format!(
            "{}: stopping once the batch in progress is committed (send it again to stop at once)",
            first.signal
        ));
        let again = tokio::select! {
            _ = int.recv() => Stop { signal: "SIGINT", code: 130 },
            _ = term.recv() => Stop { signal: "SIGTERM", code: 143 },
        };
        progress.finish();
        eprintln!(
            "error: second {}: stopped at once; {} new leads were committed before the batch in \
             progress, which is rolled back unless it had just committed. Re-running the same \
             import is safe: rows already stored are counted as duplicates.",
            again.signal,
            committed.load(Ordering::SeqCst)
        );
        std::process::exit(i32::from(again.code));
    });
    Ok(stop)
}

/// Progress on stderr: a bar on a terminal, plain periodic lines otherwise.
#[derive(Clone)]
enum Progress {
    Bar(ProgressBar),
    Plain {
        total: u64,
        started: Instant,
        last: Arc<std::sync::Mutex<(Instant, u64)>>,
    },
}

impl Progress {
    fn new(total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("{bar:30.cyan/blue} {percent:>3}% {msg} (ETA {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Plain {
                total,
                started: now,
                last: Arc::new(std::sync::Mutex::new((now, 0))),
            }
        }
    }

    /// Reports `rows` read and `byte` of the file reached.
    fn update(&self, rows: u64, byte: u64) {
        match self {
            Progress::Bar(bar) => {
                let secs = bar.elapsed().as_secs_f64().max(0.001);
                bar.set_position(byte);
                bar.set_message(format!("{rows} rows, {:.0} rows/s", rows as f64 / secs));
            }
            Progress::Plain {
                total,
                started,
                last,
            } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if now.duration_since(last.0) < PLAIN_EVERY
                    && rows / PLAIN_EVERY_ROWS == last.1 / PLAIN_EVERY_ROWS
                {
                    return;
                }
                *last = (now, rows);
                let secs = now.duration_since(*started).as_secs_f64().max(0.001);
                let pct = (byte * 100).checked_div(*total).unwrap_or(100);
                eprintln!(
                    "import: {rows} rows, {:.0} rows/s, {pct}% of the file",
                    rows as f64 / secs
                );
            }
        }
    }

    /// A line on stdout that must not tear the bar.
    fn println(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.suspend(|| println!("{line}")),
            Progress::Plain { .. } => println!("{line}"),
        }
    }

    /// A line on stderr that must not tear the bar.
    fn note(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.suspend(|| eprintln!("{line}")),
            Progress::Plain { .. } => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

pub async fn run(
    config: &Path,
    campaign: &str,
    file: &Path,
    region: Option<&str>,
    clock: &Clock,
) -> CliResult {
    crate::phone::check_region(region).map_err(CliError::Usage)?;
    let loaded = load(config)?;
    if !loaded.campaigns.iter().any(|c| c.id == campaign) {
        return Err(anyhow::anyhow!(
            "unknown campaign `{campaign}` (not in {})",
            loaded.daemon.campaigns_dir.display()
        )
        .into());
    }
    let rows = Rows::open(file, region)?;
    let store = open_store(&loaded).await?;
    crate::daemon::sync_campaign_rows(store.as_ref(), &loaded.campaigns, clock.now()).await?;

    let progress = Progress::new(rows.size());
    let committed = Arc::new(AtomicU64::new(0));
    let stop = watch_signals(committed.clone(), progress.clone())?;
    let mut reader = read_ahead(rows);
    let (mut imported, mut duplicates, mut invalid) = (0u64, 0u64, 0u64);
    // Rows of the file behind what is committed: the batches taken so far.
    let mut rows_done = 0u64;
    let stopped = loop {
        if let Some(s) = stop.get() {
            break Some(*s);
        }
        let Some(read) = reader.recv().await else {
            break None;
        };
        let read = read?;
        for (line, why) in &read.invalid {
            invalid += 1;
            progress.println(&format!("  line {line}: {why}"));
        }
        if !read.leads.is_empty() {
            let counts = store
                .insert_leads(campaign, &read.leads, clock.now())
                .await?;
            imported += counts.imported;
            duplicates += counts.duplicates;
            committed.store(imported, Ordering::SeqCst);
        }
        rows_done = read.rows;
        progress.update(read.rows, read.byte);
        if read.done {
            break None;
        }
    };
    // Ends the reading thread, if it is still ahead of us.
    drop(reader);
    progress.finish();
    println!(
        "{}: imported {imported}, duplicate {duplicates}, invalid {invalid}",
        file.display(),
    );
    match stopped {
        None => Ok(()),
        Some(s) => Err(CliError::Interrupted {
            message: format!(
                "interrupted by {}: {imported} new leads committed, from the first {} rows of {}; \
                 nothing after them was stored. Re-running the same import is safe: rows already \
                 stored are counted as duplicates.",
                s.signal,
                rows_done,
                file.display()
            ),
            code: s.code,
        }),
    }
}
