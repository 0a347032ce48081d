//! QueuesUpstream (KUBEMQ.md §3.6): each request is a batch send, handled concurrently;
//! responses may come back out of order and carry the request id.

use super::{Out, Queues};
use crate::kubemq::{QueuesUpstreamRequest, QueuesUpstreamResponse};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::Arc;
use tonic::Status;

/// Requests of one stream in progress at once.
const CONCURRENCY: usize = 64;

pub(crate) fn open(
    queues: Arc<Queues>,
    input: BoxStream<'static, Result<QueuesUpstreamRequest, Status>>,
) -> Out<QueuesUpstreamResponse> {
    let shutdown = queues.shutdown.clone().cancelled_owned();
    input
        .take_until(shutdown)
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(|item| std::future::ready(item.ok()))
        .map(move |req| {
            let queues = queues.clone();
            async move { Ok(handle(&queues, req).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .boxed()
}

async fn handle(queues: &Queues, req: QueuesUpstreamRequest) -> QueuesUpstreamResponse {
    if req.messages.is_empty() {
        return QueuesUpstreamResponse {
            ref_request_id: req.request_id,
            is_error: true,
            error: "no messages to send".to_owned(),
            ..Default::default()
        };
    }
    let results = queues.send_many(req.messages).await;
    QueuesUpstreamResponse {
        ref_request_id: req.request_id,
        results,
        ..Default::default()
    }
}
