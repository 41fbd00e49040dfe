//! Replies xps makes up: the built-in error pages and `return`.

use super::{Body, Reply, Text};
use crate::http::response::reason;
use crate::routing::Return;
use crate::routing::template::Vars;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The built-in page for a status, rendered once per status and shared.
pub fn page(status: u16) -> Arc<[u8]> {
    static PAGES: OnceLock<Mutex<FxHashMap<u16, Arc<[u8]>>>> = OnceLock::new();
    let pages = PAGES.get_or_init(|| Mutex::new(FxHashMap::default()));
    let mut pages = match pages.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    };
    pages
        .entry(status)
        .or_insert_with(|| {
            let title = format!("{status} {}", reason(status));
            let html = format!(
                "<!DOCTYPE html>\n<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<hr><p>xps</p>\n</body>\n</html>\n"
            );
            Arc::from(html.into_bytes())
        })
        .clone()
}

/// The type of every HTML page xps makes (error pages, listings): they are
/// UTF-8 and say so, whatever `charset` says of files. In eXpServer mode
/// the server writes plain `text/html` instead, the exact string
/// eXpServer's own clients compare with.
pub const GENERATED_HTML: &str = "text/html; charset=utf-8";

/// A reply with the built-in page of `status`.
pub fn error(status: u16) -> Reply {
    let mut r = Reply::new(status);
    r.content_type = Some(Text::Static(GENERATED_HTML));
    r.body = Body::shared(page(status));
    r
}

/// The reply of a `return` directive: redirects carry `Location` and the
/// built-in page; other codes carry their text, or the built-in page
/// (errors) or nothing.
pub fn ret(r: &Return, charset: Option<&str>, vars: &dyn Vars) -> Reply {
    match (&r.text, Return::is_redirect(r.code)) {
        (Some(url), true) => {
            let mut reply = error(r.code);
            reply.location = Some(url.render(vars).into_owned());
            reply
        }
        (Some(text), false) => {
            let mut reply = Reply::new(r.code);
            reply.content_type = Some(match charset {
                Some(c) => Text::Owned(format!("text/plain; charset={c}")),
                None => Text::Static("text/plain"),
            });
            reply.body = Body::Owned(text.render(vars).into_owned().into_bytes());
            reply
        }
        (None, _) if r.code >= 300 => error(r.code),
        (None, _) => Reply::new(r.code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::template::{Template, Var};

    struct NoVars;
    impl Vars for NoVars {
        fn write(&self, _: &Var, _: &mut String) {}
    }

    #[test]
    fn pages_are_rendered_once_and_shared() {
        let a = page(404);
        let b = page(404);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(std::str::from_utf8(&a).is_ok_and(|s| s.contains("<h1>404 Not Found</h1>")));
    }

    #[test]
    fn return_replies() {
        let r = ret(
            &Return {
                code: 301,
                text: Some(Template::parse("/new").unwrap()),
            },
            None,
            &NoVars,
        );
        assert_eq!(r.location.as_deref(), Some("/new"));
        let r = ret(
            &Return {
                code: 200,
                text: Some(Template::parse("hi").unwrap()),
            },
            Some("utf-8"),
            &NoVars,
        );
        assert_eq!(
            r.content_type.map(|t| t.as_str().to_string()).as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(r.body.len(), 2);
        assert_eq!(
            ret(
                &Return {
                    code: 204,
                    text: None
                },
                None,
                &NoVars
            )
            .body
            .len(),
            0
        );
    }
}
