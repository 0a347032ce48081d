//! Embedding vectors: deterministic from the input (a [`digest::Stream`] seeded by its
//! hash), L2-normalised. A shorter vector is the longer one's prefix renormalised, as
//! OpenAI's `dimensions` shortening is, so clients comparing sizes see the same shape.

use super::digest;
use base64::Engine;

/// The unit vector of `dimensions` values for the input with hash `seed`.
pub(super) fn embed(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut stream = digest::Stream::new(seed);
    let raw: Vec<f64> = (0..dimensions).map(|_| stream.next_signed()).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// OpenAI's `encoding_format: "base64"`: the little-endian `f32`s, base64 encoded.
pub(super) fn to_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f32]) -> f64 {
        v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn unit_length_deterministic_and_distinct() {
        let a = embed(1, 256);
        assert_eq!(a.len(), 256);
        assert!((norm(&a) - 1.0).abs() < 1e-5);
        assert_eq!(a, embed(1, 256));
        assert_ne!(a, embed(2, 256));
        let short = embed(1, 8);
        let ratio = f64::from(a[0]) / f64::from(short[0]);
        assert!(a[..8]
            .iter()
            .zip(&short)
            .all(|(x, y)| (f64::from(*x) / f64::from(*y) - ratio).abs() < 1e-4));
    }

    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
    }
}
