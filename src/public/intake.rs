//! What the public forms share: the customer's words become a MIME message
//! committed to the spool (the same door as mail, so the same path follows:
//! threading, routing, SLA, acknowledgement), the envelope saying which
//! form it came from; and the request's language, origin check and files.

use super::PublicState;
use super::multipart::Part;
use super::texts::{self, Texts};
use crate::model::{MessageSeq, Source, TicketId};
use crate::outbound::compose::{self, Attachment, Kind, Outgoing};
use axum::http::{HeaderMap, header};

/// A customer's message from a public form, checked.
pub struct Submission {
    pub name: String,
    /// The customer's address (syntax-checked).
    pub email: String,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// Which form: [`Source::WebForm`] or [`Source::StatusLink`].
    pub source: Source,
    /// The client, for the record (`Envelope::peer`).
    pub peer: String,
}

/// Why a submission was not taken.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("no [[mailbox]] configured")]
    NoMailbox,
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
}

/// Commits `s` to the spool as the customer's message; resolves after the
/// commit. Then waits up to about five seconds for the processor to take
/// it: the ticket it joined or opened, if it did by then.
pub async fn submit(
    state: &PublicState,
    s: Submission,
) -> Result<(MessageSeq, Option<TicketId>), IntakeError> {
    let cfg = &state.cfg;
    let mailbox = cfg.mailboxes.first().ok_or(IntakeError::NoMailbox)?;
    let now = state.clock.now();
    let mut nonce = [0u8; 12];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
    let nonce = crate::token::base32(&nonce).to_ascii_lowercase();
    let raw = compose::render(
        &Outgoing {
            kind: Kind::OnBehalf,
            from: (s.name, s.email.clone()),
            to: mailbox.address.clone(),
            cc: Vec::new(),
            reply_to: None,
            subject: s.subject,
            message_id: format!("web.{nonce}@{}", cfg.server.hostname),
            date: now,
            in_reply_to: None,
            references: Vec::new(),
            body: format!("{}\n", s.body.trim_end()),
            attachments: &s.attachments,
            extra_headers: Vec::new(),
        },
        &cfg.server.hostname,
    );
    let envelope = crate::model::Envelope {
        mail_from: s.email,
        rcpt_to: vec![mailbox.address.clone()],
        received_at: now,
        source: s.source,
        peer: s.peer,
        helo: String::new(),
        imap: None,
        sender_auth: None,
        imported_as: None,
    };
    let seq = state.spool.submit(envelope, raw).await?;
    Ok((seq, ticket_of(state, seq).await))
}

/// The ticket message `seq` joined, once the processor took it (about
/// five seconds at most; None after that or on a storage error, which is
/// logged: the message is committed either way).
async fn ticket_of(state: &PublicState, seq: MessageSeq) -> Option<TicketId> {
    for _ in 0..250 {
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || store.message(seq)).await {
            Ok(Ok(Some(m))) if m.ticket.is_some() => return m.ticket,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, seq, "reading a submitted message failed");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, seq, "reading a submitted message failed");
                return None;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

/// The language of a request: `?lang=`, else Accept-Language.
pub fn language(headers: &HeaderMap, query: Option<&str>) -> &'static Texts {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    texts::pick(query, accept)
}

/// Whether the request came from one of our own pages (Origin and
/// Sec-Fetch-Site, as the agents' forms check).
pub fn same_origin(state: &PublicState, headers: &HeaderMap) -> bool {
    let https = state.urls.base.starts_with("https://");
    crate::web::csrf::same_origin(headers, https).is_ok()
}

/// The first text field `name` of a form.
pub fn field(parts: &[Part], name: &str) -> String {
    parts
        .iter()
        .find(|p| p.name == name && p.filename.is_none())
        .map(Part::text)
        .unwrap_or_default()
}

/// The attachments add up to more than the limit.
#[derive(Debug)]
pub struct TooLarge;

/// The files of the `attachment` inputs (empty inputs skipped); Err when
/// they add up to more than `max` bytes.
pub fn attachments(parts: Vec<Part>, max: u64) -> Result<Vec<Attachment>, TooLarge> {
    let mut total: u64 = 0;
    let mut out = Vec::new();
    for p in parts {
        if p.name != "attachment" {
            continue;
        }
        let Some(filename) = p.filename else { continue };
        if filename.is_empty() && p.data.is_empty() {
            continue;
        }
        total = total.saturating_add(p.data.len() as u64);
        if total > max {
            return Err(TooLarge);
        }
        // The browser's name and type, cleaned for a header; never a path.
        let base = filename.rsplit(['/', '\\']).next().unwrap_or("");
        let name = crate::syntax::header_text(base, 200);
        let content_type = p
            .content_type
            .filter(|t| {
                t.len() <= 100
                    && t.contains('/')
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/.+-".contains(c))
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        out.push(Attachment {
            content_type,
            name: if name.is_empty() {
                "attachment".into()
            } else {
                name
            },
            data: p.data,
        });
    }
    Ok(out)
}

/// `max` bytes in whole megabytes, for the pages.
pub fn megabytes(max: u64) -> String {
    (max / (1024 * 1024)).to_string()
}
