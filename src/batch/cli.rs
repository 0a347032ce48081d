//! `llm-router batch …`: submit, status, results, cancel, list. Talks only to the broker,
//! so it works from any machine that reaches it.

use super::collect::{self, CollectOptions, Progress};
use super::history;
use super::job::{self, JobEvent, JobRecord};
use super::limits::{self, BatchLimits, LimitFlags};
use super::submit::{self, SubmitOptions};
use crate::kubemq::client::{Client, ClientOptions};
use crate::kubemq::queues::QueueClient;
use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use parking_lot::Mutex;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    /// The broker's gRPC address.
    #[arg(
        long,
        global = true,
        env = "LLM_ROUTER_BROKER",
        default_value = "127.0.0.1:50000"
    )]
    pub broker: String,
    /// Directory of `*.toml` router config files (for route and model names).
    #[arg(
        long = "config",
        global = true,
        env = "LLM_ROUTER_CONFIG_DIR",
        default_value = "config"
    )]
    pub config_dir: PathBuf,
    #[command(subcommand)]
    pub command: BatchCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BatchCommand {
    /// Check a JSONL file in OpenAI's Batch format and queue its lines; prints the job id.
    Submit {
        file: PathBuf,
        /// Route for the lines. A line's `body.model` may name another route, a route/model,
        /// or a model some route serves (this route first, if it serves it).
        #[arg(long)]
        route: String,
        /// Queue the valid lines even when some are bad (the bad ones are listed).
        #[arg(long)]
        skip_invalid: bool,
        /// Provider attempts per line before it is dead-lettered.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1024))]
        max_attempts: u32,
        /// Then collect the results, with a progress bar.
        #[arg(long)]
        wait: bool,
        /// Output file for --wait [default: <job id>.jsonl].
        #[arg(long)]
        output: Option<PathBuf>,
        /// Error file [default: next to the output, `.errors.jsonl`].
        #[arg(long)]
        errors: Option<PathBuf>,
        /// Most requests (non-blank lines) in the file; OpenAI's Batch API limit by default.
        #[arg(long, default_value_t = limits::DEFAULT_MAX_LINES)]
        max_lines: usize,
        /// Largest file in bytes; OpenAI's Batch API limit (200 MiB) by default.
        #[arg(long, default_value_t = limits::DEFAULT_MAX_FILE_BYTES)]
        max_file_bytes: u64,
    },
    /// Show a job's progress.
    Status {
        job: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Collect a job's results into files; run again to continue where it stopped.
    Results {
        job: String,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        errors: Option<PathBuf>,
        /// Stop when nothing is waiting instead of waiting for every line.
        #[arg(long)]
        no_wait: bool,
    },
    /// Cancel a job: lines still queued are dropped (and listed in the error file as
    /// cancelled); finished lines are kept.
    Cancel { job: String },
    /// List every job.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// The `batch submit` flags that raise the limits.
const CLI_FLAGS: LimitFlags = LimitFlags {
    lines: "--max-lines",
    bytes: "--max-file-bytes",
};

/// Reads the input file within `limits`: the size is checked before anything is read, so
/// an oversized file is refused without loading it.
pub fn read_input(file: &std::path::Path, limits: &BatchLimits) -> anyhow::Result<String> {
    let context = || format!("cannot read {}", file.display());
    let size = std::fs::metadata(file).with_context(context)?.len();
    limits
        .check_size(size)
        .with_context(|| format!("{} is too large", file.display()))?;
    let text = std::fs::read_to_string(file).with_context(context)?;
    limits
        .check(&text)
        .with_context(|| format!("{} has too many requests", file.display()))?;
    Ok(text)
}

/// Runs a batch command.
pub async fn run(args: BatchArgs) -> anyhow::Result<()> {
    let id = format!(
        "llm-router-batch-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut options = ClientOptions::new(&args.broker, &id);
    options.connect_timeout = Some(Duration::from_secs(5));
    let client = Client::connect(options)
        .await
        .with_context(|| format!("cannot reach the broker at {} (is `llm-router up` or a KubeMQ server running? set --broker)", args.broker))?;
    let queues = QueueClient::new(&args.broker, &id)?;
    match args.command {
        BatchCommand::Submit {
            file,
            route,
            skip_invalid,
            max_attempts,
            wait,
            output,
            errors,
            max_lines,
            max_file_bytes,
        } => {
            let config = crate::config::load(Some(&args.config_dir))?;
            let names = crate::config::models::ModelNames::new(&config);
            let limits = BatchLimits {
                max_lines,
                max_file_bytes,
                flags: CLI_FLAGS,
            };
            let text = read_input(&file, &limits)?;
            let options = SubmitOptions {
                route,
                max_attempts,
                skip_invalid,
                input: file.display().to_string(),
            };
            let done = submit::submit(&client, &queues, &text, &names, &options).await?;
            if !done.skipped.is_empty() {
                eprint(&format!(
                    "skipped {} bad line(s):\n{}",
                    done.skipped.len(),
                    super::format::summary(&done.skipped, 50)
                ));
            }
            eprint(&format!(
                "queued {} line(s) as job {}",
                done.total, done.job
            ));
            out(&done.job)?;
            if wait {
                let output = output.unwrap_or_else(|| PathBuf::from(format!("{}.jsonl", done.job)));
                let record = find(&client, &done.job).await?;
                results(&client, &queues, &record, output, errors, true).await?;
            }
            Ok(())
        }
        BatchCommand::Status { job, json } => {
            let record = find(&client, &job).await?;
            let status = Status::read(&queues, &record).await?;
            if json {
                out(&serde_json::to_string_pretty(&status)?)
            } else {
                out(&status.render())
            }
        }
        BatchCommand::Results {
            job,
            output,
            errors,
            no_wait,
        } => {
            let record = find(&client, &job).await?;
            results(&client, &queues, &record, output, errors, !no_wait).await
        }
        BatchCommand::Cancel { job } => {
            let record = find(&client, &job).await?;
            history::publish(
                &client,
                &JobEvent::Cancelled {
                    job: record.id.clone(),
                    at: job::unix_seconds(),
                },
            )
            .await?;
            eprint(&format!(
                "cancelled {}: workers drop its queued lines as they reach them; finished lines are kept. Collect with `llm-router batch results {} --output FILE`.",
                record.id, record.id
            ));
            Ok(())
        }
        BatchCommand::List { json } => {
            let jobs = history::replay(&client).await?;
            let all: Vec<&JobRecord> = jobs.all();
            if json {
                return out(&serde_json::to_string_pretty(&all)?);
            }
            let lines: Vec<String> = all
                .iter()
                .map(|r| {
                    format!(
                        "{}  {:<12} {:>8} lines  {:>8} collected{}",
                        r.id,
                        r.route,
                        r.total,
                        r.collected(),
                        if r.cancelled_at.is_some() {
                            "  cancelled"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            out(&lines.join("\n"))
        }
    }
}

async fn find(client: &Client, id: &str) -> anyhow::Result<JobRecord> {
    if !job::is_job_id(id) {
        bail!("'{id}' is not a job id: they look like batch_ and 32 hex digits, as `batch submit` printed");
    }
    let jobs = history::replay(client).await?;
    match jobs.get(id) {
        Some(record) if record.total > 0 => Ok(record.clone()),
        _ => bail!("no job {id} on this broker (`llm-router batch list` shows the jobs it has)"),
    }
}

async fn results(
    client: &Client,
    queues: &QueueClient,
    record: &JobRecord,
    output: PathBuf,
    errors: Option<PathBuf>,
    wait: bool,
) -> anyhow::Result<()> {
    let errors = errors.unwrap_or_else(|| collect::default_errors_path(&output));
    let options = CollectOptions {
        output: output.clone(),
        errors: errors.clone(),
        wait,
    };
    let bar = progress_bar(record.total);
    let mut show = |p: Progress| {
        bar.set_position(p.done());
        bar.set_message(format!("failed {}", p.failed));
    };
    let done = collect::collect(client, queues, record, &options, &mut show).await?;
    // Cleared, so the summary gets a line of its own instead of the bar's.
    bar.finish_and_clear();
    eprint(&format!(
        "{}: {} ok in {}, {} failed in {}{}",
        record.id,
        done.ok,
        output.display(),
        done.failed,
        errors.display(),
        if done.complete() {
            String::new()
        } else {
            format!(
                "; {} line(s) not finished yet, run `batch results` again to continue",
                done.total - done.done()
            )
        }
    ));
    Ok(())
}

/// The bar's rate and ETA come from the lines finished since the bar started, not from
/// indicatif's own estimate: collecting a job that was half done jumps the position at
/// once, which made that estimate read "ETA 0s" throughout.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let first: Arc<Mutex<Option<(Instant, u64)>>> = Arc::default();
    let pace = move |state: &ProgressState| {
        let mut first = first.lock();
        let (t0, p0) = *first.get_or_insert((Instant::now(), state.pos()));
        Pace {
            lines: state.pos().saturating_sub(p0),
            elapsed: t0.elapsed(),
            remaining: state.len().unwrap_or(0).saturating_sub(state.pos()),
        }
    };
    let (rate_pace, eta_pace) = (pace.clone(), pace);
    let style =
        ProgressStyle::with_template("{bar:40} {pos}/{len} lines  {rate}  ETA {eta_est}  {msg}")
            .map(|s| {
                s.with_key(
                    "rate",
                    move |st: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&rate_pace(st).rate_text());
                    },
                )
                .with_key(
                    "eta_est",
                    move |st: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&eta_pace(st).eta_text());
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Lines finished since the bar started, over how long, and how many are left.
#[derive(Debug, Clone, Copy)]
struct Pace {
    lines: u64,
    elapsed: Duration,
    remaining: u64,
}

impl Pace {
    fn per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs < 0.5 {
            return 0.0;
        }
        self.lines as f64 / secs
    }

    /// Whole lines per second, or one decimal below 10.
    fn rate_text(&self) -> String {
        match self.per_sec() {
            r if r <= 0.0 => "- lines/s".to_owned(),
            r if r < 10.0 => format!("{r:.1} lines/s"),
            r => format!("{r:.0} lines/s"),
        }
    }

    /// The time left at the pace so far, or `?` before there is a pace.
    fn eta_text(&self) -> String {
        let rate = self.per_sec();
        if self.remaining == 0 {
            return "0s".to_owned();
        }
        if rate <= 0.0 {
            return "?".to_owned();
        }
        let secs = (self.remaining as f64 / rate).ceil() as u64;
        match secs {
            s if s < 60 => format!("{s}s"),
            s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
            s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        }
    }
}

/// What `batch status` shows.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub job: JobRecord,
    /// `in_progress`, `completed`, `cancelling` or `cancelled`.
    pub state: &'static str,
    /// Results stored but not collected yet (redeliveries can count twice).
    pub results_waiting: i64,
    pub dead_lettered_waiting: i64,
}

impl Status {
    async fn read(queues: &QueueClient, record: &JobRecord) -> anyhow::Result<Self> {
        let results = queues.info(&job::results_queue(&record.id)).await?.waiting;
        let dead = queues
            .info(&job::dead_letter_queue(&record.id))
            .await?
            .waiting;
        let finished = record.collected() >= record.total;
        let state = match (record.cancelled_at.is_some(), finished) {
            (_, true) if record.cancelled_at.is_none() => "completed",
            (true, true) => "cancelled",
            (true, false) => "cancelling",
            (false, _) => "in_progress",
        };
        Ok(Self {
            job: record.clone(),
            state,
            results_waiting: results,
            dead_lettered_waiting: dead,
        })
    }

    fn render(&self) -> String {
        let j = &self.job;
        let uncollected =
            u64::try_from(self.results_waiting + self.dead_lettered_waiting).unwrap_or(0);
        let accounted = (j.collected() + uncollected).min(j.total);
        format!(
            "job        {}\nstate      {}\nroute      {}\ninput      {}\nlines      {}\nfinished   {} ({} collected: {} ok, {} failed; {} waiting to be collected)\nremaining  {}",
            j.id,
            self.state,
            j.route,
            j.input,
            j.total,
            accounted,
            j.collected(),
            j.collected_ok,
            j.collected_failed,
            uncollected,
            j.total - accounted,
        )
    }
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    Ok(())
}

fn eprint(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[cfg(test)]
mod pace_tests {
    use super::*;

    fn pace(lines: u64, secs: u64, remaining: u64) -> Pace {
        Pace {
            lines,
            elapsed: Duration::from_secs(secs),
            remaining,
        }
    }

    #[test]
    fn rates_are_rounded_and_the_eta_follows_the_pace() {
        assert_eq!(pace(93_466, 10, 0).rate_text(), "9347 lines/s");
        assert_eq!(pace(25, 10, 0).rate_text(), "2.5 lines/s");
        assert_eq!(pace(0, 0, 10).rate_text(), "- lines/s");
        assert_eq!(pace(100, 10, 50).eta_text(), "5s");
        assert_eq!(pace(10, 10, 1_000).eta_text(), "16m40s");
        assert_eq!(pace(0, 10, 5).eta_text(), "?");
        assert_eq!(pace(1, 1, 0).eta_text(), "0s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_file_is_refused_over_a_limit_naming_the_flag() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("in.jsonl");
        let limits = BatchLimits {
            max_lines: 3,
            max_file_bytes: 8,
            flags: CLI_FLAGS,
        };
        std::fs::write(&path, "a\nb\nc\n")?;
        assert_eq!(read_input(&path, &limits)?, "a\nb\nc\n");
        std::fs::write(&path, "a\nb\nc\nd")?;
        let e = read_input(&path, &limits).err().map(|e| format!("{e:#}"));
        let e = e.unwrap_or_default();
        assert!(e.ends_with("the file has 4 requests; a batch takes at most 3: split it into smaller files, or raise the limit with --max-lines"), "{e}");
        std::fs::write(&path, "a\nb\n\n\n\n\n\n")?;
        let e = read_input(&path, &limits).err().map(|e| format!("{e:#}"));
        let e = e.unwrap_or_default();
        assert!(e.ends_with("the file is 9 bytes; a batch input file may be at most 8 bytes: split it into smaller files, or raise the limit with --max-file-bytes"), "{e}");
        Ok(())
    }
}
