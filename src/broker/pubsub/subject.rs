//! NATS subject matching: tokens split by `.`, `*` matches one token, `>` one or more
//! trailing tokens; case-sensitive.

/// Whether `subject` (a concrete channel) matches `pattern` (a subscription channel).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(s)) if literal == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literal_and_wildcards() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.B"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(!matches("a.*", "a"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches("*.b.>", "x.b.y"));
        assert!(matches(">", "anything.at.all"));
        assert!(!matches("a*", "ab"));
        assert!(matches("a*", "a*"));
    }
}
