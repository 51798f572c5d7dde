//! One SMTP session: the command state machine (RFC 5321), PIPELINING
//! (RFC 2920), STARTTLS (RFC 3207), limits, timeouts and shutdown.
//!
//! The session is generic over its byte stream so the same code runs on the
//! plain TCP socket and, after STARTTLS, on the TLS stream. Parsing of a
//! single command line is delegated to `smtp_proto`; framing (line length),
//! the DATA phase, timeouts and every reply are ours.

use super::budget::InflightBudget;
use super::data::DataReader;
use crate::config::Config;
use crate::model::{Envelope, Source};
use crate::spool::Spool;
use smtp_proto::{Error as ParseError, MailFrom, RcptTo, Request};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Errors (bad commands, rejected recipients) tolerated per session before
/// we assume a broken or abusive client and hang up.
const MAX_ERRORS: u32 = 20;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What every session shares: configuration, the spool and the TLS setup.
pub(super) struct Shared {
    pub cfg: Arc<Config>,
    pub spool: Spool,
    /// Present when `smtp.tls_cert`/`tls_key` are configured.
    pub tls: Option<super::TlsSlot>,
    /// `smtp.max_inflight_bytes`: what all DATA buffers together may hold.
    pub budget: InflightBudget,
    /// Sender verification (`[auth]`); None when switched off.
    pub verifier: Option<Arc<crate::sender_auth::Verifier>>,
}

/// The two stages of shutdown, as seen by a session.
#[derive(Clone)]
pub(super) struct Signals {
    /// SIGTERM: sessions without an open transaction close now.
    pub shutdown: watch::Receiver<bool>,
    /// `shutdown_grace` elapsed: every session closes now.
    pub hard_stop: watch::Receiver<bool>,
}

/// An open mail transaction (after MAIL FROM was accepted).
#[derive(Debug)]
struct Transaction {
    /// Reverse path without brackets; empty for `<>`.
    mail_from: String,
    rcpt_to: Vec<String>,
}

/// Where the session is in the RFC 5321 command sequence.
#[derive(Debug)]
enum State {
    /// No EHLO/HELO yet (on connect, and again after STARTTLS).
    AwaitingHelo,
    /// Greeted, no transaction open: MAIL may start one.
    Ready,
    /// MAIL accepted; RCPT adds recipients, DATA needs at least one.
    Mail(Transaction),
}

/// What the command loop should do after a command was answered.
enum Next {
    Continue,
    /// 354 was queued: the following bytes are message content.
    Data,
    /// 220 was queued: upgrade the stream to TLS.
    StartTls,
    /// Close the connection after flushing (QUIT, too many errors).
    Close,
}

/// Why a session ends.
enum End {
    Closed,
    StartTls,
}

/// The result of waiting for more bytes from the peer.
enum Input {
    Bytes(usize),
    Eof,
    /// Send this 421 line and close.
    Abort(String),
}

struct Session {
    shared: Arc<Shared>,
    signals: Signals,
    peer: SocketAddr,
    state: State,
    /// Last EHLO/HELO argument (kept across transactions, cleared by STARTTLS).
    helo: String,
    tls_active: bool,
    errors: u32,
    /// Received bytes not yet processed (bounded by `max_line_length` + one read).
    input: Vec<u8>,
    /// Discarding an over-long command line until its LF.
    discarding_line: bool,
    /// Replies not yet written: PIPELINING answers a batch in one write.
    output: Vec<u8>,
    read_buf: Box<[u8]>,
    /// `smtp.session_timeout` after the connection was accepted: the session
    /// is closed then, however busy, so keep-alives cannot hold a slot forever.
    deadline: tokio::time::Instant,
}

/// Serves one accepted connection until it closes. Never panics on peer input;
/// I/O errors just end the session (they are logged at debug level).
#[tracing::instrument(name = "smtp", skip_all, fields(session = id, peer = %peer))]
pub(super) async fn serve_connection(
    shared: Arc<Shared>,
    signals: Signals,
    mut tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
) {
    tracing::debug!("connected");
    let hostname = shared.cfg.server.hostname.clone();
    let command_timeout = shared.cfg.smtp.command_timeout;
    let mut session = Session {
        shared: shared.clone(),
        signals,
        peer,
        state: State::AwaitingHelo,
        helo: String::new(),
        tls_active: false,
        errors: 0,
        input: Vec::new(),
        discarding_line: false,
        output: format!("220 {hostname} ESMTP postdesk\r\n").into_bytes(),
        read_buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
        deadline: tokio::time::Instant::now() + shared.cfg.smtp.session_timeout,
    };
    match session.run(&mut tcp).await {
        Ok(End::Closed) => {}
        Ok(End::StartTls) => {
            let Some(acceptor) = shared.tls.as_ref().map(|t| t.current()) else {
                return;
            };
            let handshake = tokio::time::timeout(command_timeout, acceptor.accept(tcp)).await;
            let mut tls = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!("TLS handshake timed out");
                    return;
                }
            };
            tracing::debug!("TLS established");
            session.tls_active = true;
            match session.run(&mut tls).await {
                Ok(End::Closed) => {}
                // Not offered again once in TLS; treat as closed.
                Ok(End::StartTls) => {}
                Err(e) => tracing::debug!(error = %e, "session I/O error"),
            }
        }
        Err(e) => tracing::debug!(error = %e, "session I/O error"),
    }
    tracing::debug!("disconnected");
}

impl Session {
    fn cfg(&self) -> &Config {
        &self.shared.cfg
    }

    fn hostname(&self) -> &str {
        &self.shared.cfg.server.hostname
    }

    fn reply(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// Queues an error reply and counts it; returns `Next::Close` (after a
    /// 421) once the client has made too many mistakes.
    fn error(&mut self, line: &str) -> Next {
        self.reply(line);
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            tracing::info!(errors = self.errors, "too many errors, closing");
            let bye = format!(
                "421 4.7.0 {} Too many errors, closing connection",
                self.hostname()
            );
            self.reply(&bye);
            return Next::Close;
        }
        Next::Continue
    }

    /// True while no mail transaction is open: the session may be closed
    /// right away on shutdown without losing anything.
    fn idle(&self) -> bool {
        !matches!(self.state, State::Mail(_))
    }

    /// The command loop. Runs until the connection should close or be
    /// upgraded to TLS; the greeting (or nothing, after TLS) is in `output`.
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> std::io::Result<End> {
        loop {
            // Answer every complete command already received (PIPELINING)...
            while let Some(line) = self.next_line() {
                // Only a DATA line ending in CRLF puts the message at a line start.
                let crlf = matches!(&line, Ok(l) if l.ends_with(b"\r\n"));
                let next = match line {
                    Ok(line) => self.command(&line),
                    Err(()) => self.error("500 5.5.2 Line too long"),
                };
                match next {
                    Next::Continue => {}
                    Next::Close => return self.close(stream).await,
                    Next::StartTls => {
                        self.flush(stream).await?;
                        if !self.input.is_empty() {
                            // Anything pipelined after STARTTLS was sent in
                            // clear text and must not be executed inside the
                            // TLS session (CVE-2011-0411).
                            tracing::info!(
                                bytes = self.input.len(),
                                "discarding data pipelined after STARTTLS"
                            );
                        }
                        self.input.clear();
                        self.discarding_line = false;
                        self.state = State::AwaitingHelo;
                        self.helo.clear();
                        return Ok(End::StartTls);
                    }
                    Next::Data => {
                        if let Some(end) = self.data(stream, crlf).await? {
                            return Ok(end);
                        }
                    }
                }
            }
            // ...then send their replies together and wait for more.
            self.flush(stream).await?;
            let timeout = self.cfg().smtp.command_timeout;
            match self.read_more(stream, timeout).await {
                Input::Bytes(n) => self.take_command_bytes(n),
                Input::Eof => return Ok(End::Closed),
                Input::Abort(line) => {
                    self.reply(&line);
                    return self.close(stream).await;
                }
            }
        }
    }

    /// Appends `n` freshly read bytes to the command buffer, dropping the
    /// tail of an over-long line instead of buffering it.
    fn take_command_bytes(&mut self, n: usize) {
        let chunk = &self.read_buf[..n];
        if !self.discarding_line {
            self.input.extend_from_slice(chunk);
        } else if let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            // Keep the LF: `next_line` then reports the over-long line.
            self.input.extend_from_slice(&chunk[pos..]);
        }
    }

    /// Takes the next complete command line from `input`. `Err(())` stands
    /// for a line longer than `max_line_length` (already discarded).
    fn next_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        let max = self.cfg().smtp.max_line_length;
        match self.input.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let line: Vec<u8> = self.input.drain(..=pos).collect();
                if std::mem::take(&mut self.discarding_line) || line.len() > max {
                    Some(Err(()))
                } else {
                    Some(Ok(line))
                }
            }
            None => {
                if self.input.len() > max {
                    // No LF yet and already too long: stop buffering.
                    self.input.clear();
                    self.discarding_line = true;
                }
                None
            }
        }
    }

    /// Parses and answers one command line (ending in LF).
    fn command(&mut self, line: &[u8]) -> Next {
        let verb = line
            .split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        // Extensions we do not offer; answered before parsing so their
        // arguments cannot produce confusing syntax errors.
        match verb.as_slice() {
            b"AUTH" => return self.error("502 5.5.1 Authentication not offered"),
            b"LHLO" | b"BDAT" | b"ETRN" | b"ATRN" | b"BURL" => {
                return self.error("502 5.5.1 Command not implemented");
            }
            _ => {}
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => return self.parse_error(e),
        };
        tracing::trace!(command = request.name(), "command");
        match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data_command(),
            Request::Rset => {
                if matches!(self.state, State::Mail(_)) {
                    self.state = State::Ready;
                }
                self.reply("250 2.0.0 Ok");
                Next::Continue
            }
            Request::Noop { .. } => {
                self.reply("250 2.0.0 Ok");
                Next::Continue
            }
            Request::Quit => {
                self.reply("221 2.0.0 Bye");
                Next::Close
            }
            Request::Vrfy { .. } => {
                self.reply(
                    "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
                );
                Next::Continue
            }
            Request::Expn { .. } => {
                self.reply("502 5.5.1 EXPN not supported");
                Next::Continue
            }
            Request::Help { .. } => {
                self.reply("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS");
                Next::Continue
            }
            Request::StartTls => self.starttls(),
            Request::Lhlo { .. }
            | Request::Bdat { .. }
            | Request::Auth { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.error("502 5.5.1 Command not implemented"),
        }
    }

    fn parse_error(&mut self, e: ParseError) -> Next {
        let line = match e {
            ParseError::UnknownCommand => "500 5.5.1 Error: command not recognized".to_string(),
            ParseError::SyntaxError { syntax } => format!("501 5.5.4 Syntax: {syntax}"),
            ParseError::InvalidSenderAddress => "501 5.1.7 Bad sender address syntax".to_string(),
            ParseError::InvalidRecipientAddress => {
                "501 5.1.3 Bad recipient address syntax".to_string()
            }
            ParseError::InvalidParameter { param } => {
                format!("501 5.5.4 Invalid parameter {param}")
            }
            ParseError::UnsupportedParameter { param } => {
                format!("555 5.5.4 Unsupported parameter {}", printable(&param))
            }
            ParseError::NeedsMoreData { .. }
            | ParseError::ResponseTooLong
            | ParseError::InvalidResponse { .. } => "500 5.5.2 Syntax error".to_string(),
        };
        self.error(&line)
    }

    fn ehlo(&mut self, host: &str, extended: bool) -> Next {
        self.helo = host.to_string();
        // RFC 5321 4.1.4: EHLO/HELO also resets any transaction.
        self.state = State::Ready;
        let hostname = self.hostname().to_string();
        if !extended {
            self.reply(&format!("250 {hostname}"));
            return Next::Continue;
        }
        let mut lines = vec![
            hostname,
            format!("SIZE {}", self.cfg().smtp.max_message_size),
            "PIPELINING".to_string(),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if self.shared.tls.is_some() && !self.tls_active {
            lines.push("STARTTLS".to_string());
        }
        let last = lines.len() - 1;
        for (i, l) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.output
                .extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
        }
        Next::Continue
    }

    fn mail(&mut self, from: MailFrom<Cow<'_, str>>) -> Next {
        match self.state {
            State::AwaitingHelo => return self.error("503 5.5.1 Error: send HELO/EHLO first"),
            State::Mail(_) => return self.error("503 5.5.1 Error: nested MAIL command"),
            State::Ready => {}
        }
        let max = self.cfg().smtp.max_message_size;
        // `size` is usize::MAX when SIZE= had no digits or overflowed.
        if from.size as u64 > max {
            crate::counters::SMTP_REFUSED_SIZE.inc();
            self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            return Next::Continue;
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.error("555 5.5.4 BODY=BINARYMIME not supported");
        }
        tracing::debug!(from = %from.address, "MAIL");
        self.state = State::Mail(Transaction {
            mail_from: from.address.into_owned(),
            rcpt_to: Vec::new(),
        });
        self.reply("250 2.1.0 Ok");
        Next::Continue
    }

    fn rcpt(&mut self, to: RcptTo<Cow<'_, str>>) -> Next {
        let max = self.cfg().smtp.max_recipients;
        let known = self.cfg().accepts(&to.address);
        let State::Mail(tx) = &mut self.state else {
            return self.error("503 5.5.1 Error: need MAIL command");
        };
        if tx
            .rcpt_to
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&to.address))
        {
            self.reply("250 2.1.5 Ok");
            return Next::Continue;
        }
        if tx.rcpt_to.len() >= max {
            self.reply("452 4.5.3 Too many recipients");
            return Next::Continue;
        }
        if !known {
            tracing::debug!(to = %to.address, "unknown recipient");
            crate::counters::SMTP_REFUSED_RECIPIENT.inc();
            let line = format!(
                "550 5.1.1 <{}>: Recipient address rejected: no such mailbox here",
                printable(&to.address)
            );
            return self.error(&line);
        }
        tx.rcpt_to.push(to.address.into_owned());
        self.reply("250 2.1.5 Ok");
        Next::Continue
    }

    fn data_command(&mut self) -> Next {
        match &self.state {
            State::Mail(tx) if !tx.rcpt_to.is_empty() => {
                self.reply("354 End data with <CR><LF>.<CR><LF>");
                Next::Data
            }
            State::Mail(_) => self.error("503 5.5.1 Error: need RCPT command"),
            State::AwaitingHelo | State::Ready => self.error("503 5.5.1 Error: need MAIL command"),
        }
    }

    fn starttls(&mut self) -> Next {
        if self.tls_active {
            return self.error("503 5.5.1 Error: TLS already active");
        }
        if self.shared.tls.is_none() {
            return self.error("454 4.7.0 TLS not available");
        }
        self.reply("220 2.0.0 Ready to start TLS");
        Next::StartTls
    }

    /// Receives the message after 354, stores it and answers. Returns
    /// `Some(end)` when the session must end (timeout, shutdown, EOF).
    /// `crlf`: the DATA line ended in CRLF (else a bare LF, which starts no line).
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        crlf: bool,
    ) -> std::io::Result<Option<End>> {
        let max = self.cfg().smtp.max_message_size;
        let reservation = self.shared.budget.reservation();
        let mut reader = if crlf {
            DataReader::new(max, reservation)
        } else {
            DataReader::after_bare_lf(max, reservation)
        };
        // Bytes pipelined behind DATA are already message content.
        let buffered = std::mem::take(&mut self.input);
        let mut done = match reader.feed(&buffered) {
            Some(used) => {
                self.input = buffered[used..].to_vec();
                true
            }
            None => false,
        };
        while !done {
            self.flush(stream).await?;
            let timeout = self.cfg().smtp.data_timeout;
            match self.read_more(stream, timeout).await {
                Input::Bytes(n) => {
                    if let Some(used) = reader.feed(&self.read_buf[..n]) {
                        // Whatever follows the terminator is the next command.
                        self.input.extend_from_slice(&self.read_buf[used..n]);
                        done = true;
                    }
                }
                Input::Eof => {
                    tracing::info!("connection closed during DATA");
                    return Ok(Some(End::Closed));
                }
                Input::Abort(line) => {
                    self.reply(&line);
                    return self.close(stream).await.map(Some);
                }
            }
        }

        let State::Mail(tx) = std::mem::replace(&mut self.state, State::Ready) else {
            // `data_command` only returns Next::Data in State::Mail.
            return Ok(None);
        };
        if reader.too_big() {
            tracing::info!(
                limit = self.cfg().smtp.max_message_size,
                "message too big, refused"
            );
            crate::counters::SMTP_REFUSED_SIZE.inc();
            self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            return Ok(None);
        }
        if reader.over_budget() {
            // Nothing was stored and the client was told to retry: no loss.
            tracing::warn!(
                budget = self.cfg().smtp.max_inflight_bytes,
                "in-flight message budget spent, message deferred"
            );
            crate::counters::SMTP_DEFERRED_BUDGET.inc();
            self.reply("452 4.3.1 Insufficient system storage, try again later");
            return Ok(None);
        }
        // The reservation is held until the spool has taken the bytes.
        let (raw, _reservation) = reader.into_body();
        let (raw, sender_auth) = self.verify_sender(raw, &tx.mail_from).await;
        let size = raw.len();
        let envelope = Envelope {
            mail_from: tx.mail_from,
            rcpt_to: tx.rcpt_to,
            received_at: crate::clock::Clock::system().now(),
            source: Source::Smtp,
            peer: self.peer.to_string(),
            helo: self.helo.clone(),
            imap: None,
            sender_auth,
            imported_as: None,
        };
        let rcpts = envelope.rcpt_to.len();
        // The 250 is only sent once the spool says the message is durable.
        match self.shared.spool.submit(envelope, raw).await {
            Ok(seq) => {
                tracing::info!(seq, size, rcpts, "message accepted");
                crate::counters::SMTP_ACCEPTED.inc();
                self.reply(&format!("250 2.0.0 Ok: queued as {seq}"));
            }
            Err(e) => {
                tracing::error!(error = %e, size, "could not spool message");
                crate::counters::SMTP_DEFERRED_STORE.inc();
                self.reply("451 4.3.0 Temporary failure: could not store message, try again later");
            }
        }
        Ok(None)
    }

    /// Verifies the sender (`[auth]`) before the commit: the bytes to store
    /// (our Authentication-Results prepended) and the verdict. Unverified,
    /// as received, when verification is off, when the client is on
    /// loopback (local tools, an MTA in front; unless `auth.verify_loopback`)
    /// or this is `postdesk deliver` handing over mail another MTA received
    /// (a loopback client greeting with our own hostname): their client
    /// address proves nothing.
    async fn verify_sender(
        &self,
        raw: Vec<u8>,
        mail_from: &str,
    ) -> (Vec<u8>, Option<crate::model::SenderVerdict>) {
        let Some(verifier) = &self.shared.verifier else {
            return (raw, None);
        };
        if self.peer.ip().is_loopback()
            && (!self.shared.cfg.auth.verify_loopback
                || self.helo.eq_ignore_ascii_case(self.hostname()))
        {
            return (raw, None);
        }
        let checked = verifier
            .check(&raw, self.peer.ip(), &self.helo, mail_from)
            .await;
        (checked.raw, Some(checked.verdict))
    }

    /// Waits for bytes from the peer, giving up on timeout or shutdown.
    async fn read_more<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        timeout: Duration,
    ) -> Input {
        let hostname = self.shared.cfg.server.hostname.clone();
        let idle = self.idle();
        let shutdown = &mut self.signals.shutdown;
        let hard_stop = &mut self.signals.hard_stop;
        tokio::select! {
            biased;
            () = became_true(hard_stop) => {
                tracing::info!("shutdown grace elapsed, closing");
                Input::Abort(format!("421 4.3.2 {hostname} Service shutting down"))
            }
            () = became_true(shutdown), if idle => {
                tracing::info!("shutting down, closing idle session");
                Input::Abort(format!("421 4.3.2 {hostname} Service shutting down"))
            }
            () = tokio::time::sleep_until(self.deadline) => {
                tracing::info!(
                    limit_secs = self.shared.cfg.smtp.session_timeout.as_secs_f64(),
                    "session time limit reached, closing"
                );
                Input::Abort(format!("421 4.4.2 {hostname} Session time limit reached, closing connection"))
            }
            r = tokio::time::timeout(timeout, stream.read(&mut self.read_buf)) => match r {
                Ok(Ok(0)) => Input::Eof,
                Ok(Ok(n)) => Input::Bytes(n),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "read failed");
                    Input::Eof
                }
                Err(_) => {
                    tracing::info!(timeout_secs = timeout.as_secs_f64(), "timeout, closing");
                    Input::Abort(format!("421 4.4.2 {hostname} Timeout, closing connection"))
                }
            },
        }
    }

    /// Writes queued replies; a peer that does not read them within the
    /// command timeout is dropped.
    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let timeout = self.cfg().smtp.command_timeout;
        let write = async {
            stream.write_all(&self.output).await?;
            stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "peer does not read replies",
                ));
            }
        }
        self.output.clear();
        Ok(())
    }

    /// Flushes the final replies and closes the stream.
    async fn close<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<End> {
        self.flush(stream).await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.shutdown()).await;
        Ok(End::Closed)
    }
}

/// Resolves once the watched flag is true; never, if its sender is gone.
async fn became_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|&v| v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Peer-supplied text echoed in a reply: printable ASCII only, bounded.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(256)
        .collect()
}
