//! Why a request was not answered, as a stable code: the worker puts it in its error
//! body (`error.code`), the gateway maps it to an HTTP status, metrics label by it. A
//! code is decided where the failure is known, never read back out of a message text.

/// The failure codes, in OpenAI's error-body vocabulary where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// The request itself is wrong (a body the router cannot read, a parameter no target
    /// can honour, a provider's 400).
    BadRequest,
    UnknownRoute,
    UnknownModel,
    /// Every target's limit was full for longer than the deadline allowed.
    RateLimited,
    /// Every target failed, at least one by running out of time.
    UpstreamTimeout,
    /// Every target failed.
    UpstreamFailed,
    /// A stream broke after its first chunk.
    MidStreamError,
    /// The caller went away from a stream.
    Cancelled,
    /// The stream's chunks could not be published.
    StreamFailed,
}

const ALL: [FailureCode; 9] = [
    FailureCode::BadRequest,
    FailureCode::UnknownRoute,
    FailureCode::UnknownModel,
    FailureCode::RateLimited,
    FailureCode::UpstreamTimeout,
    FailureCode::UpstreamFailed,
    FailureCode::MidStreamError,
    FailureCode::Cancelled,
    FailureCode::StreamFailed,
];

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::BadRequest => "bad_request",
            FailureCode::UnknownRoute => "unknown_route",
            FailureCode::UnknownModel => "unknown_model",
            FailureCode::RateLimited => "rate_limited",
            FailureCode::UpstreamTimeout => "upstream_timeout",
            FailureCode::UpstreamFailed => "upstream_failed",
            FailureCode::MidStreamError => "mid_stream_error",
            FailureCode::Cancelled => "cancelled",
            FailureCode::StreamFailed => "stream_failed",
        }
    }

    /// The code a worker sent; None for one this version does not know.
    pub fn parse(code: &str) -> Option<Self> {
        ALL.into_iter().find(|c| c.as_str() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_as_written() {
        for code in ALL {
            assert_eq!(FailureCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(FailureCode::parse("upstream_exploded"), None);
    }
}
