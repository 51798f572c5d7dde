//! The DATA phase reader (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! We keep our own small state machine instead of `smtp_proto::DataReceiver`
//! for three reasons:
//!
//! - it must start *at the beginning of a line*: the CRLF that ended the DATA
//!   command counts, so an empty message (`.\r\n` straight after `354`) ends;
//!   `DataReceiver` starts with no line history and would miss it;
//! - it must bound memory: bytes past `max_message_size` are counted and
//!   discarded, never buffered;
//! - the end-of-data rule is the security boundary against SMTP smuggling, so
//!   it is spelled out here: only `CRLF . CRLF` ends the message. A dot after
//!   a bare LF or bare CR, or followed by a bare LF, is ordinary content.

/// Where we are relative to the `CRLF . CRLF` terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the middle of a line.
    Text,
    /// The previous byte was CR (it has been stored).
    Cr,
    /// The previous two bytes were CRLF: a new line starts here.
    LineStart,
    /// `CRLF .` seen; the dot is held back (it is either the terminator or
    /// a transparency dot to remove).
    Dot,
    /// `CRLF . CR` seen; the CR is held back.
    DotCr,
    /// `CRLF . CRLF` seen: the message is complete.
    Done,
}

/// Incremental, bounded reader of a DATA body with dot-unstuffing.
#[derive(Debug)]
pub struct DataReader {
    state: State,
    body: Vec<u8>,
    /// Unstuffed bytes seen so far, including those discarded past the limit.
    size: u64,
    max_size: u64,
}

/// Initial allocation cap: a client cannot make us reserve `max_size` up front.
const INITIAL_CAPACITY: usize = 64 * 1024;

impl DataReader {
    /// A reader positioned right after the CRLF of the `DATA` command.
    pub fn new(max_size: u64) -> DataReader {
        DataReader {
            state: State::LineStart,
            body: Vec::with_capacity(
                INITIAL_CAPACITY.min(usize::try_from(max_size).unwrap_or(usize::MAX)),
            ),
            size: 0,
            max_size,
        }
    }

    /// A reader after a `DATA` line that ended in a bare LF: no CRLF has been
    /// seen, so a dot right away is content, not the end of data (only
    /// `CRLF . CRLF` ends a message, wherever it starts).
    pub fn after_bare_lf(max_size: u64) -> DataReader {
        DataReader {
            state: State::Text,
            ..DataReader::new(max_size)
        }
    }

    /// Feeds bytes from the wire. Returns how many bytes of `input` belong to
    /// the message (including the terminator) once the end of data has been
    /// seen, or `None` if all of `input` was consumed and more is needed.
    /// Bytes after the returned count belong to the next command.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                // Fast path: copy everything up to the next CR in one go.
                let rest = &input[i..];
                match rest.iter().position(|&b| b == b'\r') {
                    Some(pos) => {
                        self.push_slice(&rest[..=pos]);
                        self.state = State::Cr;
                        i += pos + 1;
                    }
                    None => {
                        self.push_slice(rest);
                        i = input.len();
                    }
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                State::Cr => {
                    self.push_slice(&[b]);
                    match b {
                        b'\n' => State::LineStart,
                        b'\r' => State::Cr,
                        _ => State::Text,
                    }
                }
                State::LineStart => match b {
                    b'.' => State::Dot,
                    _ => self.plain(b),
                },
                State::Dot => match b {
                    b'\r' => State::DotCr,
                    // Transparency: a leading dot followed by anything else
                    // (including another dot or a bare LF) is removed.
                    _ => self.plain(b),
                },
                State::DotCr => {
                    if b == b'\n' {
                        self.state = State::Done;
                        return Some(i);
                    }
                    // `CRLF . CR x`: the dot was stuffing; the CR is content.
                    self.push_slice(b"\r");
                    match b {
                        b'\r' => {
                            self.push_slice(b"\r");
                            State::Cr
                        }
                        _ => self.plain(b),
                    }
                }
                // Text is normally taken by the fast path above.
                State::Text => self.plain(b),
                // Nothing more belongs to a finished message.
                State::Done => return Some(i - 1),
            };
        }
        None
    }

    /// Stores an ordinary content byte and returns the following state.
    fn plain(&mut self, b: u8) -> State {
        self.push_slice(&[b]);
        if b == b'\r' { State::Cr } else { State::Text }
    }

    fn push_slice(&mut self, bytes: &[u8]) {
        let len = bytes.len() as u64;
        let room = self.max_size.saturating_sub(self.size);
        if len <= room {
            self.body.extend_from_slice(bytes);
        } else if room > 0 {
            // Keep what fits; the body will be refused anyway, so stop
            // growing it and just count from here on.
            self.body
                .extend_from_slice(&bytes[..usize::try_from(room).unwrap_or(0)]);
        }
        self.size = self.size.saturating_add(len);
    }

    /// True when the message grew beyond `max_size` (its body is truncated).
    pub fn too_big(&self) -> bool {
        self.size > self.max_size
    }

    /// The unstuffed message, without the terminating `.CRLF`.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::DataReader;

    /// Feeds `chunks` one by one; returns the body and the bytes left over
    /// after the terminator, or None if the message never ended.
    fn run(chunks: &[&[u8]], max: u64) -> Option<(Vec<u8>, Vec<u8>, bool)> {
        let mut r = DataReader::new(max);
        for (n, c) in chunks.iter().enumerate() {
            if let Some(used) = r.feed(c) {
                let mut rest = c[used..].to_vec();
                for later in &chunks[n + 1..] {
                    rest.extend_from_slice(later);
                }
                let big = r.too_big();
                return Some((r.into_body(), rest, big));
            }
        }
        None
    }

    #[test]
    fn empty_message_ends_immediately() {
        let (body, rest, _) = run(&[b".\r\nQUIT\r\n"], 100).unwrap();
        assert_eq!(body, b"");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn unstuffs_and_ends_at_crlf_dot_crlf_across_chunks() {
        let (body, rest, _) = run(&[b"a\r\n..b\r\n.", b"\r", b"\nX"], 100).unwrap();
        assert_eq!(body, b"a\r\n.b\r\n");
        assert_eq!(rest, b"X");
    }

    #[test]
    fn bare_lf_or_cr_dots_do_not_end() {
        for s in [
            &b"x\n.\ny"[..],
            b"x\n.\r\ny",
            b"x\r.\r\ny",
            b"x\r\n.\ny",
            b"x\r.\ry",
        ] {
            assert!(run(&[s], 100).is_none(), "{s:?} ended the message");
        }
        let (body, _, _) = run(&[b"x\r\n.\r.\r\n", b".\r\n"], 100).unwrap();
        assert_eq!(body, b"x\r\n\r.\r\n");
    }

    /// Found by fuzzing: after `DATA` + bare LF, `.CRLF` is not an end of data.
    #[test]
    fn after_bare_lf_a_leading_dot_is_content() {
        let mut r = DataReader::after_bare_lf(100);
        assert_eq!(r.feed(b".\r\nx\r\n.\r\nQUIT\r\n"), Some(9));
        assert_eq!(r.into_body(), b".\r\nx\r\n");
    }

    #[test]
    fn over_limit_counts_but_does_not_grow() {
        let big = vec![b'a'; 1000];
        let (body, _, too_big) = run(&[&big, b"\r\n.\r\n"], 10).unwrap();
        assert!(too_big);
        assert_eq!(body.len(), 10);
    }
}
