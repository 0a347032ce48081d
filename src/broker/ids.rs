//! Identifiers and clocks in the shapes KubeMQ clients expect.

use rand::distributions::Alphanumeric;
use rand::Rng;
use std::time::{SystemTime, UNIX_EPOCH};

/// A 22-character random id, the length of the NUIDs the real server generates.
pub fn nuid() -> String {
    random_alnum(22)
}

/// A random alphanumeric string of `len` characters.
pub fn random_alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A UUID v4, used for downstream transaction ids.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Wall-clock Unix time in nanoseconds; the unit KubeMQ uses in message attributes.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Wall-clock Unix time in whole seconds.
pub fn now_secs() -> i64 {
    now_ns() / 1_000_000_000
}

#[cfg(test)]
mod tests {
    #[test]
    fn nuid_has_upstream_length() {
        assert_eq!(super::nuid().len(), 22);
        assert_ne!(super::nuid(), super::nuid());
    }
}
