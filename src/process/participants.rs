//! Who takes part in a ticket: the customers who receive the agents' public
//! replies.
//!
//! Message-IDs are not secrets (they are in every copy of a thread, in
//! forwards and list archives), nor are ticket numbers or addresses. So
//! anyone may write into a ticket's conversation, but only a participant's
//! own mail brings others in: its Cc become participants. A message from
//! anyone else (a stranger) joins the conversation marked as such and brings
//! in nobody, itself included; an agent adds people with `#participant add`.
//! Mail that claims a participant's From but that nothing vouches for (see
//! [`super::vouch`]) is a stranger's.
//!
//! Caps bound what one message and one ticket can bring in.

use super::vouch::Vouch;
use crate::config::TicketsConfig;
use crate::model::Ticket;

/// What the sender of a message is to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// A participant's own mail: it may bring in its Cc.
    Participant,
    /// Anyone else, with why, in words.
    Stranger(String),
}

/// Whether `sender`'s mail speaks for a participant of `ticket`.
pub fn standing(ticket: &Ticket, sender: &str, vouch: &Vouch) -> Standing {
    let sender = sender.to_ascii_lowercase();
    if !ticket.participants.contains(&sender) {
        let who = if sender.is_empty() {
            "the sender"
        } else {
            &sender
        };
        return Standing::Stranger(format!("{who} is not a participant of #{}", ticket.id));
    }
    match vouch.doubt() {
        None => Standing::Participant,
        Some(doubt) => Standing::Stranger(format!(
            "the mail claims to be from participant {sender}, but {doubt}"
        )),
    }
}

/// What [`admit`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Newly added participants.
    pub added: Vec<String>,
    /// Addresses left out because a cap was reached.
    pub over_cap: Vec<String>,
}

impl Admitted {
    /// The event detail when a cap applied.
    pub fn cap_note(&self, caps: &TicketsConfig) -> Option<String> {
        (!self.over_cap.is_empty()).then(|| {
            let shown: Vec<&str> = self.over_cap.iter().take(5).map(String::as_str).collect();
            format!(
                "{} address(es) not added as participants ({}{}): at most {} per message and {} per ticket",
                self.over_cap.len(),
                shown.join(", "),
                if self.over_cap.len() > shown.len() { ", …" } else { "" },
                caps.max_participants_per_message,
                caps.max_participants_per_ticket,
            )
        })
    }
}

/// Adds `candidates` (already syntax-checked, lower-cased) to the ticket's
/// participants, skipping those `skip` names (our own addresses, agents) and
/// those already in, and stopping at the caps.
pub fn admit<'a>(
    ticket: &mut Ticket,
    candidates: impl IntoIterator<Item = &'a str>,
    caps: &TicketsConfig,
    skip: impl Fn(&str) -> bool,
) -> Admitted {
    let mut out = Admitted::default();
    for c in candidates {
        let c = c.trim().to_ascii_lowercase();
        if c.is_empty() || skip(&c) || ticket.participants.contains(&c) {
            continue;
        }
        if out.added.len() >= caps.max_participants_per_message
            || ticket.participants.len() >= caps.max_participants_per_ticket
        {
            if out.over_cap.len() < 1000 {
                out.over_cap.push(c);
            }
            continue;
        }
        ticket.participants.insert(c.clone());
        out.added.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        let mut t = Ticket::new(7, "ann@example.org", 0);
        t.participants.insert("ann@example.org".into());
        t
    }

    #[test]
    fn only_vouched_participants_speak_for_the_ticket() {
        let t = ticket();
        assert_eq!(
            standing(&t, "Ann@Example.org", &Vouch::Aligned),
            Standing::Participant
        );
        assert!(matches!(
            standing(&t, "mallory@evil.example", &Vouch::Aligned),
            Standing::Stranger(_)
        ));
        let forged = Vouch::Unverified("its envelope sender is of another domain".into());
        assert!(matches!(
            standing(&t, "ann@example.org", &forged),
            Standing::Stranger(why) if why.contains("claims to be from participant")
        ));
    }

    #[test]
    fn caps_apply_per_message_and_per_ticket() {
        let caps = TicketsConfig {
            max_participants_per_message: 3,
            max_participants_per_ticket: 5,
        };
        let mut t = ticket();
        let many: Vec<String> = (0..45_000).map(|i| format!("cc{i}@example.net")).collect();
        let a = admit(&mut t, many.iter().map(String::as_str), &caps, |_| false);
        assert_eq!(a.added.len(), 3);
        assert_eq!(a.over_cap.len(), 1000);
        assert!(a.cap_note(&caps).is_some());
        let b = admit(
            &mut t,
            ["x@a.example", "y@a.example", "z@a.example"],
            &caps,
            |_| false,
        );
        assert_eq!(b.added, vec!["x@a.example"]);
        assert_eq!(t.participants.len(), 5);
        let c = admit(
            &mut t,
            ["ann@example.org", "support@example.test"],
            &caps,
            |a| a.starts_with("support@"),
        );
        assert_eq!(c, Admitted::default());
    }
}
