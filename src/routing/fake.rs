//! A scripted provider for unit tests: answers, fails or hangs on demand, in tokio time,
//! and records when it was called.

use crate::provider::{ChatChunk, ChatRequest, ChatResponse, ChatStream, ProviderError, Usage};
use parking_lot::Mutex;
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
        })
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
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
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
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatStream, ProviderError> {
        let answer = self.chat(req, timeout).await?;
        let chunk = |delta: &str| ChatChunk {
            id: answer.id.clone(),
            model: answer.model.clone(),
            delta: delta.to_owned(),
            ..ChatChunk::default()
        };
        let mut items: Vec<Result<ChatChunk, ProviderError>> = answer
            .content
            .split_inclusive(' ')
            .map(|w| Ok(chunk(w)))
            .collect();
        items.push(Ok(ChatChunk {
            finish_reason: Some(answer.finish_reason.clone()),
            usage: Some(answer.usage),
            ..chunk("")
        }));
        Ok(ChatStream::replay(items))
    }

    async fn play(
        &self,
        step: Step,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
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

    fn answer(&self, req: &ChatRequest) -> ChatResponse {
        ChatResponse {
            id: format!("{}-{}", self.name, self.calls()),
            model: req.model.clone(),
            content: format!("answer from {}", self.name),
            finish_reason: "stop".into(),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
            },
        }
    }
}
