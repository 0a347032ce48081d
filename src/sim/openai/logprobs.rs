//! Plausible token logprobs for `logprobs: true`: one entry per stream piece (the sim's
//! token), its logprob a deterministic function of the token, and `top_logprobs`
//! alternatives led by the token itself, each less likely than the one before.

use crate::sim::digest;
use serde_json::{json, Value};

/// Alternative tokens offered after the chosen one (at least 20, the API's maximum).
const ALTERNATIVES: [&str; 21] = [
    "the", "a", "and", "of", "to", "in", "is", "it", "that", "for", "on", "with", "as", "at", "by",
    "this", "be", "or", "an", "from", "so",
];

/// `logprobs.content` for `tokens`, `top` alternatives each.
pub(super) fn content(tokens: &[String], top: u32) -> Value {
    Value::Array(tokens.iter().map(|t| entry(t, top)).collect())
}

fn entry(token: &str, top: u32) -> Value {
    let logprob = logprob(token);
    let others = ALTERNATIVES.iter().filter(|a| **a != token.trim());
    let alternatives = std::iter::once(token).chain(others.copied());
    let top: Vec<Value> = alternatives
        .take(usize::try_from(top).unwrap_or(0))
        .enumerate()
        .map(|(k, t)| json!({"token": t, "logprob": logprob - 1.5 * k as f64, "bytes": t.as_bytes()}))
        .collect();
    json!({"token": token, "logprob": logprob, "bytes": token.as_bytes(), "top_logprobs": top})
}

/// Between -2.0 and 0.0, rounded to 1e-4: likely, as an echo is.
fn logprob(token: &str) -> f64 {
    let h = digest::mix(digest::fnv1a(token.as_bytes()));
    -((h % 20_000) as f64) / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_bytes_and_top_alternatives() {
        let tokens = vec!["sim: ".to_owned(), "the".to_owned()];
        let c = content(&tokens, 3);
        assert_eq!(c[0]["bytes"], json!(b"sim: ".to_vec()));
        let top = c[1]["top_logprobs"].as_array().cloned().unwrap_or_default();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["token"], "the");
        assert_ne!(top[1]["token"], "the", "the token is not repeated");
        assert!(top
            .windows(2)
            .all(|w| w[0]["logprob"].as_f64() > w[1]["logprob"].as_f64()));
        assert!(c[0]["logprob"]
            .as_f64()
            .is_some_and(|l| (-2.0..=0.0).contains(&l)));
        assert_eq!(content(&tokens, 0)[0]["top_logprobs"], json!([]));
    }
}
