//! Which language a message is written in: BCP 47 tags ([`Locale`]), the
//! preference chain (user language → `Accept-Language` → the destination
//! number's country → the channel's default → `en`) and the match against
//! the locales a channel has (`de-AT` → `de` → default), by
//! `fluent-langneg`'s lookup.

use std::fmt;

use fluent_langneg::{LanguageIdentifier, NegotiationStrategy, negotiate_languages};

/// A BCP 47 language tag, parsed and in canonical case (`de-AT`, `zh-Hans`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locale(String);

impl Locale {
    pub fn parse(s: &str) -> Result<Self, String> {
        let id: LanguageIdentifier = s
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a BCP 47 language tag", s.escape_debug()))?;
        if id.language.is_empty() {
            return Err(format!("`{}` names no language", s.escape_debug()));
        }
        Ok(Self(id.to_string()))
    }

    pub fn en() -> Self {
        Self("en".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language alone: `de` for `de-AT`.
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    fn id(&self) -> LanguageIdentifier {
        // Every Locale was parsed from a valid tag.
        self.0.parse().unwrap_or_default()
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request says about the reader's language, most important first.
#[derive(Debug, Clone, Default)]
pub struct Preferences(Vec<Locale>);

impl Preferences {
    /// The chain of SPEC §8: the user's stored `language` (or a Verify
    /// `locale`), the `Accept-Language` entries by quality, then the
    /// language of the country a phone-like `send_to` belongs to. Values
    /// that are not language tags are skipped.
    pub fn chain(language: Option<&str>, accept_language: Option<&str>, send_to: &str) -> Self {
        let mut out: Vec<Locale> = language
            .and_then(|l| Locale::parse(l).ok())
            .into_iter()
            .collect();
        if let Some(header) = accept_language {
            out.extend(
                accept_language::parse(header)
                    .iter()
                    .take(8)
                    .filter_map(|t| Locale::parse(t).ok()),
            );
        }
        out.extend(country_language(send_to));
        Self(out)
    }

    pub fn as_slice(&self) -> &[Locale] {
        &self.0
    }
}

/// The best of `available` for `prefs`, else `default`. A request for
/// `de-AT` takes `de-AT`, else `de`, else another `de-*`.
pub fn choose(prefs: &Preferences, available: &[Locale], default: &Locale) -> Locale {
    let requested: Vec<LanguageIdentifier> = prefs.0.iter().map(Locale::id).collect();
    let avail: Vec<LanguageIdentifier> = available.iter().map(Locale::id).collect();
    let found = negotiate_languages(&requested, &avail, None, NegotiationStrategy::Lookup);
    match found.first() {
        Some(id) => Locale(id.to_string()),
        None => default.clone(),
    }
}

/// The language of the country an E.164 number (`+81…`) belongs to, as
/// Twilio Verify picks it; `None` for anything that is not a valid number.
pub fn country_language(send_to: &str) -> Option<Locale> {
    let s = send_to.trim();
    if !s.starts_with('+') {
        return None;
    }
    let number = phonenumber::parse(None, s).ok()?;
    if !number.is_valid() {
        return None;
    }
    let country = number.country().id()?;
    let tag = country_to_language(country.as_ref())?;
    Locale::parse(tag).ok()
}

/// The main language of a country (ISO 3166 alpha-2), for the countries
/// whose language postern ships or that a tenant is likely to add. Data,
/// not a rule: countries with several official languages take the one most
/// of its people read (CH → de, BE → nl, CA → en).
fn country_to_language(country: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &[&str])] = &[
        (
            "en",
            &[
                "US", "GB", "IE", "AU", "NZ", "CA", "ZA", "IN", "SG", "NG", "KE", "GH", "JM", "PH",
            ],
        ),
        ("de", &["DE", "AT", "CH", "LI", "LU"]),
        (
            "fr",
            &["FR", "MC", "SN", "CI", "CM", "MA", "TN", "DZ", "HT"],
        ),
        (
            "es",
            &[
                "ES", "MX", "AR", "CO", "CL", "PE", "VE", "EC", "GT", "CU", "BO", "DO", "HN", "PY",
                "SV", "NI", "CR", "PA", "UY", "PR",
            ],
        ),
        ("it", &["IT", "SM", "VA"]),
        ("pt", &["PT", "BR", "AO", "MZ", "CV"]),
        ("nl", &["NL", "BE", "SR"]),
        ("pl", &["PL"]),
        ("sv", &["SE"]),
        ("ru", &["RU", "BY", "KZ", "KG"]),
        ("ja", &["JP"]),
        ("zh", &["CN", "TW", "HK", "MO"]),
        ("da", &["DK"]),
        ("nb", &["NO"]),
        ("fi", &["FI"]),
        ("cs", &["CZ"]),
        ("sk", &["SK"]),
        ("hu", &["HU"]),
        ("ro", &["RO", "MD"]),
        ("el", &["GR", "CY"]),
        ("tr", &["TR"]),
        ("uk", &["UA"]),
        ("ko", &["KR"]),
        (
            "ar",
            &["SA", "AE", "EG", "JO", "KW", "QA", "BH", "OM", "IQ", "LB"],
        ),
        ("he", &["IL"]),
        ("id", &["ID"]),
        ("th", &["TH"]),
        ("vi", &["VN"]),
    ];
    TABLE
        .iter()
        .find(|(_, cs)| cs.contains(&country))
        .map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locales(tags: &[&str]) -> Vec<Locale> {
        tags.iter().map(|t| Locale::parse(t).unwrap()).collect()
    }

    #[test]
    fn tags_are_parsed_and_canonical() {
        assert_eq!(Locale::parse("de-at").unwrap().as_str(), "de-AT");
        assert_eq!(Locale::parse("zh-hans").unwrap().as_str(), "zh-Hans");
        assert_eq!(Locale::parse("de-AT").unwrap().language(), "de");
        assert!(Locale::parse("not a tag").is_err());
        assert!(Locale::parse("").is_err());
    }

    #[test]
    fn region_falls_back_to_the_language_then_the_default() {
        let avail = locales(&["en", "de", "fr"]);
        let en = Locale::en();
        let pick = |lang: Option<&str>, accept: Option<&str>, to: &str| {
            choose(&Preferences::chain(lang, accept, to), &avail, &en).to_string()
        };
        assert_eq!(pick(Some("de-AT"), None, ""), "de");
        assert_eq!(pick(Some("xx"), Some("fr-CA;q=0.4, ko"), ""), "fr");
        assert_eq!(pick(None, None, ""), "en");
        assert_eq!(pick(Some("ko"), None, ""), "en");
        // A region-specific variant wins when it exists.
        let with_at = locales(&["de", "de-AT"]);
        let prefs = Preferences::chain(Some("de-AT"), None, "");
        assert_eq!(choose(&prefs, &with_at, &en).as_str(), "de-AT");
    }

    #[test]
    fn the_chain_keeps_its_order() {
        let avail = locales(&["en", "de", "fr", "pt", "ja"]);
        let en = Locale::en();
        // Stored language beats the header, the header beats the number.
        let p = Preferences::chain(Some("fr"), Some("de"), "+81312345678");
        assert_eq!(choose(&p, &avail, &en).as_str(), "fr");
        let p = Preferences::chain(None, Some("pt-BR,en;q=0.8"), "+81312345678");
        assert_eq!(choose(&p, &avail, &en).as_str(), "pt");
        let p = Preferences::chain(None, None, "+81312345678");
        assert_eq!(choose(&p, &avail, &en).as_str(), "ja");
        // q-values order the header, not its text order.
        let p = Preferences::chain(None, Some("en;q=0.1, de;q=0.9"), "");
        assert_eq!(choose(&p, &avail, &en).as_str(), "de");
    }

    #[test]
    fn numbers_give_their_country_language() {
        assert_eq!(country_language("+4915112345678").unwrap().as_str(), "de");
        assert_eq!(country_language("+33612345678").unwrap().as_str(), "fr");
        assert_eq!(country_language("+5511987654321").unwrap().as_str(), "pt");
        assert_eq!(country_language("+14155552671").unwrap().as_str(), "en");
        assert!(country_language("4915112345678").is_none());
        assert!(country_language("-100123").is_none());
        assert!(country_language("+999").is_none());
    }
}
