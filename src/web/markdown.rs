//! A small Markdown renderer of our own, for knowledge-base articles:
//! paragraphs, `#` headings, `-`/`*`/`1.` lists, fenced and indented code,
//! `*emphasis*`, `**strong**`, `` `code` `` and `[text](target)` links.
//!
//! Why not a full CommonMark crate: an article is written by an admin but
//! read by customers, so no raw HTML may pass through. Here every piece of
//! text goes through [`esc`] and the only tags are the ones this file
//! writes; a link target is kept only when it is `kb:SLUG`, a path under
//! `/kb/`, `http(s)://` or `mailto:` (anything else, `javascript:` included,
//! leaves the text unlinked).

use super::html::esc;

/// The HTML of `markdown`; `kb_base` is prefixed to article links
/// (`/kb` on both listeners).
pub fn to_html(markdown: &str, kb_base: &str) -> String {
    let mut out = String::new();
    let mut para: Vec<&str> = Vec::new();
    let mut list: Option<(&'static str, Vec<String>)> = None;
    let mut code: Option<Vec<&str>> = None;
    let flush_para = |para: &mut Vec<&str>, out: &mut String| {
        if !para.is_empty() {
            out.push_str("<p>");
            out.push_str(&inline(&para.join(" "), kb_base));
            out.push_str("</p>\n");
            para.clear();
        }
    };
    let flush_list = |list: &mut Option<(&'static str, Vec<String>)>, out: &mut String| {
        if let Some((tag, items)) = list.take() {
            out.push_str(&format!("<{tag}>"));
            for i in items {
                out.push_str(&format!("<li>{}</li>", inline(&i, kb_base)));
            }
            out.push_str(&format!("</{tag}>\n"));
        }
    };
    for line in markdown.lines() {
        if let Some(lines) = code.as_mut() {
            if line.trim_start().starts_with("```") {
                out.push_str(&format!(
                    "<pre><code>{}</code></pre>\n",
                    esc(&lines.join("\n"))
                ));
                code = None;
            } else {
                lines.push(line);
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            flush_para(&mut para, &mut out);
            flush_list(&mut list, &mut out);
            code = Some(Vec::new());
            continue;
        }
        if trimmed.is_empty() {
            flush_para(&mut para, &mut out);
            flush_list(&mut list, &mut out);
            continue;
        }
        if let Some(level) = heading_level(trimmed) {
            flush_para(&mut para, &mut out);
            flush_list(&mut list, &mut out);
            let text = trimmed[level..].trim().trim_end_matches('#').trim();
            // h1 is the article's title: headings inside start at h2.
            let h = (level + 1).min(6);
            out.push_str(&format!("<h{h}>{}</h{h}>\n", inline(text, kb_base)));
            continue;
        }
        if let Some((tag, item)) = list_item(trimmed) {
            flush_para(&mut para, &mut out);
            match list.as_mut() {
                Some((t, items)) if *t == tag => items.push(item.to_string()),
                _ => {
                    flush_list(&mut list, &mut out);
                    list = Some((tag, vec![item.to_string()]));
                }
            }
            continue;
        }
        if let Some((_, items)) = list.as_mut()
            && line.starts_with(char::is_whitespace)
            && let Some(last) = items.last_mut()
        {
            // A continuation line of the last item.
            last.push(' ');
            last.push_str(trimmed);
            continue;
        }
        flush_list(&mut list, &mut out);
        para.push(trimmed);
    }
    if let Some(lines) = code {
        out.push_str(&format!(
            "<pre><code>{}</code></pre>\n",
            esc(&lines.join("\n"))
        ));
    }
    flush_para(&mut para, &mut out);
    flush_list(&mut list, &mut out);
    out
}

fn heading_level(line: &str) -> Option<usize> {
    let n = line.chars().take_while(|&c| c == '#').count();
    ((1..=6).contains(&n) && line[n..].starts_with(' ')).then_some(n)
}

fn list_item(line: &str) -> Option<(&'static str, &str)> {
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some(("ul", rest.trim()));
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if (1..=9).contains(&digits)
        && let Some(rest) = line[digits..].strip_prefix(". ")
    {
        return Some(("ol", rest.trim()));
    }
    None
}

/// Where a link's target points, if it is one we keep.
pub fn link_href(target: &str, kb_base: &str) -> Option<String> {
    let target = target.trim();
    if let Some(slug) = target.strip_prefix("kb:") {
        return crate::kb::valid_slug(slug).then(|| format!("{kb_base}/{slug}"));
    }
    if let Some(slug) = target.strip_prefix("/kb/") {
        return crate::kb::valid_slug(slug).then(|| format!("{kb_base}/{slug}"));
    }
    let lower = target.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:"))
        .then(|| target.to_string())
}

/// Inline markup of one block's text, escaped.
fn inline(text: &str, kb_base: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '`' => {
                if let Some(end) = rest[1..].find('`') {
                    out.push_str(&format!("<code>{}</code>", esc(&rest[1..1 + end])));
                    rest = &rest[end + 2..];
                    continue;
                }
            }
            '*' | '_' => {
                let strong = rest.len() > 1 && rest[1..].starts_with(c);
                let mark = if strong { 2 } else { 1 };
                let delim = &rest[..mark];
                if let Some(end) = rest[mark..].find(delim)
                    && end > 0
                {
                    let tag = if strong { "strong" } else { "em" };
                    let inner = inline(&rest[mark..mark + end], kb_base);
                    out.push_str(&format!("<{tag}>{inner}</{tag}>"));
                    rest = &rest[mark + end + mark..];
                    continue;
                }
            }
            '[' => {
                if let Some(close) = rest.find("](")
                    && let Some(end) = rest[close + 2..].find(')')
                {
                    let label = &rest[1..close];
                    let target = &rest[close + 2..close + 2 + end];
                    let label_html = inline(label, kb_base);
                    match link_href(target, kb_base) {
                        Some(href) => {
                            out.push_str(&format!(r#"<a href="{}">{label_html}</a>"#, esc(&href)))
                        }
                        None => out.push_str(&label_html),
                    }
                    rest = &rest[close + 2 + end + 1..];
                    continue;
                }
            }
            _ => {}
        }
        out.push_str(&esc(&rest[..c.len_utf8()]));
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn blocks_and_inline_markup() {
        let html = to_html(
            "## Steps\n\nFirst *do* **this**, see [the other](kb:other).\n\n- one\n- two `x<y`\n\n1. a\n2. b\n\n```\n<b>\n```\n",
            "/kb",
        );
        assert!(html.contains("<h3>Steps</h3>"), "{html}");
        assert!(html.contains("<em>do</em> <strong>this</strong>"), "{html}");
        assert!(
            html.contains(r#"<a href="/kb/other">the other</a>"#),
            "{html}"
        );
        assert!(
            html.contains("<ul><li>one</li><li>two <code>x&lt;y</code></li></ul>"),
            "{html}"
        );
        assert!(html.contains("<ol><li>a</li><li>b</li></ol>"), "{html}");
        assert!(html.contains("<pre><code>&lt;b&gt;</code></pre>"), "{html}");
    }

    #[test]
    fn no_raw_html_and_no_script_links() {
        let html = to_html(
            "<script>alert(1)</script> [x](javascript:alert(1)) [y](\"><img src=x>)\n<img src=x onerror=alert(1)>",
            "/kb",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
