//! OpenAI's Files and Batches APIs on top of batch jobs, with every piece of state in the
//! broker so that gateway replicas stay stateless and any of them answers for any batch.
//!
//! - [`store`]: events-store reads (replay up to a sync marker) and writes;
//!   [`follow`]: long-lived views of the batches and jobs histories.
//! - [`files`]: uploaded files (metadata channel, chunked content channels) and the ids
//!   of a batch's output and error files.
//! - [`record`]: a batch's own history (OpenAI fields, validation failure, end).
//! - [`output`]: a batch's result log, read as its output and error files.
//! - [`collector`]: background collectors from the job's queues into the result log.
//! - [`create`]: checking the input file and queueing the job. [`view`]: the batch object.
//! - [`error`]: the endpoints' OpenAI-shaped errors.
//!
//! HTTP handlers: [`crate::gateway::files`] and [`crate::gateway::batches`].

pub mod collector;
pub mod create;
pub mod error;
pub mod files;
pub mod follow;
pub mod output;
pub mod record;
pub mod store;
pub mod view;

use super::routes::RouteTable;
use crate::batch::job::{JobEvent, JobRecord, Jobs, JOBS_CHANNEL};
use crate::kubemq::client::{Client, ClientOptions, Error as ClientError};
use crate::kubemq::queues::QueueClient;
use collector::Collectors;
use error::BatchApiError;
use follow::View;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Default cap on an uploaded file: 200 MiB (OpenAI's per-file limit for batch input).
pub const DEFAULT_MAX_UPLOAD: usize = 200 * 1024 * 1024;
/// How often a gateway looks for open batches without a collector here (one whose
/// creating replica went away, say).
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
    /// Largest upload, bytes.
    pub max_upload: usize,
    /// The batches and jobs histories, followed once connected.
    views: Arc<OnceCell<Views>>,
}

/// The two histories a batch is read from.
#[derive(Clone)]
pub struct Views {
    pub batches: View<record::Batches>,
    pub jobs: View<Jobs>,
}

impl follow::Fold for Jobs {
    fn fold(&mut self, event: &crate::kubemq::EventReceive) {
        match serde_json::from_slice::<JobEvent>(&event.body) {
            Ok(e) => self.apply(e),
            Err(e) => tracing::debug!("ignoring an unreadable event on {JOBS_CHANNEL}: {e}"),
        }
    }
}

impl BatchApi {
    /// Starts connecting to the broker and, once connected, collecting every open batch
    /// (at start and every [`RESCAN`]) until `shutdown`.
    pub fn start(
        address: &str,
        client_id: &str,
        table: RouteTable,
        max_upload: usize,
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

    fn views(&self) -> Result<&Views, BatchApiError> {
        self.views.get().ok_or_else(|| {
            BatchApiError::BrokerUnavailable(format!("not connected to {} yet", self.address))
        })
    }

    /// Both histories, with everything stored before this call (by any replica) in them.
    pub async fn histories(&self) -> Result<(record::Batches, Jobs), BatchApiError> {
        let client = self.client()?;
        let views = self.views()?;
        let (batches, jobs) = tokio::join!(
            views.batches.synced(client, Clone::clone),
            views.jobs.synced(client, Clone::clone)
        );
        Ok((batches?, jobs?))
    }

    /// The batches history, with everything stored before this call in it.
    pub async fn batches(&self) -> Result<record::Batches, BatchApiError> {
        let views = self.views()?;
        Ok(views.batches.synced(self.client()?, Clone::clone).await?)
    }

    /// Starts collectors here for every open batch that has none here, from the views
    /// as they are (no broker call).
    pub fn scan(&self) -> Result<(), BatchApiError> {
        let client = self.client()?;
        let views = self.views()?;
        let open: Vec<JobRecord> = views.batches.now(|batches| {
            views.jobs.now(|jobs| {
                batches
                    .newest_first()
                    .into_iter()
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
    let started = async {
        let batches = View::start(&client, record::BATCHES_CHANNEL).await?;
        let jobs = View::start(&client, JOBS_CHANNEL).await?;
        Ok::<_, ClientError>(Views { batches, jobs })
    };
    match started.await {
        Ok(views) => {
            let _ = api.views.set(views);
        }
        Err(e) => {
            tracing::error!("the Batch API cannot follow its histories: {e}");
            return;
        }
    }
    // The first scan waits until the views hold what is stored now.
    if let Err(e) = api.histories().await {
        tracing::warn!("reading the batch histories failed: {e}");
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
