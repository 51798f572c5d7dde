//! The ticket page's satisfaction panel: each survey of the ticket (one per
//! resolution), whether it went out, and the customer's rating and comment.

use super::{Shared, WebError, blocking};
use crate::csat::Scale;
use crate::model::TicketId;
use crate::web::html::{self, esc};

/// The panel's HTML; empty when the ticket was never surveyed.
pub async fn section(state: &Shared, id: TicketId) -> Result<String, WebError> {
    let store = state.store.clone();
    let surveys = blocking(move || store.surveys_of(id)).await?;
    if surveys.is_empty() {
        return Ok(String::new());
    }
    let rows: String = surveys
        .iter()
        .map(|s| {
            let state = match (&s.rating, s.sent_at, &s.skipped) {
                (Some(r), _, _) => {
                    let score = match s.scale {
                        Scale::GoodBad => s.scale.value_of(r.score),
                        Scale::Five => format!("{}/5", r.score),
                    };
                    let comment = if r.comment.is_empty() {
                        String::new()
                    } else {
                        format!(
                            r#"<blockquote class="rating-comment">{}</blockquote>"#,
                            esc(&r.comment)
                        )
                    };
                    format!(
                        r#"<strong class="rating rating-{}">{}</strong> by {} ({}, {}){comment}"#,
                        if s.scale.satisfied(r.score) {
                            "good"
                        } else {
                            "bad"
                        },
                        esc(&score),
                        esc(&r.by),
                        esc(&r.via),
                        html::time(r.changed_at),
                    )
                }
                (None, Some(at), _) => format!("sent {}, not answered", html::time(at)),
                (None, None, Some(why)) => format!("not sent: {}", esc(why)),
                (None, None, None) => format!("due {}", html::time(s.due)),
            };
            let agents = if s.agents.is_empty() {
                String::new()
            } else {
                format!(" · answered by {}", esc(&s.agents.join(", ")))
            };
            format!(
                r#"<li data-resolution="{}">Resolution {}{agents}: {state}</li>"#,
                s.resolution, s.resolution
            )
        })
        .collect();
    Ok(format!(
        r#"<h2>Satisfaction</h2><ul class="satisfaction">{rows}</ul>"#
    ))
}
