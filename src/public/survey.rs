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
//!
//! The page speaks the customer's language as the form and status page do
//! (`?lang=`, else Accept-Language; `super::intake::language`), and its
//! form posts with the `?lang=` it was shown in.

use super::links::Purpose;
use super::texts::Texts;
use super::{Shared, intake, page};
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
    lang: Option<String>,
}

/// The language of a post: `?lang=` of the form's action.
#[derive(Debug, Deserialize)]
pub struct PostQuery {
    lang: Option<String>,
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

/// A page with a title and one paragraph.
fn notice(t: &Texts, status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text));
    page(status, t.lang, title, &body)
}

fn invalid(t: &Texts) -> Response {
    notice(
        t,
        StatusCode::NOT_FOUND,
        t.survey_invalid_title,
        t.survey_invalid_body,
    )
}

/// The ticket and recipient the link is for, and the survey it answers;
/// None for a link that is malformed, forged, expired, or names no survey.
async fn verified(
    s: &Shared,
    t: &Texts,
    token: &str,
) -> Result<Option<(Ticket, String, Survey)>, Response> {
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
            return Err(unavailable(t));
        }
        Err(e) => {
            tracing::error!(error = %e, "survey page task failed");
            return Err(unavailable(t));
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

fn unavailable(t: &Texts) -> Response {
    let body = format!("<h1>{}</h1>", esc(t.try_later));
    page(StatusCode::SERVICE_UNAVAILABLE, t.lang, t.try_later, &body)
}

/// GET: the survey form, the clicked answer chosen. Records nothing.
pub async fn show(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(choice): Query<Choice>,
    headers: HeaderMap,
) -> Response {
    let t = intake::language(&headers, choice.lang.as_deref());
    let (ticket, _, survey) = match verified(&s, t, &token).await {
        Ok(Some(x)) => x,
        Ok(None) => return invalid(t),
        Err(r) => return r,
    };
    let chosen = choice
        .r
        .as_deref()
        .and_then(|v| survey.scale.score_of(v))
        .or(survey.rating.as_ref().map(|r| r.score));
    let csrf = s.urls.links.form_token(&token);
    let body = form(t, &token, &csrf, ticket.id, &survey, chosen, None);
    page(StatusCode::OK, t.lang, t.survey_title, &body)
}

/// An answer's label in `t`'s words.
fn label(t: &Texts, scale: Scale, score: u8) -> &'static str {
    match scale {
        Scale::GoodBad if score >= 1 => t.survey_good_bad[0],
        Scale::GoodBad => t.survey_good_bad[1],
        Scale::Five => t.survey_five[usize::from(score.clamp(1, 5) - 1)],
    }
}

fn form(
    t: &Texts,
    token: &str,
    csrf: &str,
    ticket: TicketId,
    survey: &Survey,
    chosen: Option<u8>,
    error: Option<&str>,
) -> String {
    let mut radios = String::new();
    for (value, _) in survey.scale.answers() {
        let Some(score) = survey.scale.score_of(value) else {
            continue;
        };
        let checked = chosen == Some(score);
        radios.push_str(&format!(
            r#"<div class="answer"><input type="radio" id="r-{v}" name="r" value="{v}"{c} required><label for="r-{v}">{l}</label></div>"#,
            v = esc(value),
            l = esc(label(t, survey.scale, score)),
            c = if checked { " checked" } else { "" },
        ));
    }
    let already = match &survey.rating {
        Some(r) => format!(
            r#"<p class="muted">{}</p>"#,
            esc(&t
                .survey_so_far
                .replace("{answer}", &shown(t, survey.scale, r.score)))
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
    let other = t.other();
    let again = chosen.map_or_else(String::new, |c| format!("&r={}", survey.scale.value_of(c)));
    format!(
        r#"<p class="lang"><a href="/survey/{tok}?lang={other_lang}{again}" hreflang="{other_lang}" lang="{other_lang}">{other_name}</a></p>
<h1>{title}</h1>
<p>{intro}</p>{already}{error}
<form method="post" action="/survey/{tok}?lang={lang}" id="survey">
<fieldset><legend>{l_rating}</legend>{radios}</fieldset>
<label for="comment">{l_comment}</label>
<textarea id="comment" name="comment" maxlength="{max}">{comment}</textarea>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit">{send}</button>
</form>
<p class="muted">{nothing_yet}</p>"#,
        tok = esc(token),
        other_lang = esc(other.lang),
        other_name = esc(t.other_language),
        again = esc(&again),
        title = esc(t.survey_title),
        intro = esc(&t.survey_intro.replace("{n}", &ticket.to_string())),
        lang = esc(t.lang),
        l_rating = esc(t.survey_rating),
        l_comment = esc(t.survey_comment),
        send = esc(t.survey_send),
        nothing_yet = esc(t.survey_nothing_yet),
        csrf = esc(csrf),
        comment = esc(&comment),
        max = crate::process::csat::MAX_COMMENT,
    )
}

/// A rating in a sentence: the good/bad answer, or "4 of 5".
fn shown(t: &Texts, scale: Scale, score: u8) -> String {
    match scale {
        Scale::GoodBad => label(t, scale, score).to_lowercase(),
        Scale::Five => t.survey_of_five.replace("{n}", &score.to_string()),
    }
}

/// POST: the rating counts, once per resolution, changeable for a while.
pub async fn submit(
    State(s): State<Shared>,
    Path(token): Path<String>,
    Query(q): Query<PostQuery>,
    headers: HeaderMap,
    Form(f): Form<Submitted>,
) -> Response {
    let t = intake::language(&headers, q.lang.as_deref());
    let https = s.urls.base.starts_with("https://");
    if crate::web::csrf::same_origin(&headers, https).is_err()
        || !s.urls.links.form_token_ok(&token, &f.csrf)
    {
        tracing::info!("survey post refused: origin or form token");
        return notice(
            t,
            StatusCode::FORBIDDEN,
            t.survey_refused_title,
            t.survey_refused_body,
        );
    }
    let (ticket, recipient, survey) = match verified(&s, t, &token).await {
        Ok(Some(x)) => x,
        Ok(None) => return invalid(t),
        Err(r) => return r,
    };
    let Some(score) = survey.scale.score_of(&f.r) else {
        let csrf = s.urls.links.form_token(&token);
        let body = form(
            t,
            &token,
            &csrf,
            ticket.id,
            &survey,
            None,
            Some(t.survey_choose),
        );
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            t.lang,
            t.survey_title,
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
            return unavailable(t);
        }
        Err(e) => {
            tracing::error!(error = %e, "survey task failed");
            return unavailable(t);
        }
    };
    match outcome {
        Ok(rated) => {
            let what = match rated {
                Rated::Recorded => t.survey_recorded,
                Rated::Changed => t.survey_changed,
                Rated::Unchanged => t.survey_unchanged,
            };
            let body = format!(
                r#"<h1>{}</h1><p id="thanks">{}: {}.</p><p class="muted">{}</p>"#,
                esc(t.thanks_title),
                esc(what),
                esc(&shown(t, survey.scale, score)),
                esc(t.survey_change_later)
            );
            page(StatusCode::OK, t.lang, t.thanks_title, &body)
        }
        Err(RatingRefused::TooLate) => {
            notice(t, StatusCode::CONFLICT, t.thanks_title, t.survey_too_late)
        }
        Err(e) => {
            tracing::warn!(error = %e, "survey: rating refused");
            invalid(t)
        }
    }
}
