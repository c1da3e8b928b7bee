//! One channel's messages: its own templates over the built-in ones, the
//! locale choice and the renders.
//!
//! Which template a (kind, locale) gets, first found: the channel's own for
//! the locale, for its language (`de` for `de-AT`), the channel's catch-all
//! (`[smtp] subject/body`), the built-in for the language, the channel's own
//! and the built-in for the default locale, the built-in `en`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use minijinja::{Environment, Value};

use super::spec::CatchAll;
use super::{
    Email, Kind, Locale, Preferences, Site, TemplateError, TemplatesSpec, Vars, defaults, engine,
    locale, plain_field, sms, ttl,
};

fn name(kind: Kind, scope: &str, tag: &str) -> String {
    let ext = if kind == Kind::Html { ".html" } else { "" };
    format!("{scope}/{}/{tag}{ext}", kind.as_str())
}

/// The shipped templates, compiled once.
static BUILTIN: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = engine::environment();
    for tag in defaults::tags() {
        for kind in Kind::ALL {
            if let Some(src) = defaults::source(kind, tag) {
                let added = engine::add(&mut env, name(kind, "builtin", tag), src, "builtin", kind);
                // A test renders every built-in; a broken one is a build bug.
                debug_assert!(added.is_ok(), "{added:?}");
            }
        }
    }
    env
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Own,
    CatchAll,
    Builtin,
}

pub struct Messages {
    env: Environment<'static>,
    own: BTreeMap<Kind, BTreeSet<Locale>>,
    catch_all: BTreeSet<Kind>,
    default_locale: Locale,
    webotp: bool,
    site: Site,
}

impl Default for Messages {
    fn default() -> Self {
        Self::builtin(Site::default())
    }
}

impl Messages {
    /// The built-in messages only.
    pub fn builtin(site: Site) -> Self {
        Self {
            env: engine::environment(),
            own: BTreeMap::new(),
            catch_all: BTreeSet::new(),
            default_locale: Locale::en(),
            webotp: false,
            site,
        }
    }

    /// A channel's messages; every template is checked here. Errors name
    /// the key under `prefix` (`templates`, `channel[0].templates`).
    pub fn build(
        spec: &TemplatesSpec,
        catch_all: &[CatchAll],
        site: Site,
        prefix: &str,
    ) -> Result<Self, TemplateError> {
        let mut m = Self::builtin(site);
        for kind in Kind::ALL {
            for (tag, source) in spec.variants(kind) {
                let field = format!("{prefix}.{}.{tag}", kind.as_str());
                let loc = Locale::parse(tag).map_err(|message| TemplateError {
                    field: field.clone(),
                    message,
                    line: None,
                    column: None,
                })?;
                let n = name(kind, "own", loc.as_str());
                engine::add(&mut m.env, n, source.clone(), &field, kind)?;
                m.own.entry(kind).or_default().insert(loc);
            }
        }
        for c in catch_all {
            let n = name(c.kind, "any", "any");
            engine::add(
                &mut m.env,
                n,
                engine::from_tags(&c.source),
                &c.field,
                c.kind,
            )?;
            m.catch_all.insert(c.kind);
        }
        let field = |k: &str| format!("{prefix}.{k}");
        let fail = |k: &str, message: String| TemplateError {
            field: field(k),
            message,
            line: None,
            column: None,
        };
        if let Some(tag) = &spec.default_locale {
            let loc = Locale::parse(tag).map_err(|e| fail("defaultLocale", e))?;
            if !m.available().contains(&loc) {
                return Err(fail(
                    "defaultLocale",
                    format!("no template for `{loc}`: add one or use a shipped language"),
                ));
            }
            m.default_locale = loc;
        }
        if spec.webotp && m.site.domain.is_empty() {
            return Err(fail(
                "webotp",
                "needs `server.base_url` (its host is the origin)".into(),
            ));
        }
        m.webotp = spec.webotp;
        Ok(m)
    }

    /// Every locale the channel can write in: shipped and its own.
    pub fn available(&self) -> Vec<Locale> {
        let mut all: BTreeSet<Locale> = defaults::tags()
            .filter_map(|t| Locale::parse(t).ok())
            .collect();
        all.extend(self.own.values().flatten().cloned());
        all.into_iter().collect()
    }

    /// The locale a reader with `prefs` gets, else the channel's default.
    pub fn choose(&self, prefs: &Preferences) -> Locale {
        locale::choose(prefs, &self.available(), &self.default_locale)
    }

    fn own_has(&self, kind: Kind, tag: &str) -> bool {
        self.own
            .get(&kind)
            .is_some_and(|s| s.iter().any(|l| l.as_str() == tag))
    }

    fn pick(&self, kind: Kind, loc: &Locale) -> (Scope, String) {
        let builtin = |tag: &str| defaults::source(kind, tag).map(|_| tag.to_string());
        let default = &self.default_locale;
        if self.own_has(kind, loc.as_str()) {
            (Scope::Own, name(kind, "own", loc.as_str()))
        } else if self.own_has(kind, loc.language()) {
            (Scope::Own, name(kind, "own", loc.language()))
        } else if self.catch_all.contains(&kind) {
            (Scope::CatchAll, name(kind, "any", "any"))
        } else if let Some(tag) = builtin(loc.language()) {
            (Scope::Builtin, name(kind, "builtin", &tag))
        } else if self.own_has(kind, default.as_str()) {
            (Scope::Own, name(kind, "own", default.as_str()))
        } else if let Some(tag) = builtin(default.language()) {
            (Scope::Builtin, name(kind, "builtin", &tag))
        } else {
            (Scope::Builtin, name(kind, "builtin", "en"))
        }
    }

    fn context(&self, loc: &Locale, v: &Vars<'_>) -> Value {
        minijinja::context! {
            code => v.code,
            ttl_seconds => v.ttl_seconds,
            ttl => ttl::human(loc.language(), v.ttl_seconds),
            username => plain_field(Some(v.username)),
            app_name => self.site.app_name.as_str(),
            base_url => self.site.base_url.as_str(),
            domain => self.site.domain.as_str(),
            user_agent => plain_field(v.user_agent),
            remote_address => plain_field(v.remote_address),
            locale => loc.as_str(),
        }
    }

    /// One kind of message in `loc` (no WebOTP line).
    pub fn render(&self, kind: Kind, loc: &Locale, v: &Vars<'_>) -> Result<String, TemplateError> {
        let (scope, n) = self.pick(kind, loc);
        let env: &Environment<'static> = if scope == Scope::Builtin {
            &BUILTIN
        } else {
            &self.env
        };
        engine::render(env, &n, kind, self.context(loc, v)).map_err(|e| TemplateError {
            field: n.clone(),
            message: engine::error(&n, "", &e).message,
            line: e.line(),
            column: None,
        })
    }

    /// The text of a non-email channel, with the WebOTP line if enabled.
    pub fn text(&self, loc: &Locale, v: &Vars<'_>) -> Result<String, TemplateError> {
        let text = self.render(Kind::Text, loc, v)?;
        if self.webotp {
            Ok(format!(
                "{}\n\n@{} #{}",
                text.trim_end(),
                self.site.domain,
                v.code
            ))
        } else {
            Ok(text)
        }
    }

    /// An email's three parts. An HTML part comes from the channel's own
    /// HTML template, else (when the plain part is the channel's own) from
    /// the plain part, escaped, so both parts say the same.
    pub fn email(&self, loc: &Locale, v: &Vars<'_>) -> Result<Email, TemplateError> {
        let subject = self.render(Kind::Subject, loc, v)?;
        let subject = plain_field(Some(&subject));
        let plain = self.render(Kind::Body, loc, v)?;
        let (html_scope, _) = self.pick(Kind::Html, loc);
        let (body_scope, _) = self.pick(Kind::Body, loc);
        let html = if html_scope != Scope::Builtin || body_scope == Scope::Builtin {
            self.render(Kind::Html, loc, v)?
        } else {
            format!(
                "<html><body><pre style=\"font-family:sans-serif\">{}</pre></body></html>",
                super::html_escape(&plain)
            )
        };
        Ok(Email {
            subject,
            plain,
            html,
        })
    }

    /// The locales whose text needs more than one SMS segment, with
    /// that text's length (for `config check`).
    pub fn long_texts(&self, code_length: u32, ttl_seconds: u32) -> Vec<(Locale, sms::SmsLength)> {
        let code = "0".repeat(code_length as usize);
        let v = Vars {
            code: &code,
            ttl_seconds,
            username: "",
            user_agent: None,
            remote_address: None,
        };
        self.available()
            .into_iter()
            .filter_map(|loc| {
                let l = sms::length(&self.text(&loc, &v).ok()?);
                (l.segments > 1).then_some((loc, l))
            })
            .collect()
    }
}
