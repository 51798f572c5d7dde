//! The one composer of the mail postdesk sends: every outgoing message is
//! described by an [`Outgoing`] and turned into bytes by [`render`], the only
//! place that names mail-builder. The headers that keep mail loops and
//! auto-responders away (our loop header, Auto-Submitted, Precedence,
//! X-Auto-Response-Suppress) and our Message-ID format live here.
//! `queue_notice` and `queue_agent_mail` queue postdesk's own system mail in
//! the caller's transaction.

use super::queue::enqueue;
use crate::config::Config;
use crate::model::{Direction, MessageKind, MessageRecord, MessageSeq, Ticket, TicketId};
use crate::store::{StoreError, Tx};
use mail_builder::headers::raw::Raw;

/// Who writes a message, which decides its automatic headers (RFC 3834).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An automatic answer to a message (the acknowledgement):
    /// `Auto-Submitted: auto-replied` and `Precedence: auto_reply`.
    AutoReply,
    /// Mail we generate (notices, notifications, transcripts):
    /// `Auto-Submitted: auto-generated`.
    Generated,
    /// A person's words relayed (an agent's reply): no Auto-Submitted, so
    /// the customer's own auto-responder may answer it as it would a person.
    Personal,
    /// A customer's words taken down by an agent (a phone ticket), put into
    /// intake as if the customer had written: no automatic headers and no
    /// loop header, since it is not our mail going out.
    OnBehalf,
}

/// A file attached to outgoing mail.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub content_type: String,
    pub name: String,
    pub data: Vec<u8>,
}

/// One outgoing message. Every string in it was checked or built by us:
/// addresses and Message-IDs from peers pass `crate::syntax` first.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub kind: Kind,
    /// Display name and address.
    pub from: (String, String),
    pub to: String,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub message_id: String,
    pub date: i64,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub body: String,
    pub attachments: &'a [Attachment],
    /// Headers of our own (`X-Postdesk-Channel`), values already checked.
    pub extra_headers: Vec<(&'static str, String)>,
}

/// The bytes of `mail`, with our loop header naming `hostname`.
pub fn render(mail: &Outgoing<'_>, hostname: &str) -> Vec<u8> {
    let b = mail_builder::MessageBuilder::new();
    let mut b = if mail.from.0.is_empty() {
        b.from(mail.from.1.clone())
    } else {
        b.from((mail.from.0.clone(), mail.from.1.clone()))
    }
    .to(mail.to.clone())
    .subject(mail.subject.clone())
    .message_id(mail.message_id.clone())
    .date(mail_builder::headers::date::Date::new(mail.date));
    match mail.kind {
        Kind::AutoReply => {
            b = b
                .header("Auto-Submitted", Raw::new("auto-replied"))
                .header("X-Auto-Response-Suppress", Raw::new("All"))
                .header("Precedence", Raw::new("auto_reply"));
        }
        Kind::Generated => {
            b = b
                .header("Auto-Submitted", Raw::new("auto-generated"))
                .header("X-Auto-Response-Suppress", Raw::new("All"));
        }
        Kind::Personal | Kind::OnBehalf => {}
    }
    if mail.kind != Kind::OnBehalf {
        b = b.header(LOOP_HEADER, Raw::new(hostname.to_string()));
    }
    for (name, value) in &mail.extra_headers {
        b = b.header(*name, Raw::new(value.clone()));
    }
    b = b.text_body(mail.body.clone());
    if !mail.cc.is_empty() {
        b = b.cc(mail.cc.clone());
    }
    if let Some(r) = &mail.reply_to {
        b = b.reply_to(r.clone());
    }
    if let Some(p) = &mail.in_reply_to {
        b = b.in_reply_to(p.clone());
    }
    if !mail.references.is_empty() {
        b = b.references(mail.references.clone());
    }
    for a in mail.attachments {
        b = b.attachment(a.content_type.clone(), a.name.clone(), a.data.clone());
    }
    // Writing into a Vec cannot fail.
    b.write_to_vec().unwrap_or_default()
}

/// Our loop header: mail carrying it with our hostname is our own come back.
pub const LOOP_HEADER: &str = "X-Postdesk-Loop";

/// Our Message-IDs name the ticket, so even a reply stripped of tokens finds
/// its way back: `pd.t<ticket>.m<seq>.<nonce>@host`.
pub fn message_id(ticket: TicketId, seq: MessageSeq, hostname: &str) -> String {
    let mut nonce = [0u8; 6];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    format!("pd.t{ticket}.m{seq}.{nonce}@{hostname}")
}

/// The Message-ID of mail that carries a plus-tag (an agent notification):
/// `pd.<tag>.m<seq>@host`, so a reply that lost its Reply-To still names it.
pub fn tagged_message_id(tag: &str, seq: MessageSeq, hostname: &str) -> String {
    format!("pd.{tag}.m{seq}@{hostname}")
}

/// The root every notification about a ticket references: one thread per
/// ticket in an agent's mail client.
pub fn thread_root(ticket: TicketId, hostname: &str) -> String {
    format!("pd.t{ticket}.root@{hostname}")
}

/// The plus-tag inside one of our tagged Message-IDs (`pd.TAG.mSEQ@host`).
pub fn tag_of_message_id<'a>(id: &'a str, hostname: &str) -> Option<&'a str> {
    let (local, domain) = id.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(hostname) {
        return None;
    }
    let rest = local.strip_prefix("pd.")?;
    let (tag, seq) = rest.rsplit_once(".m")?;
    (!seq.is_empty() && seq.chars().all(|c| c.is_ascii_digit())).then_some(tag)
}

/// Queues an automatic notice about `ticket` to `to`, recorded as a system
/// message of the ticket. It carries Auto-Submitted and our loop header, so
/// no well-behaved responder answers it and we never answer an echo of it.
pub fn queue_notice(
    tx: &mut Tx<'_>,
    cfg: &Config,
    ticket: &mut Ticket,
    to: &str,
    subject: &str,
    body: &str,
    now: i64,
) -> Result<(), StoreError> {
    let seq = tx.next_id("next_message")?;
    let message_id = self::message_id(ticket.id, seq, &cfg.server.hostname);
    let from = cfg.from_address().to_string();
    let raw = render(
        &Outgoing {
            kind: Kind::Generated,
            from: (String::new(), from.clone()),
            to: to.to_string(),
            cc: Vec::new(),
            reply_to: None,
            subject: subject.to_string(),
            message_id: message_id.clone(),
            date: now,
            in_reply_to: None,
            references: Vec::new(),
            body: body.to_string(),
            attachments: &[],
            extra_headers: Vec::new(),
        },
        &cfg.server.hostname,
    );
    tx.put_raw(seq, &raw)?;
    tx.put_message(&MessageRecord {
        seq,
        ticket: Some(ticket.id),
        message_id: message_id.clone(),
        direction: Direction::Outbound,
        kind: MessageKind::System,
        from: from.clone(),
        to: vec![to.to_string()],
        subject: subject.to_string(),
        date: now,
        text: body.to_string(),
        stranger: None,
    })?;
    tx.index_msgid(&message_id, ticket.id)?;
    ticket.message_count += 1;
    enqueue(tx, seq, Some(ticket.id), from, vec![to.to_string()], now)?;
    Ok(())
}

/// A system mail to one agent: a notification, a notice why mail was not
/// posted, a command transcript, a held-reply notice.
pub struct AgentMail {
    /// The ticket it is about (its bounce address and Message-ID name it).
    pub ticket: Option<TicketId>,
    pub to: String,
    /// Display name of From; the address is the support address `from_addr`.
    pub from_name: String,
    pub from_addr: String,
    /// Where the agent's answer goes (an agent token address), if anywhere.
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: String,
    /// A plus-tag to carry in the Message-ID (`pd.TAG.mSEQ@host`), so a reply
    /// that lost its Reply-To is still recognised by its In-Reply-To.
    pub msgid_tag: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

impl AgentMail {
    /// Mail to `agent` about `ticket` that the agent can answer: from the
    /// ticket's support address, with the agent token for the ticket's
    /// current version in Reply-To and in the Message-ID.
    pub fn answerable(
        cfg: &Config,
        tokens: &crate::token::Tokens,
        ticket: &Ticket,
        agent: &crate::rules::agents::Agent,
        subject: String,
        body: String,
        now: i64,
    ) -> AgentMail {
        let support = cfg.support_address(&ticket.queue).to_string();
        AgentMail {
            ticket: Some(ticket.id),
            to: agent.address.clone(),
            from_name: cfg.from_display_name(),
            reply_to: Some(tokens.agent_address(
                &support,
                ticket.id,
                &agent.name,
                ticket.version,
                now,
            )),
            from_addr: support,
            subject,
            body,
            msgid_tag: Some(tokens.agent_tag(ticket.id, &agent.name, ticket.version, now)),
            in_reply_to: None,
            references: Vec::new(),
        }
    }
}

/// Queues `mail` in the caller's transaction. The record names the ticket but
/// is not listed among its messages (it is a copy for one agent, not part of
/// the conversation); its Message-ID is indexed, so a reply threads.
/// Returns the message sequence.
pub fn queue_agent_mail(
    tx: &mut Tx<'_>,
    cfg: &Config,
    tokens: &crate::token::Tokens,
    mail: AgentMail,
    now: i64,
) -> Result<MessageSeq, StoreError> {
    let seq = tx.next_id("next_message")?;
    let host = &cfg.server.hostname;
    let message_id = match (&mail.msgid_tag, mail.ticket) {
        (Some(tag), _) => tagged_message_id(tag, seq, host),
        (None, t) => self::message_id(t.unwrap_or(0), seq, host),
    };
    let raw = render(
        &Outgoing {
            kind: Kind::Generated,
            from: (mail.from_name.clone(), mail.from_addr.clone()),
            to: mail.to.clone(),
            cc: Vec::new(),
            reply_to: mail.reply_to.clone(),
            subject: mail.subject.clone(),
            message_id: message_id.clone(),
            date: now,
            in_reply_to: mail.in_reply_to.clone(),
            references: mail.references.clone(),
            body: mail.body.clone(),
            attachments: &[],
            extra_headers: Vec::new(),
        },
        host,
    );
    tx.put_raw(seq, &raw)?;
    tx.put_message_unlisted(&MessageRecord {
        seq,
        ticket: mail.ticket,
        message_id: message_id.clone(),
        direction: Direction::Outbound,
        kind: MessageKind::System,
        from: mail.from_addr.clone(),
        to: vec![mail.to.clone()],
        subject: mail.subject.clone(),
        date: now,
        text: mail.body.clone(),
        stranger: None,
    })?;
    let mail_from = match mail.ticket {
        Some(t) => {
            tx.index_msgid(&message_id, t)?;
            tokens.bounce_address(&mail.from_addr, t, seq)
        }
        None => mail.from_addr.clone(),
    };
    enqueue(tx, seq, mail.ticket, mail_from, vec![mail.to], now)?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(kind: Kind) -> Vec<u8> {
        render(
            &Outgoing {
                kind,
                from: ("Example Support".into(), "support@example.test".into()),
                to: "ann@example.org".into(),
                cc: vec!["bob@example.org".into()],
                reply_to: Some("support+t1.2.x@example.test".into()),
                subject: "[#1] Printer".into(),
                message_id: message_id(1, 2, "support.example.test"),
                date: 0,
                in_reply_to: Some("a@example.org".into()),
                references: (0..20)
                    .map(|i| format!("{}{i}@example.org", "r".repeat(200)))
                    .collect(),
                body: "Hello\n".into(),
                attachments: &[],
                extra_headers: Vec::new(),
            },
            "support.example.test",
        )
    }

    fn has(raw: &[u8], line: &str) -> bool {
        String::from_utf8_lossy(raw).lines().any(|l| l == line)
    }

    #[test]
    fn each_kind_gets_its_automatic_headers() {
        let auto = mail(Kind::AutoReply);
        assert!(has(&auto, "Auto-Submitted: auto-replied"));
        assert!(has(&auto, "Precedence: auto_reply"));
        assert!(has(&auto, "X-Auto-Response-Suppress: All"));
        let generated = mail(Kind::Generated);
        assert!(has(&generated, "Auto-Submitted: auto-generated"));
        assert!(!has(&generated, "Precedence: auto_reply"));
        let personal = mail(Kind::Personal);
        assert!(!String::from_utf8_lossy(&personal).contains("Auto-Submitted"));
        for raw in [auto, generated, personal] {
            assert!(has(&raw, "X-Postdesk-Loop: support.example.test"));
            let longest = raw
                .split(|&b| b == b'\n')
                .map(<[u8]>::len)
                .max()
                .unwrap_or(0);
            assert!(longest <= 998, "{longest}");
        }
    }

    #[test]
    fn our_message_ids_carry_their_tags() {
        let tagged = tagged_message_id("a12.mary.0.20970.sig", 55, "support.example.test");
        assert_eq!(
            tag_of_message_id(&tagged, "support.example.test"),
            Some("a12.mary.0.20970.sig")
        );
        assert_eq!(tag_of_message_id(&tagged, "elsewhere.test"), None);
        let id = message_id(12, 55, "support.example.test");
        assert!(id.starts_with("pd.t12.m55."), "{id}");
        assert_eq!(
            tag_of_message_id("pd.x.m@support.example.test", "support.example.test"),
            None
        );
    }
}
