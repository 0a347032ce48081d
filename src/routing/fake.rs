//! A scripted provider for unit tests: answers, fails or hangs on demand, in tokio time,
//! and records when it was called.

use crate::provider::{ChatChunk, ChatStream, LlmRequest, LlmResponse, ProviderError};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the fake does with one call.
#[derive(Debug, Clone)]
pub enum Step {
    Answer,
    /// Answers after this long (or times out first).
    AnswerAfter(Duration),
    Fail(ProviderError),
    /// Never answers: times out after the caller's timeout.
    Hang,
}

#[derive(Debug)]
pub struct Fake {
    name: String,
    script: Mutex<VecDeque<Step>>,
    /// What to do once the script is used up.
    otherwise: Mutex<Step>,
    calls: Mutex<Vec<Instant>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Refuse requests that carry this top-level field, as an endpoint that cannot
    /// honour a parameter does.
    refuses: Mutex<Option<String>>,
}

pub fn status(status: u16) -> Step {
    Step::Fail(ProviderError::Status {
        status,
        retry_after: None,
        message: format!("status {status}"),
    })
}

pub fn retry_after(status: u16, after: Duration) -> Step {
    Step::Fail(ProviderError::Status {
        status,
        retry_after: Some(after),
        message: format!("status {status}"),
    })
}

impl Fake {
    pub fn new(name: &str, otherwise: Step) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            script: Mutex::new(VecDeque::new()),
            otherwise: Mutex::new(otherwise),
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            refuses: Mutex::new(None),
        })
    }

    /// From now on, cannot honour requests that carry `field`.
    pub fn refuse(&self, field: &str) {
        *self.refuses.lock() = Some(field.to_owned());
    }

    pub fn refusal(&self, req: &LlmRequest) -> Option<String> {
        let field = self.refuses.lock().clone()?;
        req.body()
            .contains_key(&field)
            .then(|| format!("{} cannot honour `{field}`", self.name))
    }

    /// Queues steps to play before falling back to the default one.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.script.lock().extend(steps);
    }

    pub fn set(&self, otherwise: Step) {
        *self.otherwise.lock() = otherwise;
    }

    pub fn calls(&self) -> usize {
        self.calls.lock().len()
    }

    pub fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub async fn chat(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<LlmResponse, ProviderError> {
        self.calls.lock().push(Instant::now());
        let step = self
            .script
            .lock()
            .pop_front()
            .unwrap_or_else(|| self.otherwise.lock().clone());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let result = self.play(step, req, timeout).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// The scripted answer as a stream of its words, or the scripted failure before it.
    pub async fn stream(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<ChatStream, ProviderError> {
        let answer = self.chat(req, timeout).await?;
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            ChatChunk::new(json!({
                "id": answer.body["id"], "object": "chat.completion.chunk", "model": answer.model(),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }))
        };
        let mut items: Vec<Result<ChatChunk, ProviderError>> = answer
            .text()
            .split_inclusive(' ')
            .map(|w| Ok(chunk(json!({"content": w}), None)))
            .collect();
        items.push(Ok(chunk(json!({}), Some(answer.finish_reason()))));
        items.push(Ok(ChatChunk::new(json!({
            "id": answer.body["id"], "object": "chat.completion.chunk", "model": answer.model(),
            "choices": [], "usage": answer.body["usage"],
        }))));
        Ok(ChatStream::replay(items))
    }

    async fn play(
        &self,
        step: Step,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<LlmResponse, ProviderError> {
        match step {
            Step::Answer => Ok(self.answer(req)),
            Step::AnswerAfter(after) if after <= timeout => {
                tokio::time::sleep(after).await;
                Ok(self.answer(req))
            }
            Step::AnswerAfter(_) | Step::Hang => {
                tokio::time::sleep(timeout).await;
                Err(ProviderError::Timeout(timeout))
            }
            Step::Fail(error) => Err(error),
        }
    }

    fn answer(&self, req: &LlmRequest) -> LlmResponse {
        LlmResponse::new(json!({
            "id": format!("{}-{}", self.name, self.calls()),
            "object": "chat.completion",
            "model": req.model(),
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": format!("answer from {}", self.name)}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }))
    }
}
