//! Optional API keys: when any are configured, `/v1/*` requires `Authorization: Bearer
//! <key>`. Keys are kept only as SHA-256 digests and compared in constant time, so
//! neither the time taken nor the logs say anything about them.

use super::error::ApiError;
use crate::secret::Secret;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::digest::{digest, SHA256};
use std::sync::Arc;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The environment variable holding the keys, comma-separated.
pub const KEYS_ENV: &str = "LLM_ROUTER_GATEWAY_KEYS";

type Digest = [u8; 32];

/// Who is calling: the index of the key presented, or anyone when no keys are set.
/// Rate limits are kept per caller; the key itself never leaves [`ApiKeys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    Anonymous,
    Key(u32),
}

/// The accepted keys' digests; empty means no authentication.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<Vec<Digest>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn sha256(bytes: &[u8]) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl ApiKeys {
    pub fn new(keys: &[Secret]) -> Self {
        let digests = keys.iter().map(|k| sha256(k.expose().as_bytes())).collect();
        Self {
            digests: Arc::new(digests),
        }
    }

    /// Keys from a comma-separated list (as in [`KEYS_ENV`]); blanks are ignored.
    pub fn parse(list: &str) -> Self {
        let keys: Vec<Secret> = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect();
        Self::new(&keys)
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Which key `presented` is. Every digest is compared, so the time taken does not
    /// depend on which key matched or how much of one did.
    fn find(&self, presented: &[u8]) -> Option<u32> {
        let presented = sha256(presented);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, d) in self.digests.iter().enumerate() {
            let same = d.ct_eq(&presented);
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            index = u32::conditional_select(&index, &i, same);
            found |= same;
        }
        bool::from(found).then_some(index)
    }

    /// The caller behind `authorization`, or why it is refused.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Caller, ApiError> {
        if self.is_empty() {
            return Ok(Caller::Anonymous);
        }
        let token = authorization
            .and_then(|v| {
                v.strip_prefix(b"Bearer ")
                    .or_else(|| v.strip_prefix(b"bearer "))
            })
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::MissingKey)?;
        self.find(token)
            .map(Caller::Key)
            .ok_or(ApiError::InvalidKey)
    }
}

/// Middleware: refuses requests without a valid key and tells later layers who called.
pub async fn require_key(State(keys): State<ApiKeys>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match keys.check(presented) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keys_lets_everyone_in() {
        assert_eq!(
            ApiKeys::parse(" , ").check(None).ok(),
            Some(Caller::Anonymous)
        );
    }

    #[test]
    fn keys_are_required_and_matched() {
        let keys = ApiKeys::parse("sk-one, sk-two");
        assert_eq!(keys.len(), 2);
        assert!(matches!(keys.check(None), Err(ApiError::MissingKey)));
        assert!(matches!(
            keys.check(Some(b"Basic x")),
            Err(ApiError::MissingKey)
        ));
        assert!(matches!(
            keys.check(Some(b"Bearer sk-three")),
            Err(ApiError::InvalidKey)
        ));
        assert!(matches!(
            keys.check(Some(b"Bearer sk-on")),
            Err(ApiError::InvalidKey)
        ));
        assert_eq!(
            keys.check(Some(b"Bearer sk-one")).ok(),
            Some(Caller::Key(0))
        );
        assert_eq!(
            keys.check(Some(b"Bearer sk-two ")).ok(),
            Some(Caller::Key(1))
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let text = format!("{:?}", ApiKeys::parse("sk-secret"));
        assert!(!text.contains("sk-secret"), "{text}");
    }
}
