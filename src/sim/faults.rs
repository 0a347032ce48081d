//! The seeded draw: request number `n` of a sim with seed `s` always meets the same fate.

use super::SimConfig;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// What happens to one admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Drop the connection with a TCP reset, no response.
    Reset,
    /// Never answer (until shutdown).
    Hang,
    /// 429 with the configured `Retry-After`.
    TooMany,
    /// An injected error status.
    Error(u16),
    /// Answer normally.
    Answer,
}

/// One request's fate and the latency before it is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Draw {
    pub fate: Fate,
    pub delay: Duration,
    /// A streamed answer is cut by an error mid-stream.
    pub cut: bool,
}

/// Draws for request `n`: one roll picks the fate along the cumulative rates, a second
/// the jitter, a third whether a stream is cut. A fresh RNG per request keeps the sequence independent of concurrency.
pub(super) fn draw(config: &SimConfig, n: u64) -> Draw {
    let mut rng = rand::rngs::StdRng::seed_from_u64(mix(config.seed, n));
    let roll: f64 = rng.gen();
    let jitter = if config.jitter_ms > 0 {
        rng.gen_range(0..=config.jitter_ms)
    } else {
        0
    };
    // Drawn last, so that adding the rate changes no earlier draw of the same seed.
    let cut: f64 = rng.gen();
    Draw {
        fate: fate(config, roll),
        delay: Duration::from_millis(config.latency_ms.saturating_add(jitter)),
        cut: cut < config.mid_stream_error_rate,
    }
}

fn fate(config: &SimConfig, roll: f64) -> Fate {
    let fixed = [
        (config.reset_rate, Fate::Reset),
        (config.hang_rate, Fate::Hang),
        (config.rate_429, Fate::TooMany),
    ];
    let injected = config
        .error_rates
        .iter()
        .map(|(s, p)| (*p, Fate::Error(*s)));
    let mut edge = 0.0;
    for (rate, fate) in fixed.into_iter().chain(injected) {
        edge += rate;
        if roll < edge {
            return fate;
        }
    }
    Fate::Answer
}

/// SplitMix64 of seed and request number, so nearby seeds give unrelated sequences.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SimConfig {
        SimConfig {
            error_rates: vec![(500, 0.2), (503, 0.2)],
            rate_429: 0.1,
            jitter_ms: 50,
            seed: 7,
            ..SimConfig::default()
        }
    }

    #[test]
    fn same_seed_same_fates_and_rates_roughly_hold() {
        let c = config();
        let a: Vec<Draw> = (0..2000).map(|n| draw(&c, n)).collect();
        let b: Vec<Draw> = (0..2000).map(|n| draw(&c, n)).collect();
        assert_eq!(a, b);
        let count = |f: Fate| a.iter().filter(|d| d.fate == f).count();
        assert!((300..500).contains(&count(Fate::Error(500))));
        assert!((120..280).contains(&count(Fate::TooMany)));
        assert!(a.iter().all(|d| d.delay <= Duration::from_millis(50)));
        let other = SimConfig { seed: 8, ..c };
        assert_ne!(a, (0..2000).map(|n| draw(&other, n)).collect::<Vec<_>>());
    }

    #[test]
    fn mid_stream_cuts_follow_the_seed_and_leave_other_draws_alone() {
        let plain = config();
        let cutting = SimConfig {
            mid_stream_error_rate: 0.5,
            ..config()
        };
        let a: Vec<Draw> = (0..1000).map(|n| draw(&cutting, n)).collect();
        assert_eq!(a, (0..1000).map(|n| draw(&cutting, n)).collect::<Vec<_>>());
        let cuts = a.iter().filter(|d| d.cut).count();
        assert!((400..600).contains(&cuts), "{cuts}");
        let fates = |c: &SimConfig| (0..1000).map(|n| draw(c, n).fate).collect::<Vec<_>>();
        assert_eq!(fates(&plain), fates(&cutting));
        assert!((0..1000).all(|n| !draw(&plain, n).cut));
    }

    #[test]
    fn no_rates_always_answer() {
        let c = SimConfig::default();
        assert!((0..100).all(|n| draw(&c, n).fate == Fate::Answer));
    }
}
