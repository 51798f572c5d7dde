//! The satisfaction survey's side of the processor: scheduled when a ticket
//! is resolved (per queue, rules/customer.toml), called off when it is
//! reopened before it went out, sent by the customer timers
//! (`stages::run`) when due, and the one place a rating is recorded, whether
//! it came from the survey page's POST or as a reply to the survey mail.
//!
//! A survey is a row in the store (`store/csat.rs`), not a sleeping task. Its
//! links are signed `Purpose::Survey` links to the public listener; opening
//! one records nothing (`public/survey.rs`).

use super::Processor;
use crate::csat::{Rating, Scale, Survey};
use crate::model::{Event, EventKind, Status, Ticket, TicketId};
use crate::rules::RuleSet;
use crate::store::{StoreError, Tx};
use tracing::info;

/// Surveys sent per transaction.
const BATCH: usize = 64;
/// Longest comment kept with a rating (characters).
pub const MAX_COMMENT: usize = 4000;

/// What became of a rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rated {
    /// The first answer to this survey.
    Recorded,
    /// An earlier answer changed.
    Changed,
    /// The same answer again: nothing changed.
    Unchanged,
}

/// Why a rating was not taken.
#[derive(Debug, thiserror::Error)]
pub enum RatingRefused {
    #[error("no survey was sent for this ticket")]
    NoSurvey,
    #[error("the answer can no longer be changed")]
    TooLate,
    #[error("not an answer of this survey's scale")]
    BadScore,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Processor {
    /// After `act` changed a ticket's status from `before`: a resolution
    /// schedules the survey (when the queue has one); leaving resolved or
    /// closed calls off a survey not yet sent.
    pub(crate) fn survey_on_status(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        before: Status,
        now: i64,
    ) -> Result<(), StoreError> {
        if before == ticket.status {
            return Ok(());
        }
        if ticket.status == Status::Resolved && !before.is_finished() {
            return self.schedule_survey(tx, rules, ticket, now);
        }
        if before.is_finished() && !ticket.status.is_finished() {
            return self.call_off_survey(tx, ticket, "the ticket was reopened", now);
        }
        Ok(())
    }

    fn schedule_survey(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        now: i64,
    ) -> Result<(), StoreError> {
        let Some(settings) = rules.customer.for_queue(&ticket.queue).survey else {
            return Ok(());
        };
        let resolution = tx.latest_survey(ticket.id)?.map_or(1, |s| s.resolution + 1);
        let mut agents: Vec<String> = Vec::new();
        for r in &ticket.public_replies {
            if !agents.contains(&r.agent) {
                agents.push(r.agent.clone());
            }
        }
        let survey = Survey {
            resolution,
            scale: settings.scale,
            queue: ticket.queue.clone(),
            due: now.saturating_add(settings.delay),
            sent_at: None,
            skipped: None,
            agents,
            rating: None,
        };
        tx.put_survey(ticket.id, &survey)?;
        tx.add_event(
            ticket,
            Event::new(
                now,
                EventKind::SurveyScheduled,
                "postdesk",
                format!(
                    "satisfaction survey for resolution {resolution} due {}",
                    crate::clock::rfc3339(survey.due)
                ),
            ),
        )
    }

    /// Marks the ticket's unsent survey as skipped for `why`, if there is one.
    pub(crate) fn call_off_survey(
        &self,
        tx: &mut Tx<'_>,
        ticket: &mut Ticket,
        why: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let Some(mut survey) = tx.latest_survey(ticket.id)? else {
            return Ok(());
        };
        if survey.sent_at.is_some() || survey.skipped.is_some() {
            return Ok(());
        }
        survey.skipped = Some(why.to_string());
        tx.put_survey(ticket.id, &survey)?;
        tx.add_event(
            ticket,
            Event::new(
                now,
                EventKind::SurveySkipped,
                "postdesk",
                format!("no survey for resolution {}: {why}", survey.resolution),
            ),
        )
    }

    /// Sends every survey due at `now`; returns how many went out.
    pub fn send_due_surveys(&self, now: i64) -> Result<usize, StoreError> {
        let rules = self.rules.current();
        let mut sent = 0;
        loop {
            let (n, more) = self.store.write(|tx| {
                let due = tx.due_surveys(now, BATCH)?;
                let more = due.len() == BATCH;
                let mut n = 0;
                for (id, survey) in due {
                    if self.send_survey(tx, &rules, id, survey, now)? {
                        n += 1;
                    }
                }
                Ok((n, more))
            })?;
            sent += n;
            if !more {
                break;
            }
        }
        if sent > 0 {
            self.outbound_wake.notify_one();
        }
        Ok(sent)
    }

    /// Sends one due survey, or records why not; whether it went out.
    fn send_survey(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        id: TicketId,
        mut survey: Survey,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Some(mut ticket) = tx.ticket(id)? else {
            survey.skipped = Some("the ticket is gone".into());
            tx.put_survey(id, &survey)?;
            return Ok(false);
        };
        let why_not = if !ticket.status.is_finished() {
            Some("the ticket was reopened".to_string())
        } else if self.public.is_none() {
            Some(
                "web.public_listen is not set: the survey links need the customers' listener"
                    .into(),
            )
        } else if rules.customer.templates.survey.is_none() {
            Some("no survey template (survey is off for every queue now)".into())
        } else {
            self.why_no_customer_mail(tx, rules, &ticket)?
        };
        if let Some(why) = why_not {
            survey.skipped = Some(why.clone());
            tx.put_survey(id, &survey)?;
            info!(ticket = id, %why, "no survey");
            tx.add_event(
                &mut ticket,
                Event::new(
                    now,
                    EventKind::SurveySkipped,
                    "postdesk",
                    format!("no survey for resolution {}: {why}", survey.resolution),
                ),
            )?;
            tx.put_ticket(&ticket)?;
            return Ok(false);
        }
        let (Some(urls), Some(template)) = (&self.public, &rules.customer.templates.survey) else {
            return Ok(false);
        };
        let token = urls.links.sign(
            crate::links::Purpose::Survey,
            id,
            &ticket.requester,
            now,
            urls.lifetime,
        );
        let links = survey_links(&urls.base, &token, survey.scale);
        let seq = self.queue_customer_mail(tx, &mut ticket, template, Some(&links), now)?;
        survey.sent_at = Some(now);
        tx.put_survey(id, &survey)?;
        let to = ticket.requester.clone();
        tx.add_event(
            &mut ticket,
            Event::new(
                now,
                EventKind::SurveySent,
                "postdesk",
                format!(
                    "satisfaction survey for resolution {} sent to {} (message {seq})",
                    survey.resolution, to
                ),
            )
            .about(seq),
        )?;
        tx.put_ticket(&ticket)?;
        info!(ticket = id, resolution = survey.resolution, "survey sent");
        Ok(true)
    }

    /// The score in `text` when it answers the ticket's survey: the newest
    /// survey went out, the ticket is still resolved or closed, and the
    /// text's first line is a rating alone.
    pub(crate) fn rating_reply(
        &self,
        tx: &mut Tx<'_>,
        ticket: &Ticket,
        text: &str,
    ) -> Result<Option<u8>, StoreError> {
        if !ticket.status.is_finished() {
            return Ok(None);
        }
        let Some(survey) = tx.latest_survey(ticket.id)? else {
            return Ok(None);
        };
        if survey.sent_at.is_none() {
            return Ok(None);
        }
        Ok(crate::csat::rating_in_reply(survey.scale, text))
    }

    /// Records `score` (and `comment`) from `by` for the ticket's newest sent
    /// survey, as a `rated` event; changes an earlier answer within the
    /// queue's `survey_changeable_for`. The caller stores the ticket.
    #[allow(clippy::too_many_arguments)]
    pub fn record_rating(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        ticket: &mut Ticket,
        by: &str,
        score: u8,
        comment: &str,
        via: &str,
        now: i64,
    ) -> Result<Rated, RatingRefused> {
        let mut survey = tx
            .latest_survey(ticket.id)?
            .filter(|s| s.sent_at.is_some())
            .ok_or(RatingRefused::NoSurvey)?;
        let valid = match survey.scale {
            Scale::GoodBad => score <= 1,
            Scale::Five => (1..=5).contains(&score),
        };
        if !valid {
            return Err(RatingRefused::BadScore);
        }
        let comment: String = comment.trim().chars().take(MAX_COMMENT).collect();
        let changeable_for = rules
            .customer
            .for_queue(&survey.queue)
            .survey
            .map_or(7 * 86_400, |s| s.changeable_for);
        let outcome = match &mut survey.rating {
            Some(r) if now > r.at.saturating_add(changeable_for) => {
                return Err(RatingRefused::TooLate);
            }
            Some(r) if r.score == score && (comment.is_empty() || r.comment == comment) => {
                Rated::Unchanged
            }
            Some(r) => {
                r.score = score;
                if !comment.is_empty() {
                    r.comment = comment.clone();
                }
                r.changed_at = now;
                r.via = via.to_string();
                Rated::Changed
            }
            None => {
                survey.rating = Some(Rating {
                    score,
                    comment: comment.clone(),
                    at: now,
                    changed_at: now,
                    by: by.to_ascii_lowercase(),
                    via: via.to_string(),
                });
                Rated::Recorded
            }
        };
        if outcome == Rated::Unchanged {
            return Ok(outcome);
        }
        tx.put_survey(ticket.id, &survey)?;
        let shown = match survey.scale {
            Scale::GoodBad => survey.scale.value_of(score),
            Scale::Five => format!("{score}/5"),
        };
        let detail = format!(
            "{} {} resolution {} {shown} by {via}{}{}",
            by,
            if outcome == Rated::Changed {
                "changed their rating of"
            } else {
                "rated"
            },
            survey.resolution,
            if survey.agents.is_empty() {
                String::new()
            } else {
                format!(" (answered by {})", survey.agents.join(", "))
            },
            if comment.is_empty() {
                String::new()
            } else {
                format!(": {comment}")
            }
        );
        tx.add_event(ticket, Event::new(now, EventKind::Rated, by, detail))?;
        info!(ticket = ticket.id, score, via, "rating recorded");
        Ok(outcome)
    }
}

impl Processor {
    /// A reply to the survey mail that is a rating: recorded (the lines
    /// after the rating, if any, are its comment), and the ticket stays
    /// resolved or closed: a vote is not a new request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rating_by_mail(
        &self,
        tx: &mut Tx<'_>,
        rules: &RuleSet,
        mut ticket: Ticket,
        record: &crate::model::MessageRecord,
        sender: &str,
        score: u8,
        now: i64,
    ) -> Result<(), StoreError> {
        let comment: String = record
            .text
            .lines()
            .map(str::trim)
            .skip_while(|l| l.is_empty())
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n");
        match self.record_rating(tx, rules, &mut ticket, sender, score, &comment, "mail", now) {
            Ok(_) => {}
            Err(RatingRefused::Store(e)) => return Err(e),
            Err(why) => {
                tx.add_event(
                    &mut ticket,
                    Event::new(
                        now,
                        EventKind::Rated,
                        sender,
                        format!("rating by mail (message {}) not taken: {why}", record.seq),
                    ),
                )?;
            }
        }
        tx.put_ticket(&ticket)?;
        info!(ticket = ticket.id, "survey answered by mail");
        Ok(())
    }
}

/// The survey mail's one-click links, one per answer, best first. Opening
/// one shows the survey page with that answer chosen; nothing counts until
/// the page is submitted.
pub fn survey_links(base: &str, token: &str, scale: Scale) -> String {
    let mut out = String::from("\n");
    for (value, label) in scale.answers() {
        out.push_str(&format!(
            "  {label}:\n  {base}/survey/{token}?r={value}\n\n"
        ));
    }
    out.push_str("-- \nThe links open a page; nothing is recorded until you submit it.\n");
    out
}
