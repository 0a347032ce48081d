//! The result files of a batch job, written so that collecting can stop at any moment and
//! start again: each custom_id lands at most once across both files, and the files only
//! ever hold whole JSON lines.
//!
//! The protocol with the caller: `write` buffers, `flush` writes and fsyncs, and only then
//! does the caller ack the queue messages. A crash before the ack redelivers the messages;
//! lines already on disk are skipped on the way back in, and a line torn by the crash is cut
//! off at open so its redelivered message writes it whole.

use super::format::OutputLine;
use serde::Deserialize;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Appends result lines to the output and error files, each custom_id at most once across
/// both, surviving restarts: opening reads the existing files' custom_ids first.
#[derive(Debug)]
pub struct OutputFiles {
    ok: Sink,
    err: Sink,
    /// Every custom_id in either file or waiting in either buffer: the at-most-once rule
    /// spans both files, and a redelivered message must not slip in before a flush.
    written: HashSet<String>,
}

impl OutputFiles {
    /// `output` is the results path; the error file is `error` (the lead passes
    /// `<output>.errors.jsonl` by default). Creates missing files and parent dirs.
    pub fn open(output: &Path, error: &Path) -> io::Result<Self> {
        if output == error {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: the results and the errors need two different files",
                    output.display()
                ),
            ));
        }
        let mut written = HashSet::new();
        let ok = Sink::open(output, &mut written)?;
        let err = Sink::open(error, &mut written)?;
        Ok(Self { ok, err, written })
    }

    /// Whether a line for `custom_id` is already written (ok or error, flushed or not).
    pub fn contains(&self, custom_id: &str) -> bool {
        self.written.contains(custom_id)
    }

    /// custom_ids in the output file, counting lines still in the buffer.
    pub fn written_ok(&self) -> usize {
        self.ok.count
    }

    /// custom_ids in the error file, counting lines still in the buffer.
    pub fn written_err(&self) -> usize {
        self.err.count
    }

    /// Writes the line to the right file unless its custom_id was written before; returns
    /// whether it wrote. Lines are buffered; `flush` makes them durable (write + fsync),
    /// and the caller acks the queue messages only after `flush` returns Ok.
    pub fn write(&mut self, line: &OutputLine) -> io::Result<bool> {
        if self.written.contains(&line.custom_id) {
            return Ok(false);
        }
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let sink = if line.is_error() {
            &mut self.err
        } else {
            &mut self.ok
        };
        sink.pending.extend_from_slice(&bytes);
        sink.count += 1;
        self.written.insert(line.custom_id.clone());
        Ok(true)
    }

    /// Writes and fsyncs both buffers. On error nothing half-written stays in a file, the
    /// lines stay buffered and a later `flush` tries again.
    pub fn flush(&mut self) -> io::Result<()> {
        let ok = self.ok.flush();
        let err = self.err.flush();
        ok.and(err)
    }
}

/// One of the two files.
#[derive(Debug)]
struct Sink {
    path: PathBuf,
    /// Opened for append, so every write lands at the end whatever was truncated before.
    file: File,
    /// The length known to hold whole, synced lines; a failed flush cuts the file back to it.
    durable: u64,
    /// Serialized lines not yet in the file.
    pending: Vec<u8>,
    /// Lines in the file plus lines in `pending`.
    count: usize,
    /// Set when a failed flush could not be undone: appending more would bury a partial
    /// line mid-file, so the files must be opened again (which cuts it off).
    poisoned: bool,
}

/// The one field a result line must have for resuming.
#[derive(Deserialize)]
struct Seen {
    custom_id: String,
}

impl Sink {
    /// Opens or creates `path`, records its custom_ids in `written` and cuts off a torn tail.
    fn open(path: &Path, written: &mut HashSet<String>) -> io::Result<Self> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(context)?;
        let existed = path.try_exists().map_err(context)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(context)?;
        let (whole, count) = read_ids(&file, path, written)?;
        if file.metadata().map_err(context)?.len() != whole {
            file.set_len(whole).map_err(context)?;
            file.sync_all().map_err(context)?;
        }
        if !existed {
            sync_dir(dir).map_err(context)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            durable: whole,
            pending: Vec::new(),
            count,
            poisoned: false,
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(format!(
                "{}: an earlier failed write could not be undone; open the result files again",
                self.path.display()
            )));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self
            .file
            .write_all(&self.pending)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.durable += self.pending.len() as u64;
                self.pending.clear();
                Ok(())
            }
            Err(e) => {
                self.poisoned = self.file.set_len(self.durable).is_err();
                Err(io::Error::new(
                    e.kind(),
                    format!("{}: writing results failed: {e}", self.path.display()),
                ))
            }
        }
    }
}

/// Reads the file's whole lines into `written`; gives the length they span (anything after
/// it is a torn last line) and how many new custom_ids they held.
fn read_ids(file: &File, path: &Path, written: &mut HashSet<String>) -> io::Result<(u64, usize)> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut whole, mut count, mut number) = (0u64, 0usize, 0usize);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok((whole, count));
        }
        number += 1;
        whole += n as u64;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let seen: Seen = serde_json::from_slice(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} line {number} is not a batch result line ({e}): fix or remove that line, or move the file away, then collect again",
                    path.display()
                ),
            )
        })?;
        if written.insert(seen.custom_id) {
            count += 1;
        }
    }
}

/// Makes a new file's directory entry durable, so a crash cannot lose a synced file.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    struct Files {
        _dir: tempfile::TempDir,
        ok: PathBuf,
        err: PathBuf,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("out.jsonl");
        let err = dir.path().join("out.jsonl.errors.jsonl");
        Files { _dir: dir, ok, err }
    }

    fn open(f: &Files) -> OutputFiles {
        OutputFiles::open(&f.ok, &f.err).expect("open")
    }

    fn ok(id: &str) -> OutputLine {
        OutputLine::ok(id, format!("req-{id}"), json!({"id": id}))
    }

    /// The custom_ids in a file, in order; every line must be whole JSON.
    fn ids_in(path: &Path) -> Vec<String> {
        let text = fs::read_to_string(path).expect("read");
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|line| {
                let line: OutputLine = serde_json::from_str(line).expect("whole line");
                line.custom_id
            })
            .collect()
    }

    fn append_raw(path: &Path, bytes: &str) {
        let mut file = OpenOptions::new().append(true).open(path).expect("open");
        file.write_all(bytes.as_bytes()).expect("write");
    }

    #[test]
    fn lines_go_to_the_right_file_only_after_flush() {
        let f = files();
        let mut out = open(&f);
        assert!(out.write(&ok("a")).expect("write"));
        assert!(out
            .write(&OutputLine::failed("b", "dead_lettered", "x"))
            .expect("write"));
        let http = OutputLine::http_error("c", "r", 429, json!({"error": {}}));
        assert!(out.write(&http).expect("write"));
        assert!(ids_in(&f.ok).is_empty(), "buffered until flush");
        out.flush().expect("flush");
        assert_eq!(ids_in(&f.ok), ["a"]);
        assert_eq!(ids_in(&f.err), ["b", "c"]);
        assert_eq!((out.written_ok(), out.written_err()), (1, 2));
    }

    #[test]
    fn a_custom_id_is_written_once_across_both_files() {
        let f = files();
        let mut out = open(&f);
        assert!(out.write(&ok("a")).expect("write"));
        assert!(
            !out.write(&ok("a")).expect("write"),
            "same file, before flush"
        );
        let failed = OutputLine::failed("a", "timeout", "x");
        assert!(!out.write(&failed).expect("write"), "other file");
        out.flush().expect("flush");
        assert_eq!(ids_in(&f.ok), ["a"]);
        assert!(ids_in(&f.err).is_empty());
    }

    #[test]
    fn reopening_resumes_without_duplicates() {
        let f = files();
        let mut out = open(&f);
        for line in [ok("a"), ok("b"), OutputLine::failed("c", "x", "y")] {
            out.write(&line).expect("write");
        }
        out.flush().expect("flush");
        drop(out);

        let mut out = open(&f);
        assert!(out.contains("a") && out.contains("b") && out.contains("c"));
        assert!(!out.contains("d"));
        assert_eq!((out.written_ok(), out.written_err()), (2, 1));
        assert!(!out.write(&ok("c")).expect("write"));
        assert!(!out
            .write(&OutputLine::failed("a", "x", "y"))
            .expect("write"));
        assert!(out.write(&ok("d")).expect("write"));
        out.flush().expect("flush");
        assert_eq!(ids_in(&f.ok), ["a", "b", "d"]);
        assert_eq!(ids_in(&f.err), ["c"]);
        assert_eq!((out.written_ok(), out.written_err()), (3, 1));
    }

    #[test]
    fn unflushed_lines_are_not_remembered_after_reopening() {
        let f = files();
        let mut out = open(&f);
        out.write(&ok("a")).expect("write");
        drop(out);
        let out = open(&f);
        assert!(!out.contains("a"));
        assert_eq!(out.written_ok(), 0);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_written_again() {
        let f = files();
        let mut out = open(&f);
        out.write(&ok("a")).expect("write");
        out.write(&OutputLine::failed("e", "x", "y"))
            .expect("write");
        out.flush().expect("flush");
        drop(out);
        let torn = serde_json::to_string(&ok("b")).expect("json");
        append_raw(&f.ok, &torn[..torn.len() / 2]);
        append_raw(&f.err, "{\"id\":\"batch_req_1\",\"custom_id\":\"f\"");

        let mut out = open(&f);
        assert!(out.contains("a") && out.contains("e"));
        assert!(!out.contains("b") && !out.contains("f"));
        assert_eq!(ids_in(&f.ok), ["a"], "cut at open");
        assert_eq!(ids_in(&f.err), ["e"], "cut at open");
        assert!(out.write(&ok("b")).expect("write"));
        out.flush().expect("flush");
        assert_eq!(ids_in(&f.ok), ["a", "b"]);
    }

    #[test]
    fn a_file_holding_only_a_torn_line_ends_up_empty() {
        let f = files();
        fs::write(&f.ok, "{\"custom_id\":").expect("write");
        let out = open(&f);
        assert_eq!(out.written_ok(), 0);
        assert_eq!(fs::read(&f.ok).expect("read"), b"");
    }

    #[test]
    fn missing_files_and_directories_are_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok_path = dir.path().join("a/b/out.jsonl");
        let err_path = dir.path().join("c/errors.jsonl");
        let mut out = OutputFiles::open(&ok_path, &err_path).expect("open");
        assert!(ok_path.is_file() && err_path.is_file());
        out.write(&ok("a")).expect("write");
        out.flush().expect("flush");
        assert_eq!(ids_in(&ok_path), ["a"]);
    }

    #[test]
    fn a_damaged_line_mid_file_stops_open_and_names_the_place() {
        let f = files();
        let line = serde_json::to_string(&ok("a")).expect("json");
        fs::write(&f.ok, format!("{line}\nnot json\n{line}\n")).expect("write");
        let error = OutputFiles::open(&f.ok, &f.err).expect_err("damaged");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let text = error.to_string();
        assert!(text.contains("out.jsonl line 2"), "{text}");
    }

    #[test]
    fn a_flush_that_cannot_be_undone_refuses_further_flushes() {
        let f = files();
        let mut out = open(&f);
        // A handle that can neither write nor truncate stands in for a failing disk.
        out.ok.file = File::open(&f.ok).expect("read-only");
        out.write(&ok("a")).expect("write");
        let first = out.flush().expect_err("write fails");
        assert!(
            first.to_string().contains("writing results failed"),
            "{first}"
        );
        let again = out.flush().expect_err("poisoned");
        assert!(
            again.to_string().contains("open the result files again"),
            "{again}"
        );
        assert!(ids_in(&f.ok).is_empty());
    }

    #[test]
    fn one_path_for_both_files_is_refused() {
        let f = files();
        let error = OutputFiles::open(&f.ok, &f.ok).expect_err("same path");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(!f.ok.exists(), "nothing created");
    }

    #[test]
    fn blank_lines_in_existing_files_are_skipped() {
        let f = files();
        let line = serde_json::to_string(&ok("a")).expect("json");
        fs::write(&f.ok, format!("{line}\n\n")).expect("write");
        let out = open(&f);
        assert!(out.contains("a"));
        assert_eq!(out.written_ok(), 1);
    }
}
