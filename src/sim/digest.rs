//! Deterministic hashing for everything the sim derives from a request (tool call ids,
//! embedding vectors, logprobs): FNV-1a over bytes and a SplitMix64 stream, both fixed
//! algorithms, so answers stay the same across runs, machines and dependency upgrades.

/// FNV-1a (64-bit) of `bytes`.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// FNV-1a of several parts, each followed by a separator so that `["ab", "c"]` and
/// `["a", "bc"]` differ.
pub(super) fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut joined = Vec::new();
    for p in parts {
        joined.extend_from_slice(p);
        joined.push(0x1f);
    }
    fnv1a(&joined)
}

/// One SplitMix64 step: a well-mixed function of `z`.
pub(super) fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An endless deterministic sequence of 64-bit values seeded by `seed`.
pub(super) struct Stream(u64);

impl Stream {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `-1.0..1.0`.
    pub fn next_signed(&mut self) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit.mul_add(2.0, -1.0)
    }
}

/// `prefix` and 24 hex digits of `hash`, mixed: the shape of OpenAI and Anthropic ids.
pub(super) fn id(prefix: &str, hash: u64) -> String {
    format!("{prefix}{:016x}{:08x}", mix(hash), mix(hash ^ 1) >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values_and_separated_parts() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(of_parts([&b"ab"[..], b"c"]), of_parts([&b"a"[..], b"bc"]));
        assert_eq!(id("call_", 7), id("call_", 7));
        assert_eq!(id("call_", 7).len(), 5 + 24);
        let mut s = Stream::new(3);
        assert!((0..1000)
            .map(|_| s.next_signed())
            .all(|x| (-1.0..1.0).contains(&x)));
    }
}
