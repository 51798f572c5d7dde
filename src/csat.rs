//! Customer satisfaction (CSAT): the scales, what counts as a rating, and
//! the records a survey leaves in the store. Pure: sending the survey is
//! `process::csat`, the page that takes the vote `public::survey`.
//!
//! One survey per resolution: a ticket resolved, reopened and resolved again
//! is asked again, under the next resolution number. A rating belongs to the
//! newest survey that went out; it may be changed for a while
//! (`survey_changeable_for` in rules/customer.toml), then it stands.

use serde::{Deserialize, Serialize};

/// Which answers a survey offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Good (1) or bad (0).
    GoodBad,
    /// 1 (worst) to 5 (best).
    Five,
}

impl Scale {
    pub fn parse(s: &str) -> Option<Scale> {
        match s {
            "good_bad" => Some(Scale::GoodBad),
            "five" => Some(Scale::Five),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scale::GoodBad => "good_bad",
            Scale::Five => "five",
        }
    }

    /// The answers, best first: (value in links and forms, label).
    pub fn answers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scale::GoodBad => &[("good", "Good"), ("bad", "Bad")],
            Scale::Five => &[
                ("5", "5 – very good"),
                ("4", "4 – good"),
                ("3", "3 – neither good nor bad"),
                ("2", "2 – poor"),
                ("1", "1 – very poor"),
            ],
        }
    }

    /// The score of a form or link value (`good`, `bad`, `1`…`5`).
    pub fn score_of(self, value: &str) -> Option<u8> {
        match (self, value.trim().to_ascii_lowercase().as_str()) {
            (Scale::GoodBad, "good") => Some(1),
            (Scale::GoodBad, "bad") => Some(0),
            (Scale::Five, v) => v.parse::<u8>().ok().filter(|n| (1..=5).contains(n)),
            _ => None,
        }
    }

    /// The form value of a score (the inverse of `score_of`).
    pub fn value_of(self, score: u8) -> String {
        match self {
            Scale::GoodBad if score >= 1 => "good".into(),
            Scale::GoodBad => "bad".into(),
            Scale::Five => score.to_string(),
        }
    }

    /// Whether a score counts as satisfied (good, or 4–5): the CSAT share.
    pub fn satisfied(self, score: u8) -> bool {
        match self {
            Scale::GoodBad => score >= 1,
            Scale::Five => score >= 4,
        }
    }
}

/// Reads a reply to the survey mail as a rating: its first non-empty line
/// alone, quotes and trailing punctuation stripped, must be one answer of
/// the scale ("5", "good", "+", "-", "bad"…). Anything more is a message,
/// not a vote: "4 stars but the printer still jams" reopens as usual.
pub fn rating_in_reply(scale: Scale, text: &str) -> Option<u8> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let word = first
        .trim_matches(|c: char| {
            c == '"' || c == '\'' || c == '“' || c == '”' || c == '«' || c == '»'
        })
        .trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_ascii_lowercase();
    if word.is_empty() || word.len() > 12 {
        return None;
    }
    match scale {
        Scale::GoodBad => match word.as_str() {
            "good" | "+" | "+1" | "yes" | "👍" => Some(1),
            "bad" | "-" | "-1" | "no" | "👎" => Some(0),
            _ => None,
        },
        Scale::Five => match word.as_str() {
            "+" | "good" => Some(5),
            "-" | "bad" => Some(1),
            w => w
                .strip_suffix("/5")
                .unwrap_or(w)
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=5).contains(n)),
        },
    }
}

/// One survey: asked after resolution number `resolution` of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    pub resolution: u32,
    pub scale: Scale,
    /// The ticket's queue when it was resolved (reports filter by it).
    pub queue: String,
    /// When the survey mail is due (resolved at + delay).
    pub due: i64,
    /// When it was queued for delivery; None while scheduled, or when it
    /// was skipped (`skipped` says why).
    #[serde(default)]
    pub sent_at: Option<i64>,
    #[serde(default)]
    pub skipped: Option<String>,
    /// The agents who replied publicly before this resolution (by name).
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub rating: Option<Rating>,
}

/// A customer's answer to a survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    pub score: u8,
    #[serde(default)]
    pub comment: String,
    /// When it was first given and last changed.
    pub at: i64,
    pub changed_at: i64,
    /// Who answered (the survey's recipient) and how: "web" or "mail".
    pub by: String,
    pub via: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ratings_in_replies() {
        for (text, want) in [
            ("5", Some(5)),
            ("  4 \n\nOn Mon, support wrote:\n> How did we do?", Some(4)),
            ("\"3\"", Some(3)),
            ("4/5", Some(4)),
            ("+", Some(5)),
            ("-", Some(1)),
            ("Good!", Some(5)),
            ("6", None),
            ("0", None),
            ("4 stars but the printer still jams", None),
            ("", None),
        ] {
            assert_eq!(rating_in_reply(Scale::Five, text), want, "{text:?}");
        }
        assert_eq!(rating_in_reply(Scale::GoodBad, "good"), Some(1));
        assert_eq!(rating_in_reply(Scale::GoodBad, "'bad'"), Some(0));
        assert_eq!(rating_in_reply(Scale::GoodBad, "+"), Some(1));
        assert_eq!(rating_in_reply(Scale::GoodBad, "5"), None);
    }

    #[test]
    fn form_values_round_trip() {
        for s in [Scale::GoodBad, Scale::Five] {
            for (v, _) in s.answers() {
                let score = s.score_of(v).unwrap();
                assert_eq!(s.value_of(score), *v);
            }
        }
        assert_eq!(Scale::Five.score_of("9"), None);
        assert_eq!(Scale::GoodBad.score_of("5"), None);
    }
}
