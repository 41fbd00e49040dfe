//! Values with variables (`return 301 https://$host$request_uri;`),
//! compiled once into literal pieces and variable slots, never parsed
//! while a request is answered.

use std::borrow::Cow;
use std::fmt;

/// A variable a value may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `$host`: the request's host (no port), else the server's name.
    Host,
    /// `$http_host`: the `Host` header as sent.
    HttpHost,
    /// `$request_uri`: the request target as sent (path and query).
    RequestUri,
    /// `$uri`: the normalised, decoded path.
    Uri,
    /// `$args`, `$query_string`: the query (without `?`).
    Args,
    /// `$scheme`: `http`.
    Scheme,
    /// `$request_method`.
    RequestMethod,
    /// `$remote_addr`: the client's address.
    RemoteAddr,
    /// `$remote_port`.
    RemotePort,
    /// `$server_name`: the server's first `server_name`.
    ServerName,
    /// `$server_port`: the port the request came in on.
    ServerPort,
    /// `$http_NAME`: a request header (`_` for `-`, any case).
    Http(String),
    /// `$proxy_add_x_forwarded_for`: the client's `X-Forwarded-For` with
    /// its address added.
    ProxyAddXForwardedFor,
    /// `$request_id`: 32 hex digits, new for every request.
    RequestId,
    /// `$remote_user`: the `auth_basic` user who logged in (empty
    /// otherwise).
    RemoteUser,
    /// `$binary_remote_addr`: the client's address, the key nginx users
    /// write for limits (the same text as `$remote_addr`).
    BinaryRemoteAddr,
    /// `$status` (`log_format` only, known when the response is out).
    Status,
    /// `$body_bytes_sent` (`log_format` only, known at the end).
    BodyBytesSent,
    /// `$request_time`: seconds with milliseconds (`log_format` only,
    /// known at the end).
    RequestTime,
    /// `$time_local`: `01/Dec/2026:10:00:00 +0000` (`log_format` only).
    TimeLocal,
    /// `$time_iso8601`: `2026-12-01T10:00:00+00:00` (`log_format` only).
    TimeIso8601,
    /// `$msec`: Unix time with milliseconds (`log_format` only).
    Msec,
    /// `$request`: the request line (`log_format` only).
    Request,
}

/// The variables only `log_format` may name.
pub const LOG_NAMES: &[&str] = &[
    "status",
    "body_bytes_sent",
    "request_time",
    "time_local",
    "time_iso8601",
    "msec",
    "request",
];

fn log_var(name: &str) -> Option<Var> {
    Some(match name {
        "status" => Var::Status,
        "body_bytes_sent" => Var::BodyBytesSent,
        "request_time" => Var::RequestTime,
        "time_local" => Var::TimeLocal,
        "time_iso8601" => Var::TimeIso8601,
        "msec" => Var::Msec,
        "request" => Var::Request,
        _ => return None,
    })
}

/// The names of the variables, for messages and suggestions.
pub const NAMES: &[&str] = &[
    "host",
    "http_host",
    "request_uri",
    "uri",
    "args",
    "query_string",
    "scheme",
    "request_method",
    "remote_addr",
    "remote_port",
    "server_name",
    "server_port",
    "http_NAME",
    "proxy_add_x_forwarded_for",
    "request_id",
    "remote_user",
    "binary_remote_addr",
];

fn var(name: &str) -> Option<Var> {
    Some(match name {
        "host" => Var::Host,
        "http_host" => Var::HttpHost,
        "request_uri" => Var::RequestUri,
        "uri" => Var::Uri,
        "args" | "query_string" => Var::Args,
        "scheme" => Var::Scheme,
        "request_method" => Var::RequestMethod,
        "remote_addr" => Var::RemoteAddr,
        "remote_port" => Var::RemotePort,
        "server_name" => Var::ServerName,
        "server_port" => Var::ServerPort,
        "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
        "request_id" => Var::RequestId,
        "remote_user" => Var::RemoteUser,
        "binary_remote_addr" => Var::BinaryRemoteAddr,
        _ => {
            let header = name.strip_prefix("http_")?;
            if header.is_empty() {
                return None;
            }
            Var::Http(header.replace('_', "-").to_ascii_lowercase())
        }
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A value as written, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

/// Why a value is not a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Where in the value (bytes) the bad variable starts (its `$`), and
    /// its length.
    pub at: usize,
    pub len: usize,
    /// The name as written.
    pub name: String,
    /// `${name` without its `}` (the name itself may be known).
    pub unclosed: bool,
}

/// What a template reads its variables from: one request.
pub trait Vars {
    /// Appends the value of `var` to `out`.
    fn write(&self, var: &Var, out: &mut String);
}

/// Variables that may be absent (a proxied request whose route names
/// none keeps none): every variable is then empty.
impl<V: Vars> Vars for Option<V> {
    fn write(&self, var: &Var, out: &mut String) {
        if let Some(v) = self {
            v.write(var, out);
        }
    }
}

impl Template {
    /// Compiles `text`: `$name` and `${name}` are variables, `$$` is a
    /// `$`, and a `$` not followed by a name is itself.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_with(text, false)
    }

    /// Compiles a `log_format` value: the log's own variables
    /// ([`LOG_NAMES`]) are known too.
    pub fn parse_log(text: &str) -> Result<Template, TemplateError> {
        Template::parse_with(text, true)
    }

    fn parse_with(text: &str, log: bool) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(more) = after.strip_prefix('$') {
                literal.push('$');
                rest = more;
                continue;
            }
            let (braced, body) = match after.strip_prefix('{') {
                Some(b) => (true, b),
                None => (false, after),
            };
            let name_len = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            let name = &body[..name_len];
            if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                literal.push('$');
                rest = after;
                continue;
            }
            let close = usize::from(braced && body[name_len..].starts_with('}'));
            let start = text.len() - rest.len() + i;
            let len = 1 + usize::from(braced) + name_len + close;
            let unclosed = braced && close == 0;
            let found = var(name).or_else(|| log_var(name).filter(|_| log));
            let Some(v) = found.filter(|_| !unclosed) else {
                return Err(TemplateError {
                    at: start,
                    len,
                    name: name.to_string(),
                    unclosed,
                });
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Var(v));
            rest = &body[name_len + close..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template {
            source: text.to_string(),
            pieces,
        })
    }

    /// The value as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variable when the value is that one variable and nothing else.
    pub fn single_var(&self) -> Option<&Var> {
        match self.pieces.as_slice() {
            [Piece::Var(v)] => Some(v),
            _ => None,
        }
    }

    /// Whether it names a variable.
    pub fn has_vars(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var(_)))
    }

    /// Whether it names this variable.
    pub fn uses(&self, var: &Var) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(v) if v == var))
    }

    /// The value for one request (borrowed when it has no variable).
    pub fn render<'a>(&'a self, vars: &dyn Vars) -> Cow<'a, str> {
        match self.pieces.as_slice() {
            [] => Cow::Borrowed(""),
            [Piece::Text(t)] => Cow::Borrowed(t),
            pieces => {
                let mut out = String::with_capacity(self.source.len() + 32);
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Var(v) => vars.write(v, &mut out),
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Vars for Fixed {
        fn write(&self, var: &Var, out: &mut String) {
            out.push_str(match var {
                Var::Host => "example.test",
                Var::RequestUri => "/a?b=1",
                Var::Http(name) if name == "x-token" => "t0k",
                _ => "?",
            });
        }
    }

    #[test]
    fn pieces_and_rendering() {
        let t = Template::parse("https://$host$request_uri").unwrap();
        assert!(t.has_vars());
        assert_eq!(t.render(&Fixed), "https://example.test/a?b=1");
        let t = Template::parse("${host}x and $$5 and $5 and $http_X_Token").unwrap();
        assert_eq!(t.render(&Fixed), "example.testx and $5 and $5 and t0k");
        let plain = Template::parse("no variables").unwrap();
        assert!(matches!(
            plain.render(&Fixed),
            Cow::Borrowed("no variables")
        ));
        assert_eq!(Template::parse("").unwrap().render(&Fixed), "");
    }

    #[test]
    fn unknown_names_are_errors_with_their_place() {
        let e = Template::parse("https://$hots/").unwrap_err();
        assert_eq!((e.at, e.len, e.name.as_str()), (8, 5, "hots"));
        let e = Template::parse("a ${host").unwrap_err();
        assert!(e.unclosed && e.name == "host");
        assert!(Template::parse("$http_").is_err());
    }
}
