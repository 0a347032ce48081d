//! Anthropic wire format (stub until implemented).

use super::{ChatRequest, ChatResponse, ProviderError};
use crate::secret::Secret;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Anthropic {
    base_url: String,
    api_key: Option<Secret>,
    http: reqwest::Client,
}

impl Anthropic {
    pub fn new(base_url: &str, api_key: Option<Secret>, http: reqwest::Client) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            http,
        }
    }

    pub async fn chat(
        &self,
        _req: &ChatRequest,
        _timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let _ = (&self.base_url, &self.api_key, &self.http);
        Err(ProviderError::Decode("not implemented".into()))
    }
}
