//! How big one batch may be: checked before a file is parsed, so a file of a few million
//! tiny lines is refused in one cheap scan instead of pinning a thread while it is read.
//!
//! The defaults are OpenAI's Batch API limits (50,000 requests, 200 MB per input file), so a
//! file that works here works there and the other way round.

/// Default most requests (non-blank lines) in one batch: OpenAI's.
pub const DEFAULT_MAX_LINES: usize = 50_000;
/// Default largest input file: 200 MiB (OpenAI documents 200 MB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;

/// The limits of one batch, with the flag that raises each (named in the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_lines: usize,
    pub max_file_bytes: u64,
    /// The flags of this program that set the two limits, for the error text.
    pub flags: LimitFlags,
}

/// Flag names for [`LimitError`]'s advice (the CLI and the gateway name them differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitFlags {
    pub lines: &'static str,
    pub bytes: &'static str,
}

/// A batch over a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the file has {count} requests; a batch takes at most {limit}: split it into smaller files, or raise the limit with {flag}")]
    TooManyLines {
        count: usize,
        limit: usize,
        flag: &'static str,
    },
    #[error("the file is {size} bytes; a batch input file may be at most {limit} bytes: split it into smaller files, or raise the limit with {flag}")]
    TooLarge {
        size: u64,
        limit: u64,
        flag: &'static str,
    },
}

impl BatchLimits {
    /// OpenAI's limits, raised with `flags`.
    pub fn openai(flags: LimitFlags) -> Self {
        Self {
            max_lines: DEFAULT_MAX_LINES,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            flags,
        }
    }

    /// Refuses a file of `size` bytes over the limit.
    pub fn check_size(&self, size: u64) -> Result<(), LimitError> {
        if size > self.max_file_bytes {
            return Err(LimitError::TooLarge {
                size,
                limit: self.max_file_bytes,
                flag: self.flags.bytes,
            });
        }
        Ok(())
    }

    /// Refuses `text` with more requests than the limit; one scan, no parsing.
    pub fn check_lines(&self, text: &str) -> Result<(), LimitError> {
        let count = requests(text);
        if count > self.max_lines {
            return Err(LimitError::TooManyLines {
                count,
                limit: self.max_lines,
                flag: self.flags.lines,
            });
        }
        Ok(())
    }

    /// Both checks.
    pub fn check(&self, text: &str) -> Result<(), LimitError> {
        self.check_size(text.len() as u64)?;
        self.check_lines(text)
    }
}

/// The requests in a file: its non-blank lines (blank ones are skipped by the parser).
pub fn requests(text: &str) -> usize {
    text.split('\n').filter(|l| !l.trim().is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: LimitFlags = LimitFlags {
        lines: "--max-lines",
        bytes: "--max-file-bytes",
    };

    #[test]
    fn limits_hold_at_the_limit_and_name_the_flag_above_it() {
        let limits = BatchLimits {
            max_lines: 3,
            max_file_bytes: 20,
            flags: FLAGS,
        };
        assert_eq!(limits.check("a\n\nb\r\nc\n"), Ok(()));
        let e = limits.check("a\nb\nc\nd").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("the file has 4 requests; a batch takes at most 3: split it into smaller files, or raise the limit with --max-lines")
        );
        assert_eq!(limits.check_size(20), Ok(()));
        let e = limits.check_size(21).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("the file is 21 bytes; a batch input file may be at most 20 bytes: split it into smaller files, or raise the limit with --max-file-bytes")
        );
    }
}
