//! Agent mail: replies, notes and commands written in an agent's own mail client.
//!
//! Mail is agent mail when it is sent to a signed agent address (the Reply-To
//! of a notification), answers one of our notifications by In-Reply-To, or is
//! sent to `agents.comment_address`. It is posted only when
//! - the token verifies (HMAC over ticket, agent and version),
//! - the From is one of that agent's addresses in rules/agents.toml, and
//! - no `Authentication-Results` header of the trusted authserv-id reports a
//!   DKIM or DMARC failure, and
//! - for mail our SMTP intake verified (`crate::sender_auth`), when the
//!   agent's domain publishes DMARC, it passes aligned
//!   (`agents.require_dmarc`): a token and a From can be copied from one
//!   leaked notification, a DKIM signature of the agent's domain cannot.
//!
//! Anything else is quarantined, never dropped, and the agent the mail claims
//! to come from gets a notice why at their configured address (rate-limited).
//!
//! An accepted mail becomes a `commands::Request`: its command block, then
//! the remaining text (quotes and signature stripped) as a note or a public
//! reply. `Processor::act` checks it whole (one bad command applies nothing
//! and sends nothing) and applies it, as it does for every door; the reply
//! is relayed to the customer (`reply.rs`), or held when another agent
//! replied since the version the agent saw (`collision.rs`). When there were
//! commands, the agent gets a transcript built from the `Outcome`.

use super::Processor;
use super::classify::Class;
use super::commands::{self, Action, MailCommand, Refusal, Request, Sent, Via};
use super::decide::Incoming;
use super::parse::Parsed;
use crate::config::Config;
use crate::model::*;
use crate::outbound::compose::{AgentMail, queue_agent_mail};
use crate::rules::{Agent, RuleSet};
use crate::store::{StoreError, Tx};
use crate::token::{ClaimedAgent, Token, Tokens};
use tracing::{info, info_span, warn};

/// Notices about rejected mail one agent address gets per hour at most
/// (a flood of forgeries must not become a flood of notices).
const MAX_NOTICES_PER_HOUR: u32 = 20;

/// What a verified agent token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub ticket: TicketId,
    pub agent: String,
    /// The ticket version the agent saw.
    pub version: u64,
}

/// Why a message is agent mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To an agent address, or in reply to a notification; `claim` is None
    /// when the signature does not verify.
    Token {
        via: String,
        claim: Option<Claim>,
        claimed: Option<ClaimedAgent>,
    },
    /// To the comment address.
    Comment,
}

/// Whether this message is agent mail, and by which route. `from_agent`:
/// the sender is one of the agents' addresses (only then does In-Reply-To a
/// notification make agent mail, or a copy to the comment address of mail to
/// the support address; a customer doing so is customer mail).
pub fn route(
    cfg: &Config,
    tokens: &Tokens,
    parsed: &Parsed,
    env: &Envelope,
    from_agent: bool,
) -> Option<Route> {
    let rcpts = || {
        env.rcpt_to
            .iter()
            .chain(parsed.to.iter())
            .chain(parsed.cc.iter())
    };
    // A customer who also wrote to the support address (and copied the
    // comment address by mistake) is a customer, not a failed comment.
    let to_support = env
        .rcpt_to
        .iter()
        .any(|a| cfg.mailbox_for(a).is_some() && !Tokens::is_agent_address(a));
    if rcpts().any(|a| cfg.is_comment_address(a)) && (from_agent || !to_support) {
        return Some(Route::Comment);
    }
    for addr in rcpts() {
        if cfg.mailbox_for(addr).is_some() && Tokens::is_agent_address(addr) {
            let claim = match tokens.verify(addr, "", env.received_at) {
                Some(Token::Agent {
                    ticket,
                    agent,
                    version,
                }) => Some(Claim {
                    ticket,
                    agent,
                    version,
                }),
                _ => None,
            };
            return Some(Route::Token {
                via: addr.to_ascii_lowercase(),
                claim,
                claimed: Tokens::claimed_agent(addr),
            });
        }
    }
    // A reply that lost our Reply-To still answers a notification.
    if !from_agent {
        return None;
    }
    for id in &parsed.in_reply_to {
        if let Some(tag) = notification_tag(id, &cfg.server.hostname)
            && let Some(Token::Agent {
                ticket,
                agent,
                version,
            }) = tokens.verify_tag(tag, "", env.received_at)
        {
            return Some(Route::Token {
                via: format!("In-Reply-To <{id}>"),
                claim: Some(Claim {
                    ticket,
                    agent,
                    version,
                }),
                claimed: None,
            });
        }
    }
    None
}

/// The agent tag inside one of our notification Message-IDs (`pd.TAG.mSEQ@host`).
fn notification_tag<'a>(id: &'a str, host: &str) -> Option<&'a str> {
    crate::outbound::compose::tag_of_message_id(id, host).filter(|tag| tag.starts_with('a'))
}

/// A DKIM or DMARC failure reported by the trusted authserv-id, in words.
/// (DKIM: only when no signature passed; DMARC: any failure.)
pub fn auth_failure(parsed: &Parsed, trusted: &str) -> Option<String> {
    super::vouch::auth_results(parsed, trusted)?.failure()
}

/// What one command line of a mail is, for `act` and the transcript.
enum Entry {
    /// The request's action at this index.
    Action(usize),
    /// `#note`: the mail's text is an internal note.
    Note,
    /// Wrong as written (unknown command, bad argument, not allowed here).
    Error(String),
}

/// A mail's command block as checked: its lines, what each became, and the
/// check of each action.
struct CommandBlock<'a> {
    lines: &'a [commands::Line],
    entries: &'a [Entry],
    checked: &'a [Result<(), String>],
}

/// An authenticated agent's mail, ready to apply to its ticket.
pub(super) struct Posting<'a> {
    pub agent: &'a Agent,
    pub ticket: Ticket,
    /// The ticket version the agent saw (None at the comment address).
    pub seen: Option<u64>,
    /// Sent to the comment address: the text is an internal note.
    pub comment: bool,
}

/// The result of one command, for the transcript.
struct Done {
    line: String,
    result: Result<String, String>,
}

impl Processor {
    /// Handles a message that `route` found to be agent mail.
    pub(super) fn agent_mail(
        &self,
        tx: &mut Tx<'_>,
        record: &mut MessageRecord,
        msg: &Incoming<'_>,
        raw: &[u8],
        route: Route,
    ) -> Result<(), StoreError> {
        let (parsed, env, class, sender, now) =
            (msg.parsed, msg.env, msg.class, msg.sender.as_str(), msg.now);
        let rules = self.rules.current();
        if class != Class::Customer {
            // An agent's vacation notice answering a notification, a bounce: never posted,
            // and never answered (no notice, so no loop).
            return self.quarantine(
                tx,
                record,
                now,
                &format!("{} sent to an agent address; not posted", class.as_str()),
            );
        }
        let from_agent = rules.agents.by_address(sender);
        let auth = self
            .cfg
            .agents
            .trusted_authserv_id
            .as_deref()
            .and_then(|id| auth_failure(parsed, id))
            .or_else(|| self.dmarc_requirement(env));
        match route {
            Route::Comment => {
                let Some(agent) = from_agent else {
                    return self.quarantine(
                        tx,
                        record,
                        now,
                        &format!("mail to the comment address from {sender}, who is not an agent"),
                    );
                };
                if let Some(why) = auth {
                    return self.reject(tx, record, Some(agent), None, &why, now);
                }
                if let Err(why) = self.comment_proof(parsed, env, agent, sender) {
                    return self.reject(tx, record, Some(agent), None, &why, now);
                }
                let Some(ticket) = self.comment_ticket(tx, parsed, env)? else {
                    let why =
                        "it names no ticket: put the ticket's tag, e.g. [#12], in the subject";
                    return self.reject(tx, record, Some(agent), None, why, now);
                };
                let posting = Posting {
                    agent,
                    ticket,
                    seen: None,
                    comment: true,
                };
                self.apply_agent_mail(tx, &rules, record, msg, raw, posting)
            }
            Route::Token {
                via,
                claim: None,
                claimed,
            } => {
                let named = claimed
                    .as_ref()
                    .and_then(|c| rules.agents.by_name(&c.agent));
                let ticket = match claimed.as_ref().and_then(|c| c.ticket) {
                    Some(id) => tx.ticket(id)?,
                    None => None,
                };
                let why =
                    format!("the agent address {via} has no valid signature (altered or forged)");
                self.reject(tx, record, named.or(from_agent), ticket, &why, now)
            }
            Route::Token {
                via,
                claim: Some(claim),
                ..
            } => {
                let ticket = tx.ticket(claim.ticket)?;
                let Some(agent) = rules.agents.by_name(&claim.agent) else {
                    let why = format!(
                        "{via} names agent {:?}, who is not in agents.toml",
                        claim.agent
                    );
                    return self.reject(tx, record, from_agent, ticket, &why, now);
                };
                let Some(ticket) = ticket else {
                    let why = format!("ticket #{} does not exist", claim.ticket);
                    return self.reject(tx, record, Some(agent), None, &why, now);
                };
                if !agent.has_address(sender) {
                    let why = format!(
                        "it is from {}, which is not an address of agent {} (the reply address was made for {})",
                        if sender.is_empty() {
                            "(no sender)"
                        } else {
                            sender
                        },
                        agent.name,
                        agent.name
                    );
                    return self.reject(tx, record, Some(agent), Some(ticket), &why, now);
                }
                if let Some(why) = auth {
                    return self.reject(tx, record, Some(agent), Some(ticket), &why, now);
                }
                let posting = Posting {
                    agent,
                    ticket,
                    seen: Some(claim.version),
                    comment: false,
                };
                self.apply_agent_mail(tx, &rules, record, msg, raw, posting)
            }
        }
    }

    /// Quarantines agent mail that may not be posted, records it on the ticket
    /// it names (if any), and tells the agent it claims to be from why.
    pub(super) fn reject(
        &self,
        tx: &mut Tx<'_>,
        record: &mut MessageRecord,
        notify: Option<&Agent>,
        ticket: Option<Ticket>,
        why: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.quarantine(tx, record, now, &format!("agent mail not posted: {why}"))?;
        let ticket_id = ticket.as_ref().map(|t| t.id);
        let queue = ticket.as_ref().map(|t| t.queue.clone()).unwrap_or_default();
        if let Some(mut t) = ticket {
            let detail = format!(
                "mail from {} (message {}) not posted: {why}",
                record.from, record.seq
            );
            tx.add_event(
                &mut t,
                super::event(now, EventKind::AgentMailRejected, &record.from, detail),
            )?;
            tx.put_ticket(&t)?;
        }
        let Some(agent) = notify else {
            return Ok(());
        };
        let key = format!("agent-notice:{}", agent.address);
        if !tx.take_ack_allowance(&key, now, MAX_NOTICES_PER_HOUR)? {
            warn!(agent = %agent.name, "notice rate limit reached; no notice sent");
            return Ok(());
        }
        let on = ticket_id.map_or(String::new(), |t| format!(" to ticket #{t}"));
        let body = format!(
            "Mail sent in your name was not posted{on}.\n\n\
             \x20 From:       {from}\n\
             \x20 Subject:    {subject}\n\
             \x20 Message-ID: <{mid}>\n\n\
             Why: {why}.\n\n\
             Nothing was sent to the customer and the ticket did not change. The mail is kept\n\
             in postdesk's quarantine as message {seq}. If you did not send it, someone may be\n\
             writing in your name: tell your postdesk administrator.\n",
            from = if record.from.is_empty() {
                "(none)"
            } else {
                &record.from
            },
            subject = record.subject,
            mid = record.message_id,
            seq = record.seq,
        );
        // The ticket's own support address (any configured one without a ticket).
        let support = self.cfg.support_address(&queue).to_string();
        queue_agent_mail(
            tx,
            &self.cfg,
            &self.tokens,
            AgentMail {
                ticket: ticket_id,
                to: agent.address.clone(),
                from_name: self.cfg.from_display_name(),
                from_addr: support,
                reply_to: None,
                subject: format!("Not posted: {}", record.subject),
                body,
                msgid_tag: None,
                in_reply_to: (!record.message_id.is_empty()).then(|| record.message_id.clone()),
                references: Vec::new(),
            },
            now,
        )?;
        Ok(())
    }

    /// Why our own verification keeps agent mail from being acted on
    /// (`agents.require_dmarc`): the From's domain publishes DMARC (or its
    /// record could not be looked up) and the mail does not pass it aligned.
    /// None when the mail was not verified by us (IMAP, `deliver`).
    fn dmarc_requirement(&self, env: &Envelope) -> Option<String> {
        if self.cfg.agents.require_dmarc == crate::config::RequireDmarc::Never {
            return None;
        }
        let v = env.sender_auth.as_ref()?;
        let published = v.dmarc_policy.is_some() || v.dmarc == "temperror";
        if !published || v.dmarc == "pass" {
            return None;
        }
        let policy = v
            .dmarc_policy
            .as_deref()
            .map_or(String::new(), |p| format!(" (p={p})"));
        Some(format!(
            "its domain {domain} publishes DMARC{policy} and the mail does not pass it \
             aligned: {host} found dmarc={dmarc}, dkim={dkim}, spf={spf}; send from your \
             own mail server, which signs for {domain}",
            domain = v.domain,
            host = self.cfg.server.hostname,
            dmarc = v.dmarc,
            dkim = v.dkim,
            spf = v.spf,
        ))
    }

    /// What proves that mail to the comment address comes from `agent`: a
    /// comment address signed for that agent among its recipients, or a
    /// DKIM/DMARC pass for the From's domain reported by the trusted MTA.
    /// A From alone proves nothing (anyone can write one). On failure, why,
    /// with the agent's own comment address (the notice goes to the agent's
    /// configured address, so only the agent learns it).
    fn comment_proof(
        &self,
        parsed: &Parsed,
        env: &Envelope,
        agent: &Agent,
        sender: &str,
    ) -> Result<(), String> {
        let signed = env
            .rcpt_to
            .iter()
            .chain(parsed.to.iter())
            .chain(parsed.cc.iter())
            .filter(|a| self.cfg.is_comment_address(a))
            .any(|a| {
                matches!(self.tokens.verify(a, "", env.received_at),
                    Some(Token::Comment { agent: named }) if named.eq_ignore_ascii_case(&agent.name))
            });
        if signed {
            return Ok(());
        }
        let domain = crate::config::split_address(sender).map(|(_, d)| d);
        let authenticated = super::vouch::trusted_id(
            env,
            &self.cfg.server.hostname,
            self.cfg.agents.trusted_authserv_id.as_deref(),
        )
        .and_then(|id| super::vouch::auth_results(parsed, id))
        .zip(domain)
        .and_then(|(results, d)| results.pass_for(d));
        if authenticated.is_some() {
            return Ok(());
        }
        let own = self
            .cfg
            .agents
            .comment_address
            .as_deref()
            .map(|c| self.tokens.comment_address(c, &agent.name, env.received_at))
            .unwrap_or_default();
        Err(format!(
            "mail to the comment address needs proof that it is yours, and a From \
             alone proves nothing; write to your own comment address {own} \
             (it is also in every notification), or have the receiving MTA \
             report a DKIM or DMARC pass for your domain"
        ))
    }

    /// The ticket a mail to the comment address is about: the subject tag,
    /// else an agent token among the recipients, else the message it answers.
    fn comment_ticket(
        &self,
        tx: &mut Tx<'_>,
        parsed: &Parsed,
        env: &Envelope,
    ) -> Result<Option<Ticket>, StoreError> {
        if let Some(n) = super::thread::subject_tag(&parsed.subject)
            && let Some(t) = tx.ticket(n)?
        {
            return Ok(Some(t));
        }
        let rcpts = env
            .rcpt_to
            .iter()
            .chain(parsed.to.iter())
            .chain(parsed.cc.iter());
        for addr in rcpts {
            if let Some(Token::Agent { ticket, .. }) = self.tokens.verify(addr, "", env.received_at)
                && let Some(t) = tx.ticket(ticket)?
            {
                return Ok(Some(t));
            }
        }
        for id in parsed
            .in_reply_to
            .iter()
            .chain(parsed.references.iter().rev())
        {
            if let Some(n) = tx.lookup_msgid(id)?
                && let Some(t) = tx.ticket(n)?
            {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// Applies an authenticated agent mail to `ticket` through `act`: its
    /// command lines, then its text as a note (`#note`, the comment address),
    /// a public reply (held on a collision) or nothing. `seen` is the ticket
    /// version the agent's token carries (None for the comment address).
    /// When there were command lines, the agent gets a transcript.
    fn apply_agent_mail(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        record: &mut MessageRecord,
        msg: &Incoming<'_>,
        raw: &[u8],
        posting: Posting<'_>,
    ) -> Result<(), StoreError> {
        let (parsed, now) = (msg.parsed, msg.now);
        let Posting {
            agent,
            mut ticket,
            seen,
            comment,
        } = posting;
        let _t = info_span!("ticket", id = ticket.id).entered();
        record.ticket = Some(ticket.id);
        record.kind = MessageKind::Agent;
        let (lines, rest) = commands::split(&record.text);
        record.text = rest.clone();
        // The mail is kept whatever happens; `act` turns it into the note or
        // the held reply when it becomes one.
        self.keep_unlisted(tx, &ticket, record, parsed)?;
        let note = comment
            || lines
                .iter()
                .any(|l| matches!(l.parsed, Ok(MailCommand::Note)));

        // What each command line is: one of the request's actions, `#note`
        // (which says what the text is), or an error found by reading it.
        let mut actions = Vec::new();
        let mut entries = Vec::new();
        for line in &lines {
            entries.push(match &line.parsed {
                Err(e) => Entry::Error(e.clone()),
                Ok(MailCommand::Note) => Entry::Note,
                Ok(MailCommand::Act(Action::Kb(_))) if comment => Entry::Error(
                    "mail to the comment address is never sent to the customer; reply to the ticket's agent address for #kb"
                        .into(),
                ),
                Ok(MailCommand::Act(Action::Canned(_))) if comment => Entry::Error(
                    "mail to the comment address is never sent to the customer; reply to the ticket's agent address for #canned"
                        .into(),
                ),
                Ok(MailCommand::Act(a)) => {
                    actions.push(a.clone());
                    Entry::Action(actions.len() - 1)
                }
            });
        }
        // The text after the commands (quotes and signature stripped).
        if note {
            actions.push(if !rest.is_empty() || lines.is_empty() {
                Action::Note(rest.clone())
            } else {
                Action::Internal
            });
        } else {
            // A reply may be an attachment alone; notes keep theirs in the raw mail.
            let attachments = if parsed.attachments.is_empty() {
                Vec::new()
            } else {
                super::reply::attachments_of(raw)
            };
            if !rest.is_empty() || !attachments.is_empty() {
                actions.push(Action::Reply {
                    text: rest.clone(),
                    attachments,
                });
            }
        }
        let request = Request {
            ticket: ticket.id,
            actor: agent.name.clone(),
            seen_version: seen,
            actions,
            via: Via::Mail {
                message: record.seq,
            },
        };

        let refused = if entries.iter().any(|e| matches!(e, Entry::Error(_))) {
            // Not to be applied: checked for the transcript only.
            let checked = self.check(tx, rules, &ticket, agent, &request)?;
            Err(checked.into_iter().map(|r| r.map(|_| ())).collect())
        } else {
            match self.act(tx, rules, request, now) {
                Ok(outcome) => Ok(outcome),
                Err(Refusal::Invalid(checked)) => Err(checked),
                Err(Refusal::Store(e)) => return Err(e),
                Err(other @ (Refusal::NoTicket(_) | Refusal::UnknownAgent(_))) => {
                    // Both were found before: the store changed under us.
                    return Err(StoreError::Io(std::io::Error::other(other.to_string())));
                }
            }
        };
        let outcome = match refused {
            Ok(outcome) => outcome,
            Err(checked) => {
                let block = CommandBlock {
                    lines: &lines,
                    entries: &entries,
                    checked: &checked,
                };
                let by = super::Actor { agent, now };
                return self.commands_failed(tx, &mut ticket, by, record, block);
            }
        };

        let mut ticket = outcome.ticket;
        let text = match outcome.sent {
            Sent::Note(_) => {
                record.kind = MessageKind::Note;
                super::note_dropped(tx, &mut ticket, record.seq, parsed, now)?;
                "Your text was added to the ticket as an internal note; nothing was sent to the customer."
                    .to_string()
            }
            Sent::Reply(seq) => format!("Your reply was sent to the customer (message {seq})."),
            Sent::Held(_) => {
                record.kind = MessageKind::Held;
                "Your reply is HELD because another agent replied since you saw the ticket: \
                 see the separate notice. Nothing was sent to the customer."
                    .to_string()
            }
            Sent::Nothing => match outcome.resolved_notice {
                Some(seq) => format!(
                    "The customer was told that the ticket is {} (message {seq}); nothing else was sent.",
                    ticket.status.as_str()
                ),
                None => "Nothing was sent to the customer.".to_string(),
            },
        };
        let done: Vec<Done> = lines
            .iter()
            .zip(&entries)
            .map(|(line, entry)| Done {
                line: line.text.clone(),
                result: Ok(match entry {
                    Entry::Action(i) => outcome.results[*i].clone(),
                    Entry::Note => "done: this mail is an internal note".to_string(),
                    // (a mail with an error applied nothing and returned above)
                    Entry::Error(e) => format!("error: {e}"),
                }),
            })
            .collect();
        if !done.is_empty() {
            let by = super::Actor { agent, now };
            self.transcript(tx, &ticket, by, record, &done, Ok(&text))?;
        }
        tx.put_ticket(&ticket)?;
        info!(ticket = ticket.id, agent = %agent.name, commands = done.len(), "agent mail applied");
        Ok(())
    }

    /// A mail whose commands cannot all be applied: nothing was; an event
    /// on the ticket, and a transcript telling the agent which line failed.
    fn commands_failed(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        by: super::Actor<'_>,
        record: &MessageRecord,
        block: CommandBlock<'_>,
    ) -> Result<(), StoreError> {
        let (agent, now) = (by.agent, by.now);
        let CommandBlock {
            lines,
            entries,
            checked,
        } = block;
        let error_of = |entry: &Entry| match entry {
            Entry::Error(e) => Some(e.clone()),
            Entry::Action(i) => checked.get(*i).and_then(|r| r.as_ref().err().cloned()),
            Entry::Note => None,
        };
        let mut errors: Vec<String> = lines
            .iter()
            .zip(entries)
            .filter_map(|(l, e)| error_of(e).map(|e| format!("{}: {e}", l.text)))
            .collect();
        // The text's own action (after the command lines) may be at fault too.
        let line_actions = entries
            .iter()
            .filter(|e| matches!(e, Entry::Action(_)))
            .count();
        errors.extend(
            checked
                .iter()
                .skip(line_actions)
                .filter_map(|r| r.as_ref().err())
                .map(|e| format!("(the text of your mail): {e}")),
        );
        tx.add_event(
            ticket,
            super::event(
                now,
                EventKind::CommandsFailed,
                &agent.name,
                format!(
                    "mail {} from {} not applied: {}",
                    record.seq,
                    agent.name,
                    errors.join("; ")
                ),
            ),
        )?;
        let done: Vec<Done> = lines
            .iter()
            .zip(entries)
            .map(|(line, entry)| Done {
                line: line.text.clone(),
                result: match error_of(entry) {
                    None => Err("not applied (see the error below or above)".into()),
                    Some(e) => Err(format!("error: {e}")),
                },
            })
            .collect();
        self.transcript(
            tx,
            ticket,
            by,
            record,
            &done,
            Err(
                "Nothing was applied and nothing was sent to the customer, because of the \
                 error(s) above. Correct the commands and send your mail again.",
            ),
        )?;
        tx.put_ticket(ticket)?;
        info!(ticket = ticket.id, agent = %agent.name, "agent commands failed; nothing applied");
        Ok(())
    }

    /// Stores the agent's own mail under the ticket without listing it among
    /// the ticket's messages (its text is in the reply, note or events).
    pub(super) fn keep_unlisted(
        &self,
        tx: &mut Tx<'_>,
        ticket: &Ticket,
        record: &mut MessageRecord,
        parsed: &Parsed,
    ) -> Result<(), StoreError> {
        record.ticket = Some(ticket.id);
        tx.put_message_unlisted(record)?;
        if let Some(id) = &parsed.message_id {
            tx.index_msgid(id, ticket.id)?;
        }
        Ok(())
    }

    /// Mails the agent what became of each command (as debbugs' control@ does).
    /// `outcome`: what came of the commands, in words; `Err` when nothing was applied.
    fn transcript(
        &self,
        tx: &mut Tx<'_>,
        ticket: &Ticket,
        by: super::Actor<'_>,
        record: &MessageRecord,
        done: &[Done],
        outcome: Result<&str, &str>,
    ) -> Result<(), StoreError> {
        let (agent, now) = (by.agent, by.now);
        let (failed, outcome) = match outcome {
            Ok(text) => (false, text),
            Err(text) => (true, text),
        };
        let mut body = format!(
            "Commands in your mail \"{}\" for ticket #{}:\n\n",
            record.subject, ticket.id
        );
        for d in done {
            body.push_str(&format!("> {}\n", d.line));
            match &d.result {
                Ok(r) => body.push_str(&format!("{r}\n\n")),
                Err(e) => body.push_str(&format!("{e}\n\n")),
            }
        }
        body.push_str(outcome);
        body.push_str(&format!(
            "\n\nTicket #{} is now {}, priority {}, queue {}, assignee {}, tags: {}.\n",
            ticket.id,
            ticket.status.as_str(),
            ticket.priority.as_str(),
            ticket.queue,
            ticket.assignee.as_deref().unwrap_or("nobody"),
            if ticket.tags.is_empty() {
                "none".to_string()
            } else {
                ticket.tags.join(", ")
            }
        ));
        let subject = if failed {
            format!("[#{}] Commands NOT applied: {}", ticket.id, ticket.subject)
        } else {
            format!("[#{}] Commands done: {}", ticket.id, ticket.subject)
        };
        queue_agent_mail(
            tx,
            &self.cfg,
            &self.tokens,
            AgentMail {
                in_reply_to: (!record.message_id.is_empty()).then(|| record.message_id.clone()),
                ..AgentMail::answerable(&self.cfg, &self.tokens, ticket, agent, subject, body, now)
            },
            now,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_tags_from_message_ids() {
        assert_eq!(
            notification_tag(
                "pd.a12.mary.0.abcdef.m55@support.example.test",
                "support.example.test"
            ),
            Some("a12.mary.0.abcdef")
        );
        assert_eq!(
            notification_tag(
                "pd.t12.m55.00ff@support.example.test",
                "support.example.test"
            ),
            None
        );
        assert_eq!(
            notification_tag(
                "pd.a12.mary.0.abcdef.m55@elsewhere.test",
                "support.example.test"
            ),
            None
        );
    }

    #[test]
    fn authentication_results_from_the_trusted_id_only() {
        let p = |h: &str| {
            super::super::parse::parse(
                format!("{h}\r\nFrom: a@example.test\r\nSubject: x\r\n\r\nb\r\n").as_bytes(),
            )
        };
        let fail = p(
            "Authentication-Results: mx.example.test;\r\n dkim=fail header.d=example.test;\r\n dmarc=pass",
        );
        assert!(auth_failure(&fail, "mx.example.test").is_some());
        assert!(auth_failure(&fail, "other.test").is_none());
        let dmarc = p(
            "Authentication-Results: mx.example.test 1; dmarc=fail (p=reject) header.from=example.test",
        );
        assert!(
            auth_failure(&dmarc, "MX.example.test")
                .unwrap()
                .contains("dmarc")
        );
        // one good signature is enough
        let mixed = p(
            "Authentication-Results: mx.example.test; dkim=fail; dkim=pass header.d=example.test",
        );
        assert!(auth_failure(&mixed, "mx.example.test").is_none());
        let pass = p("Authentication-Results: mx.example.test; dkim=pass; dmarc=pass");
        assert!(auth_failure(&pass, "mx.example.test").is_none());
    }
}
