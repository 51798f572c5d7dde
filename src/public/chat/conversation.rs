//! A chat conversation is the ticket's mail thread: each visitor line is
//! a message committed to the spool (`Source::Chat`) with its own
//! Message-ID and threading headers, and takes the path of mail from there
//! (the first opens the ticket, routing, SLA, agents notified); what the
//! widget shows is read back from the ticket's messages, so a restart
//! loses nothing and a stream resumes from any message sequence.
//!
//! Leaving (or idling) mails the visitor a transcript of what they have
//! not had by mail, with Reply-To the ticket's reply address signed for
//! them: answering it continues the same ticket.

use super::ChatError;
use crate::model::{
    Direction, Envelope, MessageKind, MessageRecord, MessageSeq, Source, Ticket, TicketId,
};
use crate::outbound::compose::{self, Kind, Outgoing};
use crate::public::PublicState;
use crate::store::{ChatConversation, StoreError};
use serde::Serialize;

/// One line as the widget shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The message's sequence: the event id a stream resumes after.
    pub id: MessageSeq,
    /// `visitor` (their own lines and mail), `agent`.
    pub who: &'static str,
    pub name: String,
    pub text: String,
    pub at: i64,
}

/// The conversation's ticket: known, or made meanwhile by the processor
/// from the first line (then recorded, and an unverified address is
/// mailed its "continue this chat" link).
pub fn ticket_of(
    state: &PublicState,
    key: &str,
    conv: &mut ChatConversation,
) -> Result<Option<TicketId>, StoreError> {
    if conv.ticket.is_some() {
        return Ok(conv.ticket);
    }
    let Some(seq) = conv.first_seq else {
        return Ok(None);
    };
    let Some(ticket) = state.store.message(seq)?.and_then(|m| m.ticket) else {
        return Ok(None);
    };
    let now = state.clock.now();
    let link = (!conv.verified && !conv.link_mailed).then(|| {
        let token = state.urls.links.sign(
            crate::public::links::Purpose::Chat,
            ticket,
            &conv.address,
            now,
            state.urls.lifetime,
        );
        format!("{}/chat/continue/{token}", state.urls.base)
    });
    let cfg = state.cfg.clone();
    let address = conv.address.clone();
    conv.ticket = Some(ticket);
    conv.link_mailed = true;
    let stored = conv.clone();
    state.store.write(|tx| {
        if let Some(link) = &link
            && let Some(mut t) = tx.ticket(ticket)?
        {
            // Whoever typed the address may not own it: only the owner,
            // through this link, continues the chat as that customer.
            let body = format!(
                "You started a chat with us as {address} (ticket #{ticket}).\n\n\
                 To continue it, or to see it again, open:\n{link}\n\n\
                 If this was not you, ignore this message.\n"
            );
            compose::queue_notice(
                tx,
                &cfg,
                &mut t,
                &address,
                &format!("Your chat with us [#{ticket}]"),
                &body,
                now,
            )?;
            tx.put_ticket(&t)?;
        }
        tx.put_chat_conversation(key, &stored)
    })?;
    if link.is_some() {
        // Queued outside the processor: the sender would find it only at
        // its next timed look.
        state.processor.outbound_wake.notify_one();
    }
    Ok(Some(ticket))
}

/// The ticket's lines after `after` that the visitor may see.
pub fn lines_after(
    state: &PublicState,
    ticket: TicketId,
    after: MessageSeq,
) -> Result<Vec<Line>, StoreError> {
    let Some(t) = state.store.ticket(ticket)? else {
        return Ok(Vec::new());
    };
    let rules = state.rules.current();
    let messages = state.store.ticket_messages(ticket)?;
    Ok(messages
        .into_iter()
        .filter(|m| m.seq > after)
        .filter_map(|m| line_of(&t, &rules, m))
        .collect())
}

fn line_of(t: &Ticket, rules: &crate::rules::RuleSet, m: MessageRecord) -> Option<Line> {
    let (who, name) = match (m.direction, m.kind) {
        (Direction::Inbound, MessageKind::Customer) => ("visitor", t.requester_name.clone()),
        (Direction::Outbound, MessageKind::Agent) => {
            let agent = t
                .public_replies
                .iter()
                .find(|r| r.message == m.seq)
                .and_then(|r| rules.agents.by_name(&r.agent))
                .map(|a| a.display_name.clone())
                .unwrap_or_else(|| "Support".into());
            ("agent", agent)
        }
        _ => return None,
    };
    Some(Line {
        id: m.seq,
        who,
        name,
        text: m.text,
        at: m.date,
    })
}

/// Commits the visitor's `text` to the spool as the next message of the
/// conversation; returns its spool sequence.
pub async fn submit_line(
    state: &PublicState,
    key: &str,
    conv: &mut ChatConversation,
    peer: &str,
    text: &str,
) -> Result<MessageSeq, ChatError> {
    let cfg = &state.cfg;
    let rules = state.rules.current();
    let site = rules
        .chat
        .site(&conv.site)
        .ok_or(ChatError::UnknownSite)?
        .clone();
    let mailbox = cfg
        .mailboxes
        .iter()
        .find(|m| m.queue == site.queue)
        .or_else(|| cfg.mailboxes.first())
        .ok_or_else(|| ChatError::NotTaken("no [[mailbox]] configured".into()))?
        .address
        .clone();
    let now = state.clock.now();
    let ticket = ticket_of(state, key, conv)?;
    // Once the ticket exists, its signed reply address threads the line
    // whatever happened to the Message-ID chain.
    let to = match ticket {
        Some(t) => state
            .processor
            .tokens
            .reply_address(&mailbox, t, &conv.address, now),
        None => mailbox.clone(),
    };
    let nonce = super::identity::new_visitor_token();
    let message_id = format!("chat.{nonce}@{}", cfg.server.hostname);
    let mut references: Vec<String> = conv.root_message_id.iter().cloned().collect();
    if let Some(last) = &conv.last_message_id
        && !references.contains(last)
    {
        references.push(last.clone());
    }
    let first_words: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let subject = match ticket {
        Some(t) => format!("Chat [#{t}]"),
        None => crate::syntax::header_text(
            &format!("Chat: {}", first_words.chars().take(60).collect::<String>()),
            crate::syntax::MAX_SUBJECT,
        ),
    };
    let raw = compose::render(
        &Outgoing {
            kind: Kind::OnBehalf,
            from: (
                crate::syntax::header_text(&conv.name, crate::syntax::MAX_NAME),
                conv.address.clone(),
            ),
            to: to.clone(),
            cc: Vec::new(),
            reply_to: None,
            subject,
            message_id: message_id.clone(),
            date: now,
            in_reply_to: conv.last_message_id.clone(),
            references,
            body: format!("{}\n", text.trim_end()),
            attachments: &[],
            extra_headers: vec![
                ("X-Postdesk-Channel", "chat".to_string()),
                ("X-Postdesk-Chat-Site", site.id.clone()),
            ],
        },
        &cfg.server.hostname,
    );
    let envelope = Envelope {
        mail_from: conv.address.clone(),
        rcpt_to: vec![to],
        received_at: now,
        source: Source::Chat {
            verified: conv.verified,
        },
        sender_auth: None,
        imported_as: None,
        peer: format!("chat ({peer})"),
        helo: String::new(),
        imap: None,
    };
    let seq = state
        .spool
        .submit(envelope, raw)
        .await
        .map_err(|e| ChatError::NotTaken(e.to_string()))?;
    if conv.first_seq.is_none() {
        conv.first_seq = Some(seq);
        conv.root_message_id = Some(message_id.clone());
    }
    conv.last_message_id = Some(message_id);
    conv.lines += 1;
    conv.last_active = now;
    let stored = conv.clone();
    state
        .store
        .write(|tx| tx.put_chat_conversation(key, &stored))?;
    Ok(seq)
}

/// Ends the conversation and queues the transcript of what the visitor
/// has not had by mail (nothing when there is nothing new). False when
/// its ticket is not made yet (try again later).
pub fn end(
    state: &PublicState,
    key: &str,
    conv: &mut ChatConversation,
) -> Result<bool, StoreError> {
    let Some(ticket) = ticket_of(state, key, conv)? else {
        if conv.first_seq.is_some() {
            return Ok(false);
        }
        conv.ended = true;
        let stored = conv.clone();
        state
            .store
            .write(|tx| tx.put_chat_conversation(key, &stored))?;
        return Ok(true);
    };
    let lines = lines_after(state, ticket, conv.transcript_upto)?;
    let now = state.clock.now();
    let cfg = state.cfg.clone();
    let tokens = state.processor.tokens.clone();
    conv.ended = true;
    if let Some(last) = lines.last() {
        conv.transcript_upto = last.id;
    }
    let stored = conv.clone();
    state.store.write(|tx| {
        tx.put_chat_conversation(key, &stored)?;
        let Some(mut t) = tx.ticket(ticket)? else {
            return Ok(());
        };
        if lines.is_empty() {
            return Ok(());
        }
        queue_transcript(tx, &cfg, &tokens, &mut t, &stored, &lines, now)?;
        tx.put_ticket(&t)
    })?;
    tracing::info!(ticket, lines = lines.len(), "chat ended, transcript queued");
    Ok(true)
}

/// The transcript mail, stored as a system message of the ticket and queued.
fn queue_transcript(
    tx: &mut crate::store::Tx<'_>,
    cfg: &crate::config::Config,
    tokens: &crate::token::Tokens,
    t: &mut Ticket,
    conv: &ChatConversation,
    lines: &[Line],
    now: i64,
) -> Result<(), StoreError> {
    let support = cfg.support_address(&t.queue).to_string();
    let seq = tx.next_id("next_message")?;
    let message_id = compose::message_id(t.id, seq, &cfg.server.hostname);
    let mut body = format!(
        "Here is our chat (ticket #{}). Reply to this message to continue it by mail.\n\n",
        t.id
    );
    for l in lines {
        let who = match l.who {
            "agent" => l.name.clone(),
            _ if conv.name.is_empty() => "You".to_string(),
            _ => conv.name.clone(),
        };
        body.push_str(&format!("[{}] {who}:\n", crate::clock::rfc3339(l.at)));
        for line in l.text.trim_end().lines() {
            body.push_str(&format!("  {line}\n"));
        }
        body.push('\n');
    }
    let mut references: Vec<String> = conv.root_message_id.iter().cloned().collect();
    if let Some(last) = &conv.last_message_id
        && !references.contains(last)
    {
        references.push(last.clone());
    }
    let subject = crate::process::reply::reply_subject(t);
    let raw = compose::render(
        &Outgoing {
            kind: Kind::Generated,
            from: (cfg.from_display_name(), support.clone()),
            to: conv.address.clone(),
            cc: Vec::new(),
            reply_to: Some(tokens.reply_address(&support, t.id, &conv.address, now)),
            subject: subject.clone(),
            message_id: message_id.clone(),
            date: now,
            in_reply_to: conv.last_message_id.clone(),
            references,
            body: body.clone(),
            attachments: &[],
            extra_headers: Vec::new(),
        },
        &cfg.server.hostname,
    );
    tx.put_raw(seq, &raw)?;
    tx.put_message(&MessageRecord {
        seq,
        ticket: Some(t.id),
        message_id: message_id.clone(),
        direction: Direction::Outbound,
        kind: MessageKind::System,
        from: support.clone(),
        to: vec![conv.address.clone()],
        subject,
        date: now,
        text: body,
        stranger: None,
    })?;
    tx.index_msgid(&message_id, t.id)?;
    t.message_count += 1;
    let bounce = tokens.bounce_address(&support, t.id, seq);
    crate::outbound::queue::enqueue(tx, seq, Some(t.id), bounce, vec![conv.address.clone()], now)?;
    Ok(())
}
