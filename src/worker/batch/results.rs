//! Stores messages (results, retries, dead letters) in batches: every line task hands its
//! message here and waits for the broker to have it, so that its own line is acked only
//! after what it produced is stored. One batch send per round trip instead of one per line.

use crate::kubemq::client::{Error, ErrorKind};
use crate::kubemq::queues::QueueClient;
use crate::kubemq::QueueMessage;
use tokio::sync::{mpsc, oneshot};

/// Most messages in one batch send.
const MAX_BATCH: usize = 256;

type Job = (Vec<QueueMessage>, oneshot::Sender<Result<(), Error>>);

/// Handle to the storing task; cloneable, the task ends with the last handle.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
}

impl Store {
    pub fn start(queues: QueueClient) -> Self {
        let (jobs, rx) = mpsc::channel(1024);
        tokio::spawn(run(queues, rx));
        Self { jobs }
    }

    /// Returns once every message in `messages` is stored, or why not.
    pub async fn store(&self, messages: Vec<QueueMessage>) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        let gone = || Error::new(ErrorKind::Closed, "the result store has stopped");
        self.jobs
            .send((messages, reply))
            .await
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}

async fn run(queues: QueueClient, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<QueueMessage> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<Result<(), Error>>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let (messages, reply) = first;
        batch.extend(messages);
        waiting.push(reply);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((messages, reply)) => {
                    batch.extend(messages);
                    waiting.push(reply);
                }
                Err(_) => break,
            }
        }
        let result = queues.send_all(std::mem::take(&mut batch)).await;
        for reply in waiting.drain(..) {
            // A line task that went away no longer needs the answer.
            let _ = reply.send(result.clone());
        }
    }
}
