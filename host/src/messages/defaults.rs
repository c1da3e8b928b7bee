//! The built-in messages in the shipped languages. Each language gives five
//! phrases; [`source`] assembles them into the four kinds of message. The
//! SMS text is the first two phrases and fits one segment: GSM-7 (160) for
//! the languages the GSM alphabet covers, UCS-2 (70) for the others (a test
//! checks every one with a 10-digit code).

use super::Kind;

/// One language's phrases. `code` and `expires` make the SMS text.
struct Phrases {
    tag: &'static str,
    subject: &'static str,
    code: &'static str,
    expires: &'static str,
    requested: &'static str,
    ignore: &'static str,
    /// Between the two sentences of the SMS text (none in Japanese, Chinese).
    sep: &'static str,
}

const fn p(
    tag: &'static str,
    subject: &'static str,
    code: &'static str,
    expires: &'static str,
    requested: &'static str,
    ignore: &'static str,
) -> Phrases {
    Phrases {
        tag,
        subject,
        code,
        expires,
        requested,
        ignore,
        sep: " ",
    }
}

const LANGUAGES: &[Phrases] = &[
    p(
        "en",
        "Your verification code",
        "Your verification code is {{ code }}.",
        "It expires in {{ ttl }}.",
        "It was requested from {{ remote_address }} with user agent {{ user_agent }}.",
        "If this was not you, ignore this message.",
    ),
    p(
        "de",
        "Ihr Bestätigungscode",
        "Ihr Bestätigungscode lautet {{ code }}.",
        "Er ist {{ ttl }} gültig.",
        "Er wurde von {{ remote_address }} mit dem User-Agent {{ user_agent }} angefordert.",
        "Wenn Sie das nicht waren, ignorieren Sie diese Nachricht.",
    ),
    p(
        "fr",
        "Votre code de vérification",
        "Votre code de vérification est {{ code }}.",
        "Il expire dans {{ ttl }}.",
        "Il a été demandé depuis {{ remote_address }} avec l’agent utilisateur {{ user_agent }}.",
        "Si vous n’êtes pas à l’origine de cette demande, ignorez ce message.",
    ),
    p(
        "es",
        "Tu código de verificación",
        "Tu código de verificación es {{ code }}.",
        "Caduca en {{ ttl }}.",
        "Se solicitó desde {{ remote_address }} con el agente de usuario {{ user_agent }}.",
        "Si no fuiste tú, ignora este mensaje.",
    ),
    p(
        "it",
        "Il tuo codice di verifica",
        "Il tuo codice di verifica è {{ code }}.",
        "Scade tra {{ ttl }}.",
        "È stato richiesto da {{ remote_address }} con lo user agent {{ user_agent }}.",
        "Se non sei stato tu, ignora questo messaggio.",
    ),
    p(
        "pt",
        "O seu código de verificação",
        "O seu código de verificação é {{ code }}.",
        "Expira em {{ ttl }}.",
        "Foi solicitado a partir de {{ remote_address }} com o user agent {{ user_agent }}.",
        "Se não foi você, ignore esta mensagem.",
    ),
    p(
        "nl",
        "Je verificatiecode",
        "Je verificatiecode is {{ code }}.",
        "Hij verloopt over {{ ttl }}.",
        "Hij is aangevraagd vanaf {{ remote_address }} met user-agent {{ user_agent }}.",
        "Was jij dit niet? Negeer dan dit bericht.",
    ),
    p(
        "pl",
        "Twój kod weryfikacyjny",
        "Twój kod weryfikacyjny to {{ code }}.",
        "Wygasa za {{ ttl }}.",
        "Zażądano go z adresu {{ remote_address }} (user agent: {{ user_agent }}).",
        "Jeśli to nie Ty, zignoruj tę wiadomość.",
    ),
    p(
        "sv",
        "Din verifieringskod",
        "Din verifieringskod är {{ code }}.",
        "Den gäller i {{ ttl }}.",
        "Den begärdes från {{ remote_address }} med användaragenten {{ user_agent }}.",
        "Om det inte var du kan du ignorera det här meddelandet.",
    ),
    p(
        "ru",
        "Ваш код подтверждения",
        "Ваш код подтверждения: {{ code }}.",
        "Он истекает через {{ ttl }}.",
        "Код запрошен с адреса {{ remote_address }}, user agent: {{ user_agent }}.",
        "Если это были не вы, проигнорируйте это сообщение.",
    ),
    Phrases {
        tag: "ja",
        subject: "確認コード",
        code: "確認コードは {{ code }} です。",
        expires: "有効期限は{{ ttl }}です。",
        requested: "リクエスト元: {{ remote_address }}（ユーザーエージェント: {{ user_agent }}）",
        ignore: "お心当たりがない場合は、このメッセージを無視してください。",
        sep: "",
    },
    Phrases {
        tag: "zh",
        subject: "您的验证码",
        code: "您的验证码是 {{ code }}。",
        expires: "{{ ttl }}内有效。",
        requested: "请求来自 {{ remote_address }}，用户代理：{{ user_agent }}。",
        ignore: "如果这不是您本人的操作，请忽略此消息。",
        sep: "",
    },
];

/// The shipped languages, `en` first.
pub fn tags() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().map(|p| p.tag)
}

/// The built-in template of `kind` in language `tag`, if shipped.
pub fn source(kind: Kind, tag: &str) -> Option<String> {
    let p = LANGUAGES.iter().find(|p| p.tag == tag)?;
    Some(match kind {
        Kind::Text => format!("{}{}{}", p.code, p.sep, p.expires),
        Kind::Subject => p.subject.to_string(),
        Kind::Body => format!(
            "{}\n{}\n\n{}\n{}\n",
            p.code, p.expires, p.requested, p.ignore
        ),
        Kind::Html => format!(
            "<!doctype html>\n<html lang=\"{tag}\"><body style=\"font-family:sans-serif\">\n\
             <p>{}</p>\n<p>{}</p>\n<p style=\"color:#666\">{}<br>{}</p>\n</body></html>\n",
            p.code.replace(
                "{{ code }}",
                "<strong style=\"font-size:1.4em\">{{ code }}</strong>"
            ),
            p.expires,
            p.requested,
            p.ignore,
            tag = p.tag,
        ),
    })
}
