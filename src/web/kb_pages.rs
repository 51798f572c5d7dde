//! The knowledge base's page bodies, shared by the public listener (public
//! articles only) and the agents' web view (all): each wraps them in its
//! own frame. Every dynamic string is escaped; article bodies come from
//! [`super::markdown`].

use super::html::esc;
use crate::kb::{Article, Kb};
use axum::http::StatusCode;

/// Articles listed at most (the search box narrows).
pub const LISTED: usize = 100;

/// `/kb` and `/kb?q=…`: the search box and the articles (all of them, or
/// those matching `q`), with the title.
pub fn list(kb: &Kb, q: Option<&str>, public_only: bool) -> (StatusCode, String) {
    let q = q.unwrap_or("").trim();
    let form = format!(
        r#"<h1>Knowledge base</h1><form class="search-page" method="get" action="/kb" role="search"><label for="q">Search articles</label><input id="q" type="search" name="q" value="{}"><button type="submit">Search</button></form>"#,
        esc(q)
    );
    let (status, found): (StatusCode, Vec<&Article>) = if q.is_empty() {
        (
            StatusCode::OK,
            kb.articles
                .iter()
                .filter(|a| !public_only || a.is_public())
                .take(LISTED)
                .collect(),
        )
    } else {
        match crate::search::Query::parse(q) {
            Ok(query) => (
                StatusCode::OK,
                crate::search_index::articles::search(kb, &query, public_only, LISTED),
            ),
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!(r#"{form}<p class="error">{}</p>"#, esc(&e.to_string())),
                );
            }
        }
    };
    let mut out = form;
    if found.is_empty() {
        out.push_str(r#"<p class="empty">No article found.</p>"#);
    }
    out.push_str(r#"<ul class="kb-articles">"#);
    for a in found {
        let internal = if a.is_public() {
            ""
        } else {
            r#" <span class="tag">internal</span>"#
        };
        out.push_str(&format!(
            r#"<li><a href="/kb/{slug}" hreflang="{lang}">{title}</a>{internal}</li>"#,
            slug = esc(&a.slug),
            lang = esc(&a.language),
            title = esc(&a.title),
        ));
    }
    out.push_str("</ul>");
    (status, out)
}

/// One article's body: title, tags, the rendered Markdown.
pub fn article(a: &Article) -> String {
    let tags = if a.tags.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p class="muted">{}</p>"#,
            a.tags
                .iter()
                .map(|t| esc(t))
                .collect::<Vec<_>>()
                .join(" · ")
        )
    };
    format!(
        r#"<article class="kb" lang="{lang}"><h1>{title}</h1>{tags}{body}</article><p><a href="/kb">Knowledge base</a></p>"#,
        lang = esc(&a.language),
        title = esc(&a.title),
        body = super::markdown::to_html(&a.body, "/kb"),
    )
}
