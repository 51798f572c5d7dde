use super::*;

fn words(s: &str) -> Vec<String> {
    tokenize(s).collect()
}

#[test]
fn tokenizer_lowercases_and_keeps_unicode_letters() {
    assert_eq!(
        words("Grüße aus KÖLN: Straße, naïve café—e-mail #42"),
        [
            "grüße", "aus", "köln", "straße", "naïve", "café", "e", "mail", "42"
        ]
    );
    assert_eq!(words("alice@example.com"), ["alice", "example", "com"]);
    assert_eq!(words("  ,,, "), Vec::<String>::new());
    let long = "x".repeat(100);
    assert_eq!(words(&long)[0].chars().count(), MAX_TERM_CHARS);
}

#[test]
fn parser_knows_words_phrases_prefixes_and_operators() {
    let q = Query::parse(
        r#"Printer "paper jam" print* from:Alice@Example.com from:bob status:Open queue:billing tag:#vip before:2026-03-01 after:2026-01-01"#,
    )
    .unwrap();
    assert_eq!(
        q.clauses,
        vec![
            Clause::Word("printer".into()),
            Clause::Phrase(vec!["paper".into(), "jam".into()]),
            Clause::Prefix("print".into()),
            Clause::From("from:alice@example.com".into()),
            Clause::From("from:bob".into()),
            Clause::Status("open".into()),
            Clause::Queue("billing".into()),
            Clause::Tag("vip".into()),
            Clause::Before(1_772_323_200),
            Clause::After(1_767_225_600),
        ]
    );
}

#[test]
fn parser_edge_cases() {
    assert_eq!(Query::parse("   "), Err(QueryError::Empty));
    assert_eq!(Query::parse("\"open"), Err(QueryError::UnbalancedQuote));
    assert!(matches!(
        Query::parse("after:yesterday"),
        Err(QueryError::BadDate(_))
    ));
    assert!(matches!(
        Query::parse("p*"),
        Err(QueryError::ShortPrefix(_))
    ));
    // A word the tokenizer splits is a phrase; an unknown field is words.
    assert_eq!(
        Query::parse("e-mail").unwrap().clauses,
        vec![Clause::Phrase(vec!["e".into(), "mail".into()])]
    );
    assert_eq!(
        Query::parse("note:urgent").unwrap().clauses,
        vec![Clause::Phrase(vec!["note".into(), "urgent".into()])]
    );
    // A quoted word is not a prefix.
    assert_eq!(
        Query::parse("\"print*\"").unwrap().clauses,
        vec![Clause::Word("print".into())]
    );
    assert_eq!(
        Query::parse("Grüße").unwrap().clauses,
        vec![Clause::Word("grüße".into())]
    );
}

#[test]
fn from_terms_cover_address_and_name() {
    assert_eq!(
        from_terms("Alice@Example.com", "Alice Müller"),
        [
            "from:alice@example.com",
            "from:alice",
            "from:example",
            "from:com",
            "from:alice",
            "from:müller"
        ]
    );
}

#[test]
fn phrases_need_adjacent_words_in_order() {
    let p = vec!["paper".to_string(), "jam".to_string()];
    assert!(contains_phrase("There is a Paper-jam again", &p));
    assert!(!contains_phrase("jam of paper", &p));
    assert!(!contains_phrase("paper and a jam", &p));
}

#[test]
fn snippets_mark_matches_around_the_first_one() {
    let q = Query::parse("jam print*").unwrap();
    let text = format!(
        "{} The printer has a JAM today. {}",
        "a ".repeat(200),
        "b ".repeat(200)
    );
    let s = snippet(&text, &q);
    let hits: Vec<&str> = s
        .iter()
        .filter(|p| p.hit)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(hits, ["printer", "JAM"]);
    assert!(s[0].text.starts_with("…a a"), "{s:?}");
    assert!(s.last().unwrap().text.ends_with('…'));
    let len: usize = s.iter().map(|p| p.text.chars().count()).sum();
    assert!(len <= SNIPPET_CHARS + 8, "{len}");
    // Text is returned as is (escaping is the renderer's), matches included.
    let q = Query::parse("script").unwrap();
    let s = snippet("<script>alert(1)</script>", &q);
    assert_eq!(
        s[0],
        Piece {
            text: "<".into(),
            hit: false
        }
    );
    assert_eq!(
        s[1],
        Piece {
            text: "script".into(),
            hit: true
        }
    );
    // Multi-byte text near the cut does not panic.
    let q = Query::parse("zz").unwrap();
    let s = snippet(&format!("{}zz", "ü ".repeat(300)), &q);
    assert!(s.iter().any(|p| p.hit));
}
