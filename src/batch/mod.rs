//! Bulk batch jobs in OpenAI's Batch format: a JSONL file of chat requests goes through the
//! broker's queues one line per message, and the answers come back as output and error JSONL.
//!
//! - `format`: the input line rules and the output line shape.
//! - `output`: the resumable writer of the output and error files.
//! - `limits`: how many lines and bytes one batch may have.

pub mod cli;
pub mod collect;
pub mod format;
pub mod history;
pub mod job;
pub mod limits;
pub mod output;
pub mod submit;
