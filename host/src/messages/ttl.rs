//! The `ttl` variable: a code's lifetime in words of the message's
//! language ("10 minutes", "10 Minuten", "10 минут", "10分"). Plural
//! categories come from CLDR (`intl_pluralrules`); the words are data.

use intl_pluralrules::{PluralCategory, PluralRuleType, PluralRules};

/// Unit words by plural category: one, few, many, other.
struct Units {
    minute: [&'static str; 4],
    second: [&'static str; 4],
    /// A space between the number and the word (none in Japanese, Chinese).
    space: bool,
}

const fn u(minute: [&'static str; 4], second: [&'static str; 4]) -> Units {
    Units {
        minute,
        second,
        space: true,
    }
}

fn units(language: &str) -> Units {
    let same = |one: &'static str, other: &'static str| [one, other, other, other];
    match language {
        "de" => u(same("Minute", "Minuten"), same("Sekunde", "Sekunden")),
        "fr" => u(same("minute", "minutes"), same("seconde", "secondes")),
        "es" => u(same("minuto", "minutos"), same("segundo", "segundos")),
        "it" => u(same("minuto", "minuti"), same("secondo", "secondi")),
        "pt" => u(same("minuto", "minutos"), same("segundo", "segundos")),
        "nl" => u(same("minuut", "minuten"), same("seconde", "seconden")),
        "sv" => u(same("minut", "minuter"), same("sekund", "sekunder")),
        // Accusative after "za" / "через": 1 minutę, 2 minuty, 5 minut.
        "pl" => u(
            ["minutę", "minuty", "minut", "minuty"],
            ["sekundę", "sekundy", "sekund", "sekundy"],
        ),
        "ru" => u(
            ["минуту", "минуты", "минут", "минуты"],
            ["секунду", "секунды", "секунд", "секунды"],
        ),
        "ja" => Units {
            minute: ["分"; 4],
            second: ["秒"; 4],
            space: false,
        },
        "zh" => Units {
            minute: ["分钟"; 4],
            second: ["秒"; 4],
            space: false,
        },
        _ => u(same("minute", "minutes"), same("second", "seconds")),
    }
}

fn index(language: &str, n: u32) -> usize {
    let id: unic_langid::LanguageIdentifier = language.parse().unwrap_or_default();
    let category = PluralRules::create(id, PluralRuleType::CARDINAL)
        .ok()
        .and_then(|r| r.select(n).ok());
    match category {
        Some(PluralCategory::ONE) => 0,
        Some(PluralCategory::FEW) => 1,
        Some(PluralCategory::MANY) => 2,
        // English-like fallback for a language CLDR does not know.
        None if n == 1 => 0,
        _ => 3,
    }
}

/// Whole minutes when the lifetime is a multiple of 60, else seconds.
pub fn human(language: &str, seconds: u32) -> String {
    let units = units(language);
    let (n, words) = if seconds >= 60 && seconds.is_multiple_of(60) {
        (seconds / 60, units.minute)
    } else {
        (seconds, units.second)
    };
    let word = words[index(language, n)];
    if units.space {
        format!("{n} {word}")
    } else {
        format!("{n}{word}")
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn english_is_unchanged() {
        assert_eq!(human("en", 600), "10 minutes");
        assert_eq!(human("en", 60), "1 minute");
        assert_eq!(human("en", 90), "90 seconds");
        assert_eq!(human("xx", 1), "1 second");
    }

    #[test]
    fn plural_rules_follow_the_language() {
        assert_eq!(human("de", 60), "1 Minute");
        assert_eq!(human("de", 600), "10 Minuten");
        assert_eq!(human("ru", 60), "1 минуту");
        assert_eq!(human("ru", 180), "3 минуты");
        assert_eq!(human("ru", 600), "10 минут");
        assert_eq!(human("ru", 1260), "21 минуту");
        assert_eq!(human("pl", 120), "2 minuty");
        assert_eq!(human("pl", 720), "12 minut");
        assert_eq!(human("pl", 1320), "22 minuty");
        assert_eq!(human("fr", 60), "1 minute");
        assert_eq!(human("ja", 600), "10分");
        assert_eq!(human("zh", 90), "90秒");
    }
}
