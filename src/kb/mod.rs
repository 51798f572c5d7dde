//! The knowledge base: Markdown articles in `server.kb_dir` (default `kb/`
//! beside rules/), one file per article, its slug the file name
//! (`reset-password.md` → `reset-password`). Each starts with front matter,
//! TOML between `+++` lines or `key: value` lines between `---` lines:
//! `title`, `tags`, `language` (default `en`), `visibility` (`public` or
//! `internal`).
//!
//! Loaded with the rules (so an edit reloads it, and a broken article
//! keeps the working set in force), rendered by our own Markdown subset
//! (`crate::web::markdown`: everything escaped, no raw HTML), searched in
//! an index of its own built in memory (`crate::search_index::articles`),
//! with the tickets' tokenizer and query language. This module knows only
//! the files, so the rules can hold it without depending on the pages or
//! the search engine.
//!
//! Invariant: an internal article is never served on the public listener,
//! never suggested to a customer and never searched there.

use crate::diagnostic::Diagnostic;
use std::path::{Path, PathBuf};

/// Who may read an article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Customers on the public pages, suggestions in the acknowledgement.
    Public,
    /// Agents only (the web view, `#kb`).
    Internal,
}

#[derive(Debug, Clone)]
pub struct Article {
    pub slug: String,
    pub title: String,
    pub tags: Vec<String>,
    pub language: String,
    pub visibility: Visibility,
    /// The Markdown after the front matter.
    pub body: String,
}

impl Article {
    pub fn is_public(&self) -> bool {
        self.visibility == Visibility::Public
    }
}

/// The loaded articles, sorted by slug. Their search index is built from
/// them by `crate::search_index::articles` (which names the engine) and
/// kept until another load's `generation` replaces them.
#[derive(Default)]
pub struct Kb {
    pub articles: Vec<Article>,
    /// Unique per load (0: no load).
    pub generation: u64,
}

static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for Kb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kb")
            .field("articles", &self.articles.len())
            .finish()
    }
}

/// A slug is a file name we can put in a URL and a mail command as is.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 100
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Kb {
    /// Every `*.md` of `dir` (none when it does not exist), each problem
    /// as `file:line:column`: front matter, duplicate slugs, links to
    /// articles that do not exist.
    pub fn load(dir: &Path) -> Result<Kb, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let mut articles: Vec<(Article, PathBuf, String, usize)> = Vec::new();
        for path in files(dir) {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t.replace("\r\n", "\n"),
                Err(e) => {
                    diags.push(diag(&path, 1, format!("cannot read: {e}")));
                    continue;
                }
            };
            let slug = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            if !valid_slug(&slug) {
                diags.push(diag(
                    &path,
                    1,
                    format!("article file names are lower-case letters, digits, - and _ (the slug), not {slug:?}"),
                ));
                continue;
            }
            match parse(&slug, &text, &path) {
                Ok((a, body_line)) => {
                    if articles.iter().any(|(b, ..)| b.slug == a.slug) {
                        diags.push(diag(&path, 1, format!("duplicate slug {slug:?}")));
                    } else {
                        articles.push((a, path, text, body_line));
                    }
                }
                Err(d) => diags.push(d),
            }
        }
        // Links between articles: `[..](kb:SLUG)` or `[..](/kb/SLUG)`.
        for (a, path, _, body_line) in &articles {
            for (i, line) in a.body.lines().enumerate() {
                for (col, slug) in kb_links(line) {
                    if !articles.iter().any(|(b, ..)| b.slug == slug) {
                        diags.push(Diagnostic {
                            file: path.clone(),
                            line: body_line + i,
                            column: col + 1,
                            message: format!("link to a missing article {slug:?}"),
                        });
                    }
                }
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        let mut articles: Vec<Article> = articles.into_iter().map(|(a, ..)| a).collect();
        articles.sort_by(|a, b| a.slug.cmp(&b.slug));
        let generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Kb {
            articles,
            generation,
        })
    }

    pub fn get(&self, slug: &str) -> Option<&Article> {
        self.articles.iter().find(|a| a.slug == slug)
    }

    /// The text `#kb SLUG` puts into an agent's reply: title, the Markdown
    /// (readable as plain text) and, when the public pages are served, its
    /// link. Only a public article: an internal one stays with the agents.
    pub fn reply_text(&self, slug: &str, public_base: Option<&str>) -> Result<String, String> {
        let a = self
            .get(slug)
            .ok_or_else(|| format!("no knowledge base article {slug:?}"))?;
        if !a.is_public() {
            return Err(format!(
                "knowledge base article {slug:?} is internal: it is never sent to a customer"
            ));
        }
        let mut text = format!("{}\n\n{}", a.title, a.body.trim());
        if let Some(base) = public_base {
            text.push_str(&format!("\n\n{base}/kb/{}", a.slug));
        }
        Ok(text)
    }
}

/// The `*.md` files of `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

/// Size and modification time of every article, to notice edits.
pub fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<std::time::SystemTime>, u64)> {
    files(dir)
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            (p, modified, meta.map_or(0, |m| m.len()))
        })
        .collect()
}

fn diag(path: &Path, line: usize, message: String) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column: 1,
        message,
    }
}

/// Slugs linked from one line, with their byte column.
fn kb_links(line: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = line[at..].find("](") {
        let start = at + i + 2;
        let Some(end) = line[start..].find(')') else {
            break;
        };
        let target = line[start..start + end].trim();
        if let Some(slug) = target
            .strip_prefix("kb:")
            .or_else(|| target.strip_prefix("/kb/"))
        {
            out.push((start, slug.to_string()));
        }
        at = start + end;
    }
    out
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "default_language")]
    language: String,
    visibility: String,
}

fn default_language() -> String {
    "en".into()
}

/// The article of `text`, and the line its body starts on.
fn parse(slug: &str, text: &str, path: &Path) -> Result<(Article, usize), Diagnostic> {
    let first = text.lines().next().unwrap_or("").trim_end();
    let fence = match first {
        "+++" | "---" => first,
        _ => {
            return Err(diag(
                path,
                1,
                "missing front matter: start with +++ (TOML) or --- (key: value) lines".into(),
            ));
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let Some(close) = lines.iter().skip(1).position(|l| l.trim_end() == fence) else {
        return Err(diag(
            path,
            1,
            format!("front matter not closed by a {fence} line"),
        ));
    };
    let head = &lines[1..=close];
    let body_line = close + 3; // 1-based line after the closing fence
    let fm: FrontMatter = if fence == "+++" {
        let head_text = head.join("\n");
        toml::from_str(&head_text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |s| crate::diagnostic::line_col(&head_text, s.start));
            Diagnostic {
                file: path.to_path_buf(),
                line: line + 1,
                column,
                message: format!("front matter: {}", e.message().trim()),
            }
        })?
    } else {
        yaml_like(head, path)?
    };
    let title = fm.title.trim().to_string();
    if title.is_empty() {
        return Err(diag(path, 2, "front matter: empty title".into()));
    }
    let visibility = match fm.visibility.as_str() {
        "public" => Visibility::Public,
        "internal" => Visibility::Internal,
        other => {
            let line = head
                .iter()
                .position(|l| l.trim_start().starts_with("visibility"))
                .map_or(2, |i| i + 2);
            return Err(diag(
                path,
                line,
                format!("front matter: visibility is public or internal, not {other:?}"),
            ));
        }
    };
    let language = fm.language.trim().to_ascii_lowercase();
    if language.is_empty()
        || language.len() > 8
        || !language
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '-')
    {
        return Err(diag(
            path,
            2,
            format!("front matter: language {language:?} is not a language tag like en or de"),
        ));
    }
    let body = lines
        .get(close + 2..)
        .map_or_else(String::new, |b| b.join("\n"));
    Ok((
        Article {
            slug: slug.to_string(),
            title,
            tags: fm.tags,
            language,
            visibility,
            body: body.trim_start_matches('\n').to_string(),
        },
        body_line,
    ))
}

/// `key: value` front matter (`tags: [a, b]` or `tags: a, b`).
fn yaml_like(head: &[&str], path: &Path) -> Result<FrontMatter, Diagnostic> {
    let (mut title, mut tags, mut language, mut visibility) = (None, Vec::new(), None, None);
    for (i, line) in head.iter().enumerate() {
        let line_no = i + 2;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((key, value)) = t.split_once(':') else {
            return Err(diag(
                path,
                line_no,
                format!("front matter: expected key: value, not {t:?}"),
            ));
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim() {
            "title" => title = Some(value),
            "language" => language = Some(value),
            "visibility" => visibility = Some(value),
            "tags" => {
                tags = value
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            other => {
                return Err(diag(
                    path,
                    line_no,
                    format!(
                        "front matter: unknown key {other:?} (known: title, tags, language, visibility)"
                    ),
                ));
            }
        }
    }
    let missing = |k: &str| diag(path, 1, format!("front matter: missing {k}"));
    Ok(FrontMatter {
        title: title.ok_or_else(|| missing("title"))?,
        tags,
        language: language.unwrap_or_else(default_language),
        visibility: visibility.ok_or_else(|| missing("visibility"))?,
    })
}

#[cfg(test)]
mod tests;
