//! Every word the customers' pages show (and the few words of ours in
//! customer mail), one table per language (English and German shipped), so
//! a translation is one more table here and nothing else. Top-level, not in
//! `public`, so the processor can name it without depending on the pages.
//! `{n}` and `{minutes}` are filled in by the page. The language is
//! `?lang=` if given, else the browser's Accept-Language, else English
//! ([`pick`]); in mail, where there is no browser, the language of the
//! customer's own words (`process::reply`).

/// The texts of one language.
pub struct Texts {
    /// The `lang` attribute and `?lang=` value.
    pub lang: &'static str,
    pub new_title: &'static str,
    pub new_intro: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub subject: &'static str,
    pub body: &'static str,
    pub attachment: &'static str,
    pub attachment_hint: &'static str,
    /// The honeypot's label, read out by screen readers only.
    pub leave_empty: &'static str,
    pub send: &'static str,
    pub thanks_title: &'static str,
    /// `{n}`: the ticket number.
    pub thanks_ticket: &'static str,
    /// When the ticket is not made yet (or never will be: the honeypot).
    pub thanks_pending: &'static str,
    pub thanks_mail: &'static str,
    pub too_many_title: &'static str,
    /// `{minutes}`: when to try again.
    pub too_many_body: &'static str,
    pub missing: &'static str,
    pub bad_email: &'static str,
    /// `{n}`: the limit in MB.
    pub too_large: &'static str,
    pub expired_title: &'static str,
    pub expired_body: &'static str,
    pub refused_title: &'static str,
    pub refused_body: &'static str,
    pub not_taken: &'static str,
    pub status_title: &'static str,
    pub status_label: &'static str,
    pub status_new: &'static str,
    pub status_open: &'static str,
    pub status_pending: &'static str,
    pub status_resolved: &'static str,
    pub status_closed: &'static str,
    pub conversation: &'static str,
    pub you: &'static str,
    pub other_participant: &'static str,
    pub support: &'static str,
    pub add_message: &'static str,
    pub your_message: &'static str,
    pub send_message: &'static str,
    pub closed_write: &'static str,
    pub close_ticket: &'static str,
    pub close_hint: &'static str,
    pub reopen: &'static str,
    pub reopen_hint: &'static str,
    pub sent: &'static str,
    pub sent_pending: &'static str,
    pub closed_done: &'static str,
    pub reopened_done: &'static str,
    pub not_changed: &'static str,
    pub other_language: &'static str,
    /// "This solved my problem" (a deflection, see `crate::kb`).
    pub solved: &'static str,
    pub solved_hint: &'static str,
    pub solved_done: &'static str,
    /// The knowledge base link on the status page.
    pub kb_link: &'static str,
    /// The line naming the status link under an agent's reply in mail.
    pub request_online: &'static str,
    /// The survey page (`public/survey.rs`).
    pub survey_title: &'static str,
    /// `{n}`: the ticket number.
    pub survey_intro: &'static str,
    /// `{answer}`: the rating given so far.
    pub survey_so_far: &'static str,
    pub survey_rating: &'static str,
    pub survey_comment: &'static str,
    pub survey_send: &'static str,
    pub survey_nothing_yet: &'static str,
    pub survey_choose: &'static str,
    pub survey_recorded: &'static str,
    pub survey_changed: &'static str,
    pub survey_unchanged: &'static str,
    pub survey_change_later: &'static str,
    pub survey_too_late: &'static str,
    pub survey_invalid_title: &'static str,
    pub survey_invalid_body: &'static str,
    pub survey_refused_title: &'static str,
    pub survey_refused_body: &'static str,
    pub try_later: &'static str,
    /// The answers of the good/bad scale: good, bad.
    pub survey_good_bad: [&'static str; 2],
    /// The answers of the five-point scale, 1 to 5.
    pub survey_five: [&'static str; 5],
    /// A five-point rating in a sentence; `{n}`: the score.
    pub survey_of_five: &'static str,
}

pub static EN: Texts = Texts {
    lang: "en",
    new_title: "Contact support",
    new_intro: "Tell us what you need. We answer by email.",
    name: "Your name",
    email: "Your email address",
    subject: "Subject",
    body: "Your message",
    attachment: "Attachments (optional)",
    attachment_hint: "Several files allowed, {n} MB in all.",
    leave_empty: "Leave this field empty",
    send: "Send request",
    thanks_title: "Thank you",
    thanks_ticket: "We have received your request. Its ticket number is #{n}.",
    thanks_pending: "We have received your request.",
    thanks_mail: "You will receive a confirmation by email, with a link where you can follow your request.",
    too_many_title: "Too many requests",
    too_many_body: "We have received many requests from you. Please try again in {minutes} minutes.",
    missing: "Please fill in your email address, a subject and your message.",
    bad_email: "This email address does not look right.",
    too_large: "The attachments are too large: at most {n} MB in all.",
    expired_title: "This form has expired",
    expired_body: "For your safety, forms expire after a few hours. Please open the form again; nothing was sent.",
    refused_title: "Not accepted",
    refused_body: "This request did not come from our own page, so it was not accepted.",
    not_taken: "We could not take your request right now. Please try again in a few minutes.",
    status_title: "Your request",
    status_label: "Status",
    status_new: "received",
    status_open: "in progress",
    status_pending: "waiting for your answer",
    status_resolved: "resolved",
    status_closed: "closed",
    conversation: "Conversation",
    you: "You",
    other_participant: "Another participant",
    support: "Support",
    add_message: "Add a message",
    your_message: "Message",
    send_message: "Send message",
    closed_write: "This request is closed. Reopen it to write to us again.",
    close_ticket: "Close my request",
    close_hint: "Close it if you need nothing more from us.",
    reopen: "Reopen my request",
    reopen_hint: "Reopen it if the problem is back.",
    sent: "Your message has been added.",
    sent_pending: "Your message has been received and will appear here shortly.",
    closed_done: "Your request is closed.",
    reopened_done: "Your request is open again.",
    not_changed: "Nothing was changed.",
    other_language: "Deutsch",
    solved: "This solved my problem",
    solved_hint: "Found the answer, here or in our knowledge base? Tell us and we mark your request resolved.",
    solved_done: "Glad it is solved. Your request is resolved.",
    kb_link: "Answers to common questions",
    request_online: "Your request online:",
    survey_title: "How did we do?",
    survey_intro: "Your request #{n} was resolved. How satisfied are you with our answer?",
    survey_so_far: "Your answer so far: {answer}. You may change it.",
    survey_rating: "Your rating",
    survey_comment: "Comment (optional)",
    survey_send: "Send my rating",
    survey_nothing_yet: "Nothing is recorded until you send this form.",
    survey_choose: "Please choose one answer.",
    survey_recorded: "Your rating was recorded",
    survey_changed: "Your rating was changed",
    survey_unchanged: "Your rating stands",
    survey_change_later: "You may change it with the same link for a while.",
    survey_too_late: "Your earlier answer can no longer be changed.",
    survey_invalid_title: "This link is not valid",
    survey_invalid_body: "It may have expired. You can still answer the survey mail with your rating on the first line.",
    survey_refused_title: "This form could not be accepted",
    survey_refused_body: "Please open the link from the mail again.",
    try_later: "Please try again later",
    survey_good_bad: ["Good", "Bad"],
    survey_five: [
        "1 – very poor",
        "2 – poor",
        "3 – neither good nor bad",
        "4 – good",
        "5 – very good",
    ],
    survey_of_five: "{n} of 5",
};

pub static DE: Texts = Texts {
    lang: "de",
    new_title: "Support kontaktieren",
    new_intro: "Beschreiben Sie Ihr Anliegen. Wir antworten per E-Mail.",
    name: "Ihr Name",
    email: "Ihre E-Mail-Adresse",
    subject: "Betreff",
    body: "Ihre Nachricht",
    attachment: "Anhänge (optional)",
    attachment_hint: "Mehrere Dateien möglich, insgesamt {n} MB.",
    leave_empty: "Dieses Feld leer lassen",
    send: "Anfrage senden",
    thanks_title: "Vielen Dank",
    thanks_ticket: "Wir haben Ihre Anfrage erhalten. Ihre Ticketnummer ist #{n}.",
    thanks_pending: "Wir haben Ihre Anfrage erhalten.",
    thanks_mail: "Sie erhalten eine Bestätigung per E-Mail mit einem Link, unter dem Sie Ihre Anfrage verfolgen können.",
    too_many_title: "Zu viele Anfragen",
    too_many_body: "Wir haben viele Anfragen von Ihnen erhalten. Bitte versuchen Sie es in {minutes} Minuten erneut.",
    missing: "Bitte geben Sie Ihre E-Mail-Adresse, einen Betreff und Ihre Nachricht an.",
    bad_email: "Diese E-Mail-Adresse scheint nicht zu stimmen.",
    too_large: "Die Anhänge sind zu groß: höchstens {n} MB insgesamt.",
    expired_title: "Dieses Formular ist abgelaufen",
    expired_body: "Zu Ihrer Sicherheit laufen Formulare nach einigen Stunden ab. Bitte öffnen Sie das Formular erneut; es wurde nichts gesendet.",
    refused_title: "Nicht angenommen",
    refused_body: "Diese Anfrage kam nicht von unserer eigenen Seite und wurde daher nicht angenommen.",
    not_taken: "Wir konnten Ihre Anfrage gerade nicht annehmen. Bitte versuchen Sie es in einigen Minuten erneut.",
    status_title: "Ihre Anfrage",
    status_label: "Status",
    status_new: "eingegangen",
    status_open: "in Bearbeitung",
    status_pending: "wartet auf Ihre Antwort",
    status_resolved: "gelöst",
    status_closed: "geschlossen",
    conversation: "Verlauf",
    you: "Sie",
    other_participant: "Weitere Person",
    support: "Support",
    add_message: "Nachricht hinzufügen",
    your_message: "Nachricht",
    send_message: "Nachricht senden",
    closed_write: "Diese Anfrage ist geschlossen. Öffnen Sie sie erneut, um uns wieder zu schreiben.",
    close_ticket: "Anfrage schließen",
    close_hint: "Schließen Sie sie, wenn Sie nichts mehr von uns brauchen.",
    reopen: "Anfrage wieder öffnen",
    reopen_hint: "Öffnen Sie sie wieder, wenn das Problem zurück ist.",
    sent: "Ihre Nachricht wurde hinzugefügt.",
    sent_pending: "Ihre Nachricht ist eingegangen und erscheint hier in Kürze.",
    closed_done: "Ihre Anfrage ist geschlossen.",
    reopened_done: "Ihre Anfrage ist wieder offen.",
    not_changed: "Es wurde nichts geändert.",
    other_language: "English",
    solved: "Das hat mein Problem gelöst",
    solved_hint: "Antwort gefunden, hier oder in unserer Wissensdatenbank? Sagen Sie es uns, dann markieren wir Ihre Anfrage als gelöst.",
    solved_done: "Schön, dass es gelöst ist. Ihre Anfrage ist erledigt.",
    kb_link: "Antworten auf häufige Fragen",
    request_online: "Ihre Anfrage online:",
    survey_title: "Wie zufrieden waren Sie?",
    survey_intro: "Ihre Anfrage #{n} wurde gelöst. Wie zufrieden sind Sie mit unserer Antwort?",
    survey_so_far: "Ihre bisherige Antwort: {answer}. Sie können sie ändern.",
    survey_rating: "Ihre Bewertung",
    survey_comment: "Kommentar (optional)",
    survey_send: "Bewertung senden",
    survey_nothing_yet: "Erst wenn Sie dieses Formular senden, wird etwas gespeichert.",
    survey_choose: "Bitte wählen Sie eine Antwort.",
    survey_recorded: "Ihre Bewertung wurde gespeichert",
    survey_changed: "Ihre Bewertung wurde geändert",
    survey_unchanged: "Ihre Bewertung bleibt bestehen",
    survey_change_later: "Mit demselben Link können Sie sie noch eine Weile ändern.",
    survey_too_late: "Ihre frühere Antwort kann nicht mehr geändert werden.",
    survey_invalid_title: "Dieser Link ist nicht gültig",
    survey_invalid_body: "Vielleicht ist er abgelaufen. Sie können die Umfrage-E-Mail trotzdem beantworten, mit Ihrer Bewertung in der ersten Zeile.",
    survey_refused_title: "Dieses Formular konnte nicht angenommen werden",
    survey_refused_body: "Bitte öffnen Sie den Link aus der E-Mail erneut.",
    try_later: "Bitte versuchen Sie es später erneut",
    survey_good_bad: ["Gut", "Schlecht"],
    survey_five: [
        "1 – sehr schlecht",
        "2 – schlecht",
        "3 – weder gut noch schlecht",
        "4 – gut",
        "5 – sehr gut",
    ],
    survey_of_five: "{n} von 5",
};

/// Every shipped language, the default first.
pub static ALL: [&Texts; 2] = [&EN, &DE];

impl Texts {
    /// The language offered as the other choice (a link on every page).
    pub fn other(&self) -> &'static Texts {
        if self.lang == "de" { &EN } else { &DE }
    }

    /// A ticket status in the customer's words.
    pub fn status(&self, s: crate::model::Status) -> &'static str {
        use crate::model::Status;
        match s {
            Status::New => self.status_new,
            Status::Open => self.status_open,
            Status::Pending => self.status_pending,
            Status::Resolved => self.status_resolved,
            Status::Closed => self.status_closed,
        }
    }
}

/// The language for a request: `?lang=` if it names a shipped one, else
/// the first shipped language of Accept-Language (by its order; weights
/// are rarely out of order), else English.
pub fn pick(query: Option<&str>, accept_language: Option<&str>) -> &'static Texts {
    let known = |tag: &str| {
        let primary = tag.split(['-', '_']).next().unwrap_or("").trim();
        ALL.iter()
            .copied()
            .find(|t| t.lang.eq_ignore_ascii_case(primary))
    };
    if let Some(t) = query.and_then(known) {
        return t;
    }
    accept_language
        .into_iter()
        .flat_map(|h| h.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (!refused).then_some(tag)
        })
        .find_map(known)
        .unwrap_or(&EN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_then_accept_language_then_english() {
        assert_eq!(pick(Some("de"), Some("en")).lang, "de");
        assert_eq!(pick(Some("xx"), Some("de-AT, en;q=0.5")).lang, "de");
        assert_eq!(pick(None, Some("fr-FR, de;q=0.7, en;q=0.3")).lang, "de");
        assert_eq!(pick(None, Some("de;q=0, en")).lang, "en");
        assert_eq!(pick(None, Some("fr")).lang, "en");
        assert_eq!(pick(None, None).lang, "en");
    }
}
