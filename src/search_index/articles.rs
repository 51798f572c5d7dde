//! The knowledge base's search index (`crate::kb`): a second, small
//! tantivy index built in memory (`Index::create_in_ram`) each time the
//! articles load, here because only `search_index` names tantivy. It uses
//! the tickets' tokenizer ([`Words`]) and query language, so a word finds
//! an article the way it finds a ticket. A few dozen articles index in
//! milliseconds, so there is nothing to persist or keep in step.

use super::engine::Words;
use crate::kb::{Article, Kb};
use crate::search::{self, Clause, Query};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, Occur, PhraseQuery,
    Query as TantivyQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

/// The score (BM25 summed over the request's words, title and tag words
/// counting [`ABOUT_BOOST`] times more) an article needs to be suggested to
/// a customer. Measured on the shipped articles: a request about an
/// article's subject ("I forgot my password and cannot log in", "please
/// send me a copy of invoice 1234") scores 6.7 to 6.9; unrelated ones (a
/// lost parcel, an app crash, a printer jam) score at most 1.8.
pub const MIN_SUGGESTION_SCORE: f32 = 3.0;

/// A request's words considered for suggestions, at most (a long mail is
/// cut, not refused).
const MAX_SUGGESTION_TERMS: usize = 200;

/// How much more a word of an article's title or tags counts than one of
/// its text: with a handful of articles, the text's words say little (BM25's
/// rarity weight is coarse over three documents), the title says what the
/// article answers.
const ABOUT_BOOST: f32 = 3.0;

/// Words too common (English and German) to tell what a request is about;
/// left out of suggestion queries, so "your" in a title does not match
/// every request.
const STOPWORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "our", "are", "was", "were", "has", "have", "had", "not",
    "but", "with", "this", "that", "there", "from", "can", "cannot", "could", "would", "should",
    "will", "what", "when", "where", "which", "who", "how", "why", "all", "any", "get", "getting",
    "got", "please", "thanks", "thank", "hello", "dear", "regards", "since", "also", "just",
    "some", "about", "into", "out", "been", "does", "did", "its", "one", "two", "them", "they",
    "der", "die", "das", "und", "ist", "nicht", "ich", "sie", "mit", "ein", "eine", "einen",
    "mein", "meine", "ihr", "ihre", "wir", "uns", "auf", "für", "von", "bei", "hallo", "bitte",
    "danke", "seit", "wie", "was", "wenn", "kann", "habe", "haben",
];

/// The name the tickets' tokenizer is registered under in this index.
const WORDS: &str = "postdesk_kb_words";

/// The index of the last knowledge base searched, by its generation: a
/// reload (a new generation) builds a new one at its first search.
static CURRENT: Mutex<Option<(u64, Arc<KbIndex>)>> = Mutex::new(None);

/// The index of `kb`, built on first use after each load.
fn index_of(kb: &Kb) -> Result<Arc<KbIndex>, tantivy::TantivyError> {
    let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((generation, index)) = current.as_ref()
        && *generation == kb.generation
    {
        return Ok(index.clone());
    }
    let index = Arc::new(KbIndex::build(&kb.articles)?);
    *current = Some((kb.generation, index.clone()));
    Ok(index)
}

/// Articles of `kb` matching `query` (the tickets' query language; only its
/// words, prefixes, phrases and `tag:` apply), best first.
pub fn search<'k>(kb: &'k Kb, query: &Query, public_only: bool, limit: usize) -> Vec<&'k Article> {
    if kb.articles.is_empty() {
        return Vec::new();
    }
    match index_of(kb).and_then(|i| i.search(query, public_only, limit)) {
        Ok(slugs) => slugs.iter().filter_map(|(s, _)| kb.get(s)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "knowledge base search failed");
            Vec::new()
        }
    }
}

/// Up to `limit` public articles that match a customer's request well
/// enough ([`MIN_SUGGESTION_SCORE`]), best first.
pub fn suggest<'k>(kb: &'k Kb, text: &str, limit: usize) -> Vec<&'k Article> {
    if kb.articles.is_empty() {
        return Vec::new();
    }
    match index_of(kb).and_then(|i| i.suggest(text, limit)) {
        Ok(slugs) => slugs.iter().filter_map(|(s, _)| kb.get(s)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "knowledge base suggestion failed");
            Vec::new()
        }
    }
}

struct KbIndex {
    reader: IndexReader,
    slug: Field,
    public: Field,
    tag: Field,
    text: Field,
    /// The title and tags alone: a request naming them is about the article.
    about: Field,
    /// Every word of every article, for prefixes (`pass*`).
    vocabulary: BTreeSet<String>,
}

impl KbIndex {
    fn build(articles: &[Article]) -> tantivy::Result<KbIndex> {
        let mut b = Schema::builder();
        let text_options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let slug = b.add_text_field("slug", STRING | STORED);
        let public = b.add_text_field("public", STRING);
        let tag = b.add_text_field("tag", STRING);
        let text = b.add_text_field("text", text_options.clone());
        let about_field = b.add_text_field("about", text_options);
        let index = Index::create_in_ram(b.build());
        index.tokenizers().register(WORDS, Words);
        // tantivy's floor for one indexing thread.
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000)?;
        let mut vocabulary = BTreeSet::new();
        for a in articles {
            let mut doc = TantivyDocument::default();
            doc.add_text(slug, &a.slug);
            doc.add_text(public, if a.is_public() { "yes" } else { "no" });
            for t in &a.tags {
                doc.add_text(tag, t.to_lowercase());
            }
            // Title and tags count twice: they say what the article is about.
            let about = format!("{} {}", a.title, a.tags.join(" "));
            for value in [about.as_str(), about.as_str(), a.body.as_str()] {
                vocabulary.extend(search::tokenize(value));
                doc.add_text(text, value);
            }
            doc.add_text(about_field, &about);
            writer.add_document(doc)?;
        }
        writer.commit()?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(KbIndex {
            reader,
            slug,
            public,
            tag,
            text,
            about: about_field,
            vocabulary,
        })
    }

    fn word(&self, w: &str) -> Box<dyn TantivyQuery> {
        Box::new(TermQuery::new(
            Term::from_field_text(self.text, w),
            IndexRecordOption::WithFreqs,
        ))
    }

    fn public_only(&self) -> (Occur, Box<dyn TantivyQuery>) {
        let q = TermQuery::new(
            Term::from_field_text(self.public, "yes"),
            IndexRecordOption::Basic,
        );
        (
            Occur::Must,
            Box::new(ConstScoreQuery::new(Box::new(q), 0.0)),
        )
    }

    /// Slugs matching every word, prefix and phrase of `query` (and its
    /// `tag:`s), best first; the ticket-only filters (status, queue, from,
    /// dates) match no article.
    fn search(
        &self,
        query: &Query,
        public_only: bool,
        limit: usize,
    ) -> tantivy::Result<Vec<(String, f32)>> {
        let mut musts: Vec<(Occur, Box<dyn TantivyQuery>)> = Vec::new();
        for c in &query.clauses {
            let q: Box<dyn TantivyQuery> = match c {
                Clause::Word(w) => self.word(w),
                Clause::Phrase(ws) if ws.len() == 1 => self.word(&ws[0]),
                Clause::Phrase(ws) if ws.is_empty() => continue,
                Clause::Phrase(ws) => Box::new(PhraseQuery::new(
                    ws.iter()
                        .map(|w| Term::from_field_text(self.text, w))
                        .collect(),
                )),
                Clause::Prefix(p) => {
                    let words: Vec<Box<dyn TantivyQuery>> = self
                        .vocabulary
                        .range(p.clone()..)
                        .take_while(|w| w.starts_with(p.as_str()))
                        .take(super::MAX_PREFIX_TERMS)
                        .map(|w| self.word(w))
                        .collect();
                    if words.is_empty() {
                        Box::new(EmptyQuery)
                    } else {
                        Box::new(BooleanQuery::union(words))
                    }
                }
                Clause::Tag(t) => Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.tag, &t.to_lowercase()),
                        IndexRecordOption::Basic,
                    )),
                    0.0,
                )),
                _ => Box::new(EmptyQuery),
            };
            musts.push((Occur::Must, q));
        }
        if public_only {
            musts.push(self.public_only());
        }
        self.top(BooleanQuery::new(musts), limit, 0.0)
    }

    /// Public articles sharing words with `text`, scoring at least
    /// [`MIN_SUGGESTION_SCORE`], best first.
    fn suggest(&self, text: &str, limit: usize) -> tantivy::Result<Vec<(String, f32)>> {
        self.suggest_scoring(text, limit, MIN_SUGGESTION_SCORE)
    }

    fn suggest_scoring(
        &self,
        text: &str,
        limit: usize,
        min_score: f32,
    ) -> tantivy::Result<Vec<(String, f32)>> {
        let words: BTreeSet<String> = search::tokenize(text)
            .filter(|w| w.chars().count() >= 3 && !STOPWORDS.contains(&w.as_str()))
            .take(MAX_SUGGESTION_TERMS)
            .collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let any: Vec<Box<dyn TantivyQuery>> = words
            .iter()
            .flat_map(|w| {
                let about: Box<dyn TantivyQuery> = Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.about, w),
                        IndexRecordOption::WithFreqs,
                    )),
                    ABOUT_BOOST,
                ));
                [self.word(w), about]
            })
            .collect();
        let q = BooleanQuery::new(vec![
            (Occur::Must, Box::new(BooleanQuery::union(any))),
            self.public_only(),
        ]);
        self.top(q, limit, min_score)
    }

    fn top(
        &self,
        q: BooleanQuery,
        limit: usize,
        min_score: f32,
    ) -> tantivy::Result<Vec<(String, f32)>> {
        let searcher = self.reader.searcher();
        let found = searcher.search(&q, &TopDocs::with_limit(limit.max(1)))?;
        let mut out = Vec::new();
        for (score, addr) in found.into_iter().take(limit) {
            if score < min_score {
                continue;
            }
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(slug) = doc.get_first(self.slug).and_then(|v| v.as_str()) {
                tracing::debug!(slug, score, "knowledge base match");
                out.push((slug.to_string(), score));
            }
        }
        Ok(out)
    }
}
