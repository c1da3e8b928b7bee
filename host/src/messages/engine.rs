//! MiniJinja, narrowed to what messages need: no loader (so no file and no
//! include outside the set), strict undefined values, a fuel budget per
//! render and an output cap. Every template is checked when it is added:
//! syntax, variables it may use, and one render with the longest sample
//! values (so a template that renders over its bound is refused up front).

use std::io;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use super::{Kind, TemplateError, VARIABLES};

/// Fuel per render: bounds the work (and memory) of loops and filters.
/// The built-in templates take well under 200.
pub const FUEL: u64 = 20_000;

/// A new environment: built-in filters, no loader, HTML auto-escaping for
/// names ending in `.html`.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_debug(true);
    env.set_recursion_limit(32);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// Line and column (1-based, in characters) of a byte offset.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// An engine error as the API and the config report it.
pub fn error(field: &str, source: &str, e: &minijinja::Error) -> TemplateError {
    let message = match e.kind() {
        ErrorKind::OutOfFuel => "takes too much work to render".to_string(),
        ErrorKind::WriteFailure => "renders longer than its size bound".to_string(),
        _ => e.detail().unwrap_or("invalid template").to_string(),
    };
    let (line, column) = match e.range() {
        Some(r) => {
            let (l, c) = position(source, r.start);
            (Some(l), Some(c))
        }
        None => (e.line(), None),
    };
    TemplateError {
        field: field.to_string(),
        message: format!("{}: {message}", e.kind()),
        line,
        column,
    }
}

/// Adds `source` as `name` and checks it: it parses, names only known
/// variables, and renders within `kind`'s bound with the longest sample.
pub fn add(
    env: &mut Environment<'static>,
    name: String,
    source: String,
    field: &str,
    kind: Kind,
) -> Result<(), TemplateError> {
    env.add_template_owned(name.clone(), source.clone())
        .map_err(|e| error(field, &source, &e))?;
    let t = env
        .get_template(&name)
        .map_err(|e| error(field, &source, &e))?;
    let globals: Vec<String> = env.globals().map(|(n, _)| n.to_string()).collect();
    let mut unknown: Vec<String> = t
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !VARIABLES.contains(&v.as_str()) && !globals.contains(v))
        .collect();
    unknown.sort();
    if let Some(v) = unknown.first() {
        let (line, column) = source
            .find(v.as_str())
            .map(|o| position(&source, o))
            .unzip();
        return Err(TemplateError {
            field: field.to_string(),
            message: format!(
                "unknown variable `{v}`; templates may use {}",
                VARIABLES.join(", ")
            ),
            line,
            column,
        });
    }
    render(env, &name, kind, sample())
        .map(|_| ())
        .map_err(|e| error(field, &source, &e))
}

/// The longest values a render can meet, for the check at load time.
fn sample() -> Value {
    minijinja::context! {
        code => "1234567890",
        ttl_seconds => 3600,
        ttl => "60 seconds",
        username => "u".repeat(256),
        app_name => "postern",
        base_url => "https://2fa.example.com",
        domain => "2fa.example.com",
        user_agent => "a".repeat(256),
        remote_address => "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        locale => "en",
    }
}

/// Stops writing at a byte bound.
struct Capped {
    out: Vec<u8>,
    max: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.max {
            return Err(io::Error::other("output bound"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders `name` with `ctx`, within fuel and `kind`'s output bound.
pub fn render(
    env: &Environment<'static>,
    name: &str,
    kind: Kind,
    ctx: Value,
) -> Result<String, minijinja::Error> {
    let t = env.get_template(name)?;
    let mut w = Capped {
        out: Vec::new(),
        max: kind.max_bytes(),
    };
    t.render_captured_to(ctx, &mut w)?;
    String::from_utf8(w.out)
        .map_err(|_| minijinja::Error::new(ErrorKind::InvalidOperation, "output is not UTF-8"))
}

/// The `{tag}` templates of `[smtp] subject/body` (SPEC §4), as MiniJinja:
/// each known `{name}` becomes `{{ name }}`, other text stays literal. A
/// value that already uses `{{ … }}` or `{% … %}` is MiniJinja as it is.
pub fn from_tags(source: &str) -> String {
    if source.contains("{{") || source.contains("{%") {
        return source.to_string();
    }
    let mut out = String::with_capacity(source.len() + 16);
    let mut literal = String::new();
    let flush = |literal: &mut String, out: &mut String| {
        if literal.contains(['{', '}', '#']) {
            out.push_str("{% raw %}");
            out.push_str(literal);
            out.push_str("{% endraw %}");
        } else {
            out.push_str(literal);
        }
        literal.clear();
    };
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        let tail = &rest[open + 1..];
        let tag = tail
            .find('}')
            .map(|close| &tail[..close])
            .filter(|t| VARIABLES.contains(t));
        match tag {
            Some(tag) => {
                literal.push_str(&rest[..open]);
                flush(&mut literal, &mut out);
                out.push_str(&format!("{{{{ {tag} }}}}"));
                rest = &tail[tag.len() + 1..];
            }
            None => {
                literal.push_str(&rest[..=open]);
                rest = tail;
            }
        }
    }
    literal.push_str(rest);
    flush(&mut literal, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, kind: Kind) -> Result<(), TemplateError> {
        let mut env = environment();
        add(
            &mut env,
            "t".into(),
            source.into(),
            "templates.text.de",
            kind,
        )
    }

    #[test]
    fn tags_become_variables_and_other_braces_stay() {
        assert_eq!(from_tags("{code} in {ttl}"), "{{ code }} in {{ ttl }}");
        assert_eq!(
            from_tags("a {x} {code}"),
            "{% raw %}a {x} {% endraw %}{{ code }}"
        );
        assert_eq!(from_tags("{{ code }}"), "{{ code }}");
        let mut env = environment();
        let src = from_tags("{#x} {code}");
        add(&mut env, "t".into(), src, "f", Kind::Text).unwrap();
        let out = render(&env, "t", Kind::Text, minijinja::context! { code => "42" }).unwrap();
        assert_eq!(out, "{#x} 42");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = check("Hallo\n{{ code }", Kind::Text).unwrap_err();
        assert_eq!(e.field, "templates.text.de");
        assert_eq!(e.line, Some(2));
        assert!(e.column.is_some(), "{e:?}");
        assert!(e.message.contains("syntax"), "{e:?}");
    }

    #[test]
    fn unknown_variables_are_refused() {
        let e = check("{{ code }} {{ bot_token }}", Kind::Text).unwrap_err();
        assert!(e.message.contains("`bot_token`"), "{e:?}");
        assert_eq!((e.line, e.column), (Some(1), Some(15)));
        check(
            "{{ code }} {% for i in range(3) %}.{% endfor %}",
            Kind::Text,
        )
        .unwrap();
        // A variable set inside the template is fine.
        check("{% set x = code %}{{ x }}", Kind::Text).unwrap();
    }

    #[test]
    fn renders_are_bounded() {
        let e = check("{{ code * 1000 }}", Kind::Text).unwrap_err();
        assert!(
            e.message.contains("size bound") || e.message.contains("work"),
            "{e:?}"
        );
        let e = check(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            Kind::Body,
        )
        .unwrap_err();
        assert!(e.message.contains("work"), "{e:?}");
        // No includes: there is no loader and no other template.
        let e = check("{% include '/etc/passwd' %}", Kind::Text).unwrap_err();
        assert!(e.message.contains("not found"), "{e:?}");
    }

    #[test]
    fn html_names_are_escaped() {
        let mut env = environment();
        add(
            &mut env,
            "x.html".into(),
            "<b>{{ user_agent }}</b>".into(),
            "f",
            Kind::Html,
        )
        .unwrap();
        let out = render(
            &env,
            "x.html",
            Kind::Html,
            minijinja::context! { user_agent => "<i>&" },
        )
        .unwrap();
        assert_eq!(out, "<b>&lt;i&gt;&amp;</b>");
    }
}
