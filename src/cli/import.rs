//! `postdesk import mbox FILE`: a shared mailbox's history into tickets,
//! through the running daemon (`POST /api/v1/import`, one message per
//! request), which owns the store: threading, dedup and the spool are the
//! daemon's, and intake goes on meanwhile. Each message is sent as it is
//! read, so a mailbox of any size is never held in memory; a repeated
//! import sends everything again and the daemon recognises what it holds.
//! `--status resolved|closed` imports the history as finished work.

use crate::config::Config;
use crate::import::HistoryStatus;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

/// One message of an mbox: its bytes (CRLF, `>From ` unescaped), where it
/// starts and the sender of its `From ` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    /// 1-based line number of its `From ` line.
    pub line: usize,
    pub sender: String,
    pub raw: Vec<u8>,
}

/// Reads the messages of an mbox (mboxrd or mboxo) one after the other.
/// A `From ` line starts a message when it is the first one or follows an
/// empty line (so an unescaped `From ` inside a paragraph stays
/// text); one level of `>` is taken off `>From `, `>>From ` … (mboxrd; in
/// mboxo only `>From ` was escaped, and the two agree on it). Lines end in
/// CRLF as in SMTP; the empty line that separates messages is dropped.
pub struct MboxReader<R> {
    input: R,
    line_no: usize,
    pending: Option<(usize, String)>,
    prev_blank: bool,
    /// Text before the first `From ` line (not a message): its first line.
    pub leading_garbage: Option<usize>,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R) -> MboxReader<R> {
        MboxReader {
            input,
            line_no: 0,
            pending: None,
            prev_blank: true,
            leading_garbage: None,
        }
    }

    fn sender_of(line: &[u8]) -> String {
        String::from_utf8_lossy(&line[5..])
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = std::io::Result<MboxMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut current = self.pending.take();
        let mut raw = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match self.input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            self.line_no += 1;
            let text = line
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(&line);
            // Before the first message any `From ` line starts one.
            if text.starts_with(b"From ") && (self.prev_blank || current.is_none()) {
                let start = (self.line_no, Self::sender_of(text));
                self.prev_blank = false;
                match current {
                    Some((line, sender)) => {
                        self.pending = Some(start);
                        return Some(Ok(finish(line, sender, raw)));
                    }
                    None => {
                        current = Some(start);
                        continue;
                    }
                }
            }
            self.prev_blank = text.is_empty();
            if current.is_none() {
                if !text.iter().all(u8::is_ascii_whitespace) && self.leading_garbage.is_none() {
                    self.leading_garbage = Some(self.line_no);
                }
                continue;
            }
            let quoted = text.iter().take_while(|b| **b == b'>').count();
            let body = if quoted > 0 && text[quoted..].starts_with(b"From ") {
                &text[1..]
            } else {
                text
            };
            raw.extend_from_slice(body);
            raw.extend_from_slice(b"\r\n");
        }
        current.map(|(line, sender)| Ok(finish(line, sender, raw)))
    }
}

fn finish(line: usize, sender: String, mut raw: Vec<u8>) -> MboxMessage {
    if raw.ends_with(b"\r\n\r\n") {
        raw.truncate(raw.len() - 2);
    }
    MboxMessage { line, sender, raw }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub read: usize,
    pub spooled: usize,
    pub already_stored: usize,
    /// Line of each skipped message and why.
    pub malformed: Vec<(usize, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// The daemon did not take a message: the import stops there (nothing
    /// after it was sent; running it again resumes, what is stored is skipped).
    #[error("stopped at the message on line {line} after {done} messages: {why}")]
    Stopped {
        line: usize,
        done: usize,
        why: String,
    },
}

/// Sends every message of the mbox `file` to the running daemon, reporting
/// progress on `progress` every 500 messages and each skipped message. The
/// tickets it opens take `status` (new unless history is imported as finished).
pub fn import_mbox(
    cfg: &Config,
    token_file: Option<&Path>,
    file: &Path,
    status: HistoryStatus,
    progress: &mut dyn std::io::Write,
) -> Result<Summary, ImportError> {
    let addr = super::api_client::api_address(cfg).map_err(ImportError::Config)?;
    let token = super::backup::read_token(cfg, token_file)
        .map_err(|e| ImportError::Config(e.to_string()))?;
    let read_err = |source| ImportError::Read {
        file: file.display().to_string(),
        source,
    };
    let input = std::io::BufReader::new(std::fs::File::open(file).map_err(read_err)?);
    let mut reader = MboxReader::new(input);
    let mut summary = Summary::default();
    for message in reader.by_ref() {
        let m = message.map_err(read_err)?;
        summary.read += 1;
        let mut path = format!(
            "/api/v1/import?from={}",
            super::api_client::encode(&m.sender)
        );
        // New is the daemon's default: its requests stay as they were.
        if status != HistoryStatus::New {
            path.push_str(&format!("&status={}", status.as_str()));
        }
        let stopped = |why: String, s: &Summary| ImportError::Stopped {
            line: m.line,
            done: s.read - 1,
            why,
        };
        let answer = super::api_client::request_with_body(
            addr,
            &token,
            "POST",
            &path,
            &m.raw,
            Duration::from_secs(60),
        )
        .map_err(|e| stopped(e.to_string(), &summary))?;
        match answer.status {
            202 => summary.spooled += 1,
            200 => summary.already_stored += 1,
            400 => {
                let why = answer.error_text();
                let _ = writeln!(progress, "line {}: skipped: {why}", m.line);
                summary.malformed.push((m.line, why));
            }
            _ => return Err(stopped(answer.error_text(), &summary)),
        }
        if summary.read % 500 == 0 {
            let _ = writeln!(
                progress,
                "{} messages: {} new, {} already stored, {} skipped",
                summary.read,
                summary.spooled,
                summary.already_stored,
                summary.malformed.len()
            );
        }
    }
    if let Some(line) = reader.leading_garbage {
        let why = "text before the first \"From \" line is not a message".to_string();
        let _ = writeln!(progress, "line {line}: skipped: {why}");
        summary.malformed.push((line, why));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(mbox: &str) -> Vec<MboxMessage> {
        MboxReader::new(mbox.as_bytes())
            .collect::<std::io::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn splits_unescapes_and_ends_lines_in_crlf() {
        let mbox = "From ann@example.org Thu Nov 26 10:00:00 2026\n\
                    Subject: one\n\
                    \n\
                    >From the start\n\
                    >>From deeper\n\
                    From inside a paragraph stays\n\
                    \n\
                    From bob@example.org Thu Nov 26 11:00:00 2026\n\
                    Subject: two\r\n\
                    \r\n\
                    body\r\n";
        let got = read(mbox);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].line, 1);
        assert_eq!(got[0].sender, "ann@example.org");
        assert_eq!(
            String::from_utf8(got[0].raw.clone()).unwrap(),
            "Subject: one\r\n\r\nFrom the start\r\n>From deeper\r\nFrom inside a paragraph stays\r\n"
        );
        assert_eq!(got[1].line, 8);
        assert_eq!(got[1].sender, "bob@example.org");
        assert_eq!(got[1].raw, b"Subject: two\r\n\r\nbody\r\n");
    }

    #[test]
    fn leading_text_is_noticed_and_an_empty_file_has_no_messages() {
        let mut r = MboxReader::new("junk\nFrom a@b Thu\nSubject: x\n\nbody\n".as_bytes());
        assert_eq!(
            r.next().unwrap().unwrap().raw,
            b"Subject: x\r\n\r\nbody\r\n"
        );
        assert!(r.next().is_none());
        assert_eq!(r.leading_garbage, Some(1));
        assert!(read("").is_empty());
    }
}
