//! The DATA phase reader (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! We keep our own small state machine instead of `smtp_proto::DataReceiver`
//! for three reasons:
//!
//! - it must start *at the beginning of a line*: the CRLF that ended the DATA
//!   command counts, so an empty message (`.\r\n` straight after `354`) ends;
//!   `DataReceiver` starts with no line history and would miss it;
//! - it must bound memory: bytes past `max_message_size` are counted and
//!   discarded, never buffered, and the buffer grows only as far as the
//!   shared in-flight budget ([`super::budget`]) allows;
//! - the end-of-data rule is the security boundary against SMTP smuggling, so
//!   it is spelled out here: only `CRLF . CRLF` ends the message. A dot after
//!   a bare LF or bare CR, or followed by a bare LF, is ordinary content.

use super::budget::Reservation;

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
pub struct DataReader {
    state: State,
    body: Vec<u8>,
    /// Unstuffed bytes seen so far, including those discarded past the limit.
    size: u64,
    max_size: u64,
    /// Covers `body`'s capacity: the buffer never grows beyond it.
    reservation: Reservation,
    /// The budget could not cover the message: its bytes are only counted.
    over_budget: bool,
}

/// Initial allocation cap: a client cannot make us reserve `max_size` up front.
const INITIAL_CAPACITY: usize = 64 * 1024;

impl DataReader {
    /// A reader positioned right after the CRLF of the `DATA` command; its
    /// buffer draws on `reservation` (empty at first).
    pub fn new(max_size: u64, reservation: Reservation) -> DataReader {
        let mut reader = DataReader {
            state: State::LineStart,
            body: Vec::new(),
            size: 0,
            max_size,
            reservation,
            over_budget: false,
        };
        reader.make_room(INITIAL_CAPACITY.min(usize::try_from(max_size).unwrap_or(usize::MAX)));
        reader
    }

    /// A reader after a `DATA` line that ended in a bare LF: no CRLF has been
    /// seen, so a dot right away is content, not the end of data (only
    /// `CRLF . CRLF` ends a message, wherever it starts).
    pub fn after_bare_lf(max_size: u64, reservation: Reservation) -> DataReader {
        DataReader {
            state: State::Text,
            ..DataReader::new(max_size, reservation)
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
        // Keep what fits; past the limit the body will be refused anyway, so
        // stop growing it and just count from here on.
        let keep = &bytes[..usize::try_from(len.min(room)).unwrap_or(0)];
        if !keep.is_empty() && self.make_room(keep.len()) {
            self.body.extend_from_slice(keep);
        }
        self.size = self.size.saturating_add(len);
    }

    /// Ensures `body` can take `more` bytes without growing past what the
    /// reservation covers; false (and the body dropped) when the budget is spent.
    fn make_room(&mut self, more: usize) -> bool {
        if self.over_budget {
            return false;
        }
        let needed = self.body.len().saturating_add(more);
        if needed <= self.body.capacity() {
            return true;
        }
        // Double like Vec would, but never beyond the size limit.
        let max = usize::try_from(self.max_size).unwrap_or(usize::MAX);
        let target = needed
            .max(self.body.capacity().saturating_mul(2))
            .min(max.max(needed));
        if !self.reservation.grow_to(target as u64) {
            tracing::debug!(
                held = self.reservation.bytes(),
                wanted = target,
                "in-flight budget spent; discarding the rest of the message"
            );
            self.over_budget = true;
            self.body = Vec::new();
            self.reservation.release();
            return false;
        }
        self.body.reserve_exact(target - self.body.len());
        true
    }

    /// True when the shared budget could not hold the message (its body is gone).
    pub fn over_budget(&self) -> bool {
        self.over_budget
    }

    /// True when the message grew beyond `max_size` (its body is truncated).
    pub fn too_big(&self) -> bool {
        self.size > self.max_size
    }

    /// The unstuffed message, without the terminating `.CRLF`, and the
    /// reservation covering it (hold it until the message is stored).
    pub fn into_body(self) -> (Vec<u8>, Reservation) {
        (self.body, self.reservation)
    }
}

#[cfg(test)]
mod tests {
    use super::DataReader;
    use crate::smtp::budget::InflightBudget;

    /// Feeds `chunks` one by one; returns the body and the bytes left over
    /// after the terminator, or None if the message never ended.
    fn run(chunks: &[&[u8]], max: u64) -> Option<(Vec<u8>, Vec<u8>, bool)> {
        let mut r = DataReader::new(max, InflightBudget::new(1 << 30).reservation());
        for (n, c) in chunks.iter().enumerate() {
            if let Some(used) = r.feed(c) {
                let mut rest = c[used..].to_vec();
                for later in &chunks[n + 1..] {
                    rest.extend_from_slice(later);
                }
                let big = r.too_big();
                return Some((r.into_body().0, rest, big));
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
        let mut r = DataReader::after_bare_lf(100, InflightBudget::new(1 << 20).reservation());
        assert_eq!(r.feed(b".\r\nx\r\n.\r\nQUIT\r\n"), Some(9));
        assert_eq!(r.into_body().0, b".\r\nx\r\n");
    }

    #[test]
    fn over_limit_counts_but_does_not_grow() {
        let big = vec![b'a'; 1000];
        let (body, _, too_big) = run(&[&big, b"\r\n.\r\n"], 10).unwrap();
        assert!(too_big);
        assert_eq!(body.len(), 10);
    }

    #[test]
    fn over_budget_drops_the_body_gives_back_and_still_finds_the_end() {
        let budget = InflightBudget::new(256 * 1024);
        let mut held = budget.reservation();
        assert!(held.grow_to(100 * 1024));
        let mut r = DataReader::new(1 << 20, budget.reservation());
        let line = [b'a'; 1022];
        for _ in 0..200 {
            assert_eq!(r.feed(&line), None);
            assert_eq!(r.feed(b"\r\n"), None);
        }
        assert!(r.over_budget());
        assert!(!r.too_big());
        assert_eq!(r.feed(b".\r\nQUIT\r\n"), Some(3));
        let (body, reservation) = r.into_body();
        assert!(body.is_empty());
        assert_eq!(reservation.bytes(), 0);
        assert_eq!(budget.available_bytes(), 156 * 1024);
    }

    #[test]
    fn the_buffer_never_outgrows_its_reservation() {
        let budget = InflightBudget::new(8 << 20);
        let mut r = DataReader::new(1 << 20, budget.reservation());
        let chunk = vec![b'x'; 10_000];
        for _ in 0..90 {
            r.feed(&chunk);
            assert!(r.body.capacity() as u64 <= r.reservation.bytes());
        }
        assert!(!r.over_budget());
        assert_eq!(r.body.len(), 900_000);
    }
}
