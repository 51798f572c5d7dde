//! The stale-submit check, as the agent sees it.
//!
//! The reply form carries the ticket version the page was rendered with.
//! When another agent's public reply came after it — from the browser, or
//! by mail — `Processor::act` holds the reply instead of sending it
//! (`Sent::Held`, the collision detection mail commands have). The ticket
//! page then opens with this panel: the newer reply, the agent's own held
//! text, and two choices: send it anyway (`Action::SendHeld`) or revise it
//! (the held text prefilled in a reply form carrying the current version;
//! sending that drops the held one, `Action::DropHeld`, in the same
//! request). Until the agent chooses, the held reply waits in the `held`
//! table and expires after `agents.hold_expiry`, as one held by mail does.

use super::html::{self, esc};
use crate::model::{HeldReply, MessageRecord, Ticket};
use crate::process::collision;

/// The panel for the agent `me`'s replies held on `t`, or nothing.
/// `seen` is the version the held reply was written against, when the
/// redirect after the submit says so; without it the newest public reply
/// by another agent is shown.
pub fn panel(
    t: &Ticket,
    me: &str,
    held: &[HeldReply],
    messages: &[MessageRecord],
    seen: Option<u64>,
    hidden_csrf: &str,
) -> String {
    let mine: Vec<&HeldReply> = held
        .iter()
        .filter(|h| h.agent.eq_ignore_ascii_case(me))
        .collect();
    let Some(last) = mine.last() else {
        return String::new();
    };
    let mut newer = match seen {
        Some(v) => collision::conflicts(t, me, v),
        None => Vec::new(),
    };
    if newer.is_empty()
        && let Some(r) = t
            .public_replies
            .iter()
            .rev()
            .find(|r| !r.agent.eq_ignore_ascii_case(me))
    {
        newer.push(r.clone());
    }
    let newer_html: String = newer
        .iter()
        .map(|r| {
            let text = messages
                .iter()
                .find(|m| m.seq == r.message)
                .map(|m| m.text.as_str())
                .unwrap_or("");
            format!(
                r##"<figure class="newer"><figcaption>{} replied to the customer (<a href="#m{}">in the conversation</a>):</figcaption><blockquote>{}</blockquote></figure>"##,
                esc(&r.agent),
                r.message,
                esc(text)
            )
        })
        .collect();
    let texts: Vec<&str> = mine.iter().map(|h| h.text.as_str()).collect();
    let id = t.id;
    format!(
        r#"<section id="held" class="held" role="alert" aria-labelledby="held-title"><h2 id="held-title">Your reply was not sent</h2><p>Another agent answered the customer after the version of this ticket you replied to. Read their reply, then send yours anyway or revise it. Unless you choose, yours is dropped at {expires}.</p>{newer_html}<figure class="mine"><figcaption>Your held reply:</figcaption><blockquote>{mine_text}</blockquote></figure>
<div class="choices"><form method="post" action="/tickets/{id}/send-held">{hidden_csrf}<button type="submit" class="send-anyway">Send anyway</button></form>
<form method="post" action="/tickets/{id}/reply" class="revise">{hidden_csrf}<input type="hidden" name="version" value="{version}"><input type="hidden" name="revise" value="1"><label for="revise-body">Revise your reply</label><textarea id="revise-body" name="body" rows="6">{prefill}</textarea><button type="submit">Send revised reply</button></form></div></section>"#,
        expires = html::time(last.expires_at),
        mine_text = esc(&texts.join("\n\n")),
        version = t.version,
        prefill = esc(&last.text),
    )
}
