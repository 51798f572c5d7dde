//! The satisfaction survey page, `/survey/{token}?r=VALUE`: the one-click
//! links of the survey mail land here.
//!
//! Invariant: **a GET (or HEAD) never records anything.** Corporate link
//! scanners, Microsoft SafeLinks replays and mail-client prefetchers open
//! every link of a message; a survey that counted clicks would let them
//! vote. The GET shows the page with the clicked answer preselected and a
//! comment box; only the page's POST counts, and it must come from our own
//! origin (`web::csrf::same_origin`) and carry the form token bound to the
//! link (`Links::form_token`). The page loads no image or script (no
//! tracking pixel), and the link names no address.

use super::links::Purpose;
use super::{Shared, page};
use crate::csat::{Scale, Survey};
use crate::model::{Ticket, TicketId};
use crate::process::csat::{Rated, RatingRefused};
use crate::web::html::esc;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Choice {
    r: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Submitted {
    #[serde(default)]
    r: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    csrf: String,
}

fn invalid() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "en",
        "Survey",
        "<h1>This link is not valid</h1><p>It may have expired. You can still answer \
         the survey mail with your rating on the first line.</p>",
    )
}

/// The ticket and recipient the link is for, and the survey it answers;
/// None for a link that is malformed, forged, expired, or names no survey.
async fn verified(s: &Shared, token: &str) -> Result<Option<(Ticket, String, Survey)>, Response> {
    let Some(id) = super::links::Links::claimed_ticket(token) else {
        return Ok(None);
    };
    let store = s.store.clone();
    let found = tokio::task::spawn_blocking(move || -> crate::store::Result<_> {
        Ok(match store.ticket(id)? {
            Some(t) => Some((t, store.surveys_of(id)?)),
            None => None,
        })
    })
    .await;
    let (ticket, surveys) = match found {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return Ok(None),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "survey page: store read failed");
            return Err(unavailable());
        }
        Err(e) => {
            tracing::error!(error = %e, "survey page task failed");
            return Err(unavailable());
        }
    };
    let candidates = std::iter::once(ticket.requester.as_str())
        .chain(ticket.participants.iter().map(String::as_str));
    let Some(v) = s
        .urls
        .links
        .verify(Purpose::Survey, token, candidates, s.clock.now())
    else {
        return Ok(None);
    };
    let Some(survey) = surveys.into_iter().rev().find(|s| s.sent_at.is_some()) else {
        return Ok(None);
    };
    Ok(Some((ticket, v.recipient, survey)))
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "en",
        "Survey",
        "<h1>Please try again later</h1>",
    )
}

/// GET: the survey form, the clicked answer chosen. Records nothing.
pub async fn show(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(choice): Query<Choice>,
) -> Response {
    let (ticket, _, survey) = match verified(&s, &token).await {
        Ok(Some(x)) => x,
        Ok(None) => return invalid(),
        Err(r) => return r,
    };
    let chosen = choice
        .r
        .as_deref()
        .and_then(|v| survey.scale.score_of(v))
        .or(survey.rating.as_ref().map(|r| r.score));
    let csrf = s.urls.links.form_token(&token);
    let body = form(&token, &csrf, ticket.id, &survey, chosen, None);
    page(StatusCode::OK, "en", "How did we do?", &body)
}

fn form(
    token: &str,
    csrf: &str,
    ticket: TicketId,
    survey: &Survey,
    chosen: Option<u8>,
    error: Option<&str>,
) -> String {
    let mut radios = String::new();
    for (value, label) in survey.scale.answers() {
        let checked = chosen.is_some_and(|c| survey.scale.value_of(c) == *value);
        radios.push_str(&format!(
            r#"<div class="answer"><input type="radio" id="r-{v}" name="r" value="{v}"{c} required><label for="r-{v}">{l}</label></div>"#,
            v = esc(value),
            l = esc(label),
            c = if checked { " checked" } else { "" },
        ));
    }
    let already = match &survey.rating {
        Some(r) => format!(
            r#"<p class="muted">Your answer so far: {}. You may change it.</p>"#,
            esc(&shown(survey.scale, r.score))
        ),
        None => String::new(),
    };
    let comment = survey
        .rating
        .as_ref()
        .map(|r| r.comment.clone())
        .unwrap_or_default();
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    format!(
        r#"<h1>How did we do?</h1>
<p>Your request #{ticket} was resolved. How satisfied are you with our answer?</p>{already}{error}
<form method="post" action="/survey/{t}" id="survey">
<fieldset><legend>Your rating</legend>{radios}</fieldset>
<label for="comment">Comment (optional)</label>
<textarea id="comment" name="comment" maxlength="{max}">{comment}</textarea>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Send my rating</button>
</form>
<p class="muted">Nothing is recorded until you send this form.</p>"#,
        t = esc(token),
        csrf = esc(csrf),
        comment = esc(&comment),
        max = crate::process::csat::MAX_COMMENT,
    )
}

fn shown(scale: Scale, score: u8) -> String {
    match scale {
        Scale::GoodBad => scale.value_of(score),
        Scale::Five => format!("{score} of 5"),
    }
}

/// POST: the rating counts, once per resolution, changeable for a while.
pub async fn submit(
    State(s): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<Submitted>,
) -> Response {
    let https = s.urls.base.starts_with("https://");
    if crate::web::csrf::same_origin(&headers, https).is_err()
        || !s.urls.links.form_token_ok(&token, &f.csrf)
    {
        tracing::info!("survey post refused: origin or form token");
        return page(
            StatusCode::FORBIDDEN,
            "en",
            "Survey",
            "<h1>This form could not be accepted</h1><p>Please open the link from the mail again.</p>",
        );
    }
    let (ticket, recipient, survey) = match verified(&s, &token).await {
        Ok(Some(x)) => x,
        Ok(None) => return invalid(),
        Err(r) => return r,
    };
    let Some(score) = survey.scale.score_of(&f.r) else {
        let csrf = s.urls.links.form_token(&token);
        let body = form(
            &token,
            &csrf,
            ticket.id,
            &survey,
            None,
            Some("Please choose one answer."),
        );
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "en",
            "How did we do?",
            &body,
        );
    };
    let processor = s.processor.clone();
    let rules = s.rules.current();
    let now = s.clock.now();
    let id = ticket.id;
    let comment = f.comment;
    let done = tokio::task::spawn_blocking(move || {
        processor.store.write(|tx| {
            let Some(mut ticket) = tx.ticket(id)? else {
                return Ok(Err(RatingRefused::NoSurvey));
            };
            let rated = processor.record_rating(
                tx,
                &rules,
                &mut ticket,
                &recipient,
                score,
                &comment,
                "web",
                now,
            );
            match rated {
                // The transaction is dropped: nothing half-written.
                Err(RatingRefused::Store(e)) => Err(e),
                Ok(r) => {
                    tx.put_ticket(&ticket)?;
                    Ok(Ok(r))
                }
                Err(other) => Ok(Err(other)),
            }
        })
    })
    .await;
    let outcome = match done {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "survey: rating not stored");
            return unavailable();
        }
        Err(e) => {
            tracing::error!(error = %e, "survey task failed");
            return unavailable();
        }
    };
    match outcome {
        Ok(rated) => {
            let what = match rated {
                Rated::Recorded => "Your rating was recorded",
                Rated::Changed => "Your rating was changed",
                Rated::Unchanged => "Your rating stands",
            };
            let body = format!(
                r#"<h1>Thank you</h1><p id="thanks">{what}: {}.</p><p class="muted">You may change it with the same link for a while.</p>"#,
                esc(&shown(survey.scale, score))
            );
            page(StatusCode::OK, "en", "Thank you", &body)
        }
        Err(RatingRefused::TooLate) => page(
            StatusCode::CONFLICT,
            "en",
            "Survey",
            "<h1>Thank you</h1><p>Your earlier answer can no longer be changed.</p>",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "survey: rating refused");
            invalid()
        }
    }
}
