//! OpenAI's Files and Batches APIs on top of batch jobs, with every piece of state in the
//! broker so that gateway replicas stay stateless and any of them answers for any batch.
//!
//! - [`store`]: events-store reads (replay up to a sync marker) and writes;
//!   [`follow`]: long-lived views of the batches, jobs and files histories, bounded
//!   by [`recent`] (see [`record::KEEP_ENDED`], [`files::KEEP_FILES`], [`jobs`]).
//! - [`files`]: uploaded files (metadata channel, chunked content channels) and the ids
//!   of a batch's output and error files.
//! - [`record`]: a batch's own history (OpenAI fields, validation failure, end).
//! - [`output`]: a batch's result log, read as its output and error files.
//! - [`collector`]: background collectors from the job's queues into the result log.
//! - [`create`]: queueing the job; [`lines`]: checking the input file within the limits.
//!   [`view`]: the batch object.
//! - [`error`]: the endpoints' OpenAI-shaped errors.
//!
//! HTTP handlers: [`crate::gateway::files`] and [`crate::gateway::batches`].

pub mod collector;
pub mod create;
pub mod error;
pub mod files;
pub mod follow;
pub mod jobs;
pub mod lines;
pub mod output;
pub mod recent;
pub mod record;
pub mod store;
pub mod view;

use super::routes::RouteTable;
use crate::batch::job::{JobEvent, JobRecord, JOBS_CHANNEL};
use crate::batch::limits::{BatchLimits, LimitFlags, DEFAULT_MAX_FILE_BYTES};
use crate::kubemq::client::{Client, ClientOptions, Error as ClientError, ErrorKind};
use crate::kubemq::queues::QueueClient;
use collector::Collectors;
use error::BatchApiError;
use files::{Files, StoredFile};
use follow::View;
use jobs::BatchJobs;
use record::{BatchEvent, BatchRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Default cap on a Batch API request body (`--max-upload`): the largest input file plus
/// 1 MiB for the multipart framing around it, so a file at the limit fits.
pub const DEFAULT_MAX_UPLOAD: usize = DEFAULT_MAX_FILE_BYTES as usize + (1 << 20);
/// The gateway flags that raise the batch limits, named in the 400s.
pub const LIMIT_FLAGS: LimitFlags = LimitFlags {
    lines: "--batch-max-lines",
    bytes: "--batch-max-file-bytes",
};
/// How often a gateway looks for open batches without a collector here (one whose
/// creating replica went away, say). Reads the views' memory only.
const RESCAN: Duration = Duration::from_secs(10);

/// What the Files and Batches handlers use; cheap to clone.
#[derive(Clone)]
pub struct BatchApi {
    address: Arc<str>,
    /// Set once connected (in the background, like the chat path's link).
    client: Arc<OnceCell<Client>>,
    queues: Result<QueueClient, ClientError>,
    pub table: RouteTable,
    pub collectors: Collectors,
    /// Largest request body, bytes.
    pub max_upload: usize,
    /// Most lines and bytes in one batch's input file.
    pub limits: BatchLimits,
    /// The batches, jobs and files histories; set once each view has caught up with what
    /// the broker held at start, so no read answers from a half-read history.
    views: Arc<OnceCell<Views>>,
}

/// A batch and its job (none yet while it validates, or when it failed validation).
pub type WithJob = (BatchRecord, Option<JobRecord>);

/// The histories a batch is read from, each followed by one long-lived subscription.
#[derive(Clone)]
pub struct Views {
    pub batches: View<record::Batches>,
    pub jobs: View<BatchJobs>,
    pub files: View<Files>,
}

impl BatchApi {
    /// Starts connecting to the broker and, once connected, following the histories and
    /// collecting every open batch (at start and every [`RESCAN`]) until `shutdown`.
    pub fn start(
        address: &str,
        client_id: &str,
        table: RouteTable,
        (max_upload, limits): (usize, BatchLimits),
        shutdown: CancellationToken,
    ) -> Self {
        let id = format!("{client_id}-batches");
        let api = Self {
            address: address.into(),
            client: Arc::new(OnceCell::new()),
            queues: QueueClient::new(address, &id),
            table,
            collectors: Collectors::new(shutdown.clone()),
            max_upload,
            limits,
            views: Arc::new(OnceCell::new()),
        };
        let mut options = ClientOptions::new(address, id);
        options.connect_timeout = None;
        // Ends at shutdown; collectors it starts stop with the same token.
        tokio::spawn(supervise(api.clone(), options, shutdown));
        api
    }

    pub fn client(&self) -> Result<&Client, BatchApiError> {
        self.client.get().ok_or_else(|| {
            BatchApiError::BrokerUnavailable(format!("not connected to {} yet", self.address))
        })
    }

    pub fn queues(&self) -> Result<&QueueClient, BatchApiError> {
        self.queues
            .as_ref()
            .map_err(|e| BatchApiError::from(e.clone()))
    }

    pub fn views(&self) -> Result<&Views, BatchApiError> {
        self.views.get().ok_or_else(|| {
            BatchApiError::BrokerUnavailable(format!(
                "still reading the batch history from {}; try again in a moment",
                self.address
            ))
        })
    }

    /// A batch and its job, from memory. Only a miss asks the broker: one marker, so a
    /// batch another replica just created is found.
    pub async fn batch(&self, id: &str) -> Result<Option<WithJob>, BatchApiError> {
        let views = self.views()?;
        let mut found = views.batches.now(|b| b.get(id).cloned());
        if found.is_none() && crate::batch::job::is_job_id(id) {
            // The job too: its history is another channel, read by another subscription.
            let client = self.client()?;
            let (batch, job) = tokio::join!(
                views.batches.synced(client, |b| b.get(id).cloned()),
                views.jobs.synced(client, |_| ())
            );
            job?;
            found = batch?;
        }
        Ok(found.map(|batch| (batch, views.jobs.now(|j| j.get(id).cloned()))))
    }

    /// A page of batches, newest first, with their jobs; and whether more follow.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<WithJob>, bool), BatchApiError> {
        let views = self.views()?;
        let (page, more) = views.batches.now(|b| b.page(after, limit));
        let page = views.jobs.now(|jobs| {
            page.into_iter()
                .map(|b| {
                    let job = jobs.get(&b.id).cloned();
                    (b, job)
                })
                .collect()
        });
        Ok((page, more))
    }

    /// Stores a batch event; returns once this replica's view holds it.
    pub async fn record(&self, event: &BatchEvent) -> Result<(), BatchApiError> {
        let body = serde_json::to_vec(event).map_err(|e| encode_error("batch", &e))?;
        Ok(self.views()?.batches.store(self.client()?, body).await?)
    }

    /// Stores a job event; returns once this replica's view holds it.
    pub async fn record_job(&self, event: &JobEvent) -> Result<(), BatchApiError> {
        let body = serde_json::to_vec(event).map_err(|e| encode_error("job", &e))?;
        Ok(self.views()?.jobs.store(self.client()?, body).await?)
    }

    /// An uploaded file's metadata; like [`Self::batch`], only a miss asks the broker.
    pub async fn file(&self, id: &str) -> Result<Option<StoredFile>, BatchApiError> {
        let views = self.views()?;
        let found = views.files.now(|f| f.get(id).cloned());
        if found.is_some() || !matches!(files::parse_id(id), Some(files::FileId::Upload(_))) {
            return Ok(found);
        }
        let client = self.client()?;
        Ok(views.files.synced(client, |f| f.get(id).cloned()).await?)
    }

    /// Every uploaded file this replica knows, newest first.
    pub fn files(&self) -> Result<Vec<StoredFile>, BatchApiError> {
        Ok(self.views()?.files.now(Files::newest_first))
    }

    /// Starts collectors here for every open batch that has none here, from the views
    /// as they are (no broker call).
    pub fn scan(&self) -> Result<(), BatchApiError> {
        let client = self.client()?;
        let views = self.views()?;
        let open: Vec<JobRecord> = views.batches.now(|batches| {
            views.jobs.now(|jobs| {
                batches
                    .unended()
                    .filter_map(|batch| {
                        jobs.get(&batch.id)
                            .filter(|job| view::is_open(batch, Some(*job)))
                            .cloned()
                    })
                    .collect()
            })
        });
        for job in &open {
            self.collectors.ensure(client, self.queues()?, job);
        }
        Ok(())
    }
}

fn encode_error(what: &str, e: &serde_json::Error) -> BatchApiError {
    BatchApiError::from(ClientError::new(
        ErrorKind::Rejected,
        format!("{what} event: {e}"),
    ))
}

/// Starts the three views and waits until each holds what the broker has now.
async fn follow_histories(client: &Client) -> Result<Views, ClientError> {
    let views = Views {
        batches: View::start(client, record::BATCHES_CHANNEL).await?,
        jobs: View::start(client, JOBS_CHANNEL).await?,
        files: View::start(client, files::FILES_CHANNEL).await?,
    };
    let (b, j, f) = tokio::join!(
        views.batches.synced(client, |_| ()),
        views.jobs.synced(client, |_| ()),
        views.files.synced(client, |_| ())
    );
    b.and(j).and(f)?;
    Ok(views)
}

async fn supervise(api: BatchApi, options: ClientOptions, shutdown: CancellationToken) {
    let connect = api.client.get_or_try_init(|| Client::connect(options));
    let connected = tokio::select! {
        () = shutdown.cancelled() => return,
        c = connect => c.is_ok(),
    };
    if !connected {
        tracing::error!("the Batch API cannot use the broker at {}", api.address);
        return;
    }
    let Ok(client) = api.client().cloned() else {
        return;
    };
    loop {
        let started = tokio::select! {
            () = shutdown.cancelled() => return,
            s = follow_histories(&client) => s,
        };
        match started {
            Ok(views) => {
                let _ = api.views.set(views);
                break;
            }
            Err(e) => tracing::warn!(
                "the Batch API cannot read its histories yet, trying again in {}s: {e}",
                RESCAN.as_secs()
            ),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
    loop {
        if let Err(e) = api.scan() {
            tracing::warn!(
                "looking for open batches failed, trying again in {}s: {e}",
                RESCAN.as_secs()
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
}
