//! A route: everything a request needs once its location is known, with
//! every inherited setting already merged in. Field names are directive
//! names.

use super::template::{Template, Var};
use super::{AccessList, UpstreamId};
use crate::log::LogTarget;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What answers the request.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Files under `root`.
    Static,
    /// `return CODE [URL|TEXT]`.
    Return(Return),
    /// `proxy_pass` to this upstream group.
    Proxy(UpstreamId),
    /// `metrics`: live figures.
    Metrics,
    /// Nothing to serve here (a server without `root` and no matching
    /// location): 404.
    NotFound,
}

/// `return CODE [URL|TEXT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Return {
    /// The status code.
    pub code: u16,
    /// For 301/302/303/307/308 the `Location`; otherwise the body text.
    pub text: Option<Template>,
}

impl Return {
    /// Whether the code is a redirect that takes a URL.
    pub fn is_redirect(code: u16) -> bool {
        matches!(code, 301 | 302 | 303 | 307 | 308)
    }
}

/// Whether a route's values (`return`, `add_header`, `proxy_set_header`,
/// `try_files`) name variables: a request copies its head for them, or
/// makes a request id, only when they do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VarUse {
    /// Some value names a variable.
    pub any: bool,
    /// Some value names `$request_id`.
    pub request_id: bool,
}

/// `try_files FILE… URI|=CODE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryFiles {
    /// Paths under the root to try in order (`$uri`, `$uri/` for a
    /// folder).
    pub files: Vec<Template>,
    /// When none exists.
    pub fallback: TryFallback,
}

/// The last argument of `try_files`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TryFallback {
    /// A path the request is routed again with (an internal redirect).
    Uri(Template),
    /// An error status.
    Code(u16),
}

/// The URI part of `proxy_pass`, with what it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUri {
    /// The location's path (`/api/`), or the whole path of an exact
    /// location.
    pub prefix: String,
    /// The URI written in `proxy_pass` (`/`, `/v2/`).
    pub uri: String,
}

impl ProxyUri {
    /// The target for the upstream: `raw` is the request's origin-form
    /// target as sent, `path` its decoded, normalised path. As in nginx,
    /// the part of the normalised path the location matched becomes the
    /// URI and the rest is escaped again; the query goes as it was sent.
    pub fn rewrite(&self, raw: &str, path: &str) -> String {
        let query = raw.split_once('?').map(|(_, q)| q);
        let rest = path.strip_prefix(self.prefix.as_str()).unwrap_or("");
        let rest = percent_encoding::utf8_percent_encode(rest, PATH);
        let mut out = format!("{}{rest}", self.uri);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// What is escaped when a path is written again.
const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `expires`: how long clients may keep a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expires {
    /// No `Expires` or `Cache-Control` added.
    #[default]
    Off,
    /// `Expires` in 1970 and `Cache-Control: no-cache`.
    Epoch,
    /// As long as nginx's `max`: 2037 and ten years.
    Max,
    /// `Expires` this long from now, and the same `max-age`.
    After(Duration),
}

impl Expires {
    /// The `Cache-Control` and `Expires` values for a response with
    /// `status` made at `now`; `None` when nothing is added (off, or a
    /// status other than 200, 201, 204, 206, 301, 302, 303, 304, 307, 308,
    /// as in nginx).
    pub fn headers(self, status: u16, now: std::time::SystemTime) -> Option<(String, String)> {
        if !matches!(
            status,
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        ) {
            return None;
        }
        let (control, at) = match self {
            Expires::Off => return None,
            Expires::Epoch => (
                "no-cache".to_string(),
                std::time::UNIX_EPOCH + Duration::from_secs(1),
            ),
            Expires::Max => (
                "max-age=315360000".to_string(),
                // Thu, 31 Dec 2037 23:55:55 GMT
                std::time::UNIX_EPOCH + Duration::from_secs(2_145_916_555),
            ),
            Expires::After(d) => (format!("max-age={}", d.as_secs()), now + d),
        };
        Some((control, httpdate::fmt_http_date(at)))
    }

    /// As written in a config.
    pub fn text(self) -> String {
        match self {
            Expires::Off => "off".into(),
            Expires::Epoch => "epoch".into(),
            Expires::Max => "max".into(),
            Expires::After(d) => format!("{}s", d.as_secs()),
        }
    }
}

/// A header to add (`add_header`) or set upstream (`proxy_set_header`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The name as written.
    pub name: String,
    /// The value; empty for `proxy_set_header` removes the header.
    pub value: Template,
}

/// `error_page CODE… PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorPage {
    /// The statuses it replaces.
    pub codes: Vec<u16>,
    /// Path of the page under the effective root.
    pub path: String,
    /// `=CODE`: the status the page is sent with (`error_page 404 =200
    /// /index.html`); else the error's own.
    pub status: Option<u16>,
}

/// Directory listing format (`autoindex_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ListingFormat {
    /// An HTML table.
    #[default]
    Html,
    /// A JSON array.
    Json,
}

impl ListingFormat {
    /// The name as written in xps.conf.
    pub fn name(self) -> &'static str {
        match self {
            ListingFormat::Html => "html",
            ListingFormat::Json => "json",
        }
    }
}

/// The gzip settings of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gzip {
    /// `gzip`.
    pub enabled: bool,
    /// `gzip_types` (shared: most routes have the same list).
    pub types: Arc<[String]>,
    /// `gzip_min_length`.
    pub min_length: u64,
    /// `gzip_comp_level`.
    pub comp_level: u32,
    /// `gzip_static`.
    pub static_files: bool,
}

/// Everything a request needs once routed.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// The handler.
    pub action: Action,
    /// `root`, absolute.
    pub root: Option<PathBuf>,
    /// `index` (shared: most routes have the same list).
    pub index: Arc<[String]>,
    /// `autoindex`.
    pub autoindex: bool,
    /// `autoindex_format`.
    pub autoindex_format: ListingFormat,
    /// `dotfiles allow` (false: deny).
    pub dotfiles: bool,
    /// `charset`; `None` for off.
    pub charset: Option<String>,
    /// `allow`/`deny`.
    pub access: AccessList,
    /// `auth_basic` with its users; `None` when off.
    pub auth: Option<Arc<super::auth::BasicAuth>>,
    /// `limit_req` and `limit_conn`.
    pub limits: super::limits::Limits,
    /// `set_real_ip_from` and its companions; `None` without trusted
    /// addresses.
    pub real_ip: Option<Arc<super::real_ip::RealIp>>,
    /// `add_header`.
    pub add_header: Vec<Header>,
    /// `proxy_set_header`.
    pub proxy_set_header: Vec<Header>,
    /// `error_page`.
    pub error_page: Vec<ErrorPage>,
    /// `gzip*`.
    pub gzip: Gzip,
    /// `client_body_timeout`.
    pub client_body_timeout: Duration,
    /// `send_timeout`.
    pub send_timeout: Duration,
    /// `proxy_connect_timeout`.
    pub proxy_connect_timeout: Duration,
    /// `proxy_read_timeout`.
    pub proxy_read_timeout: Duration,
    /// `proxy_send_timeout`.
    pub proxy_send_timeout: Duration,
    /// `client_max_body_size`.
    pub client_max_body_size: u64,
    /// `access_log`; `None` for off.
    pub access_log: Option<LogTarget>,
    /// Its `log_format`; `None` for `combined`.
    pub log_format: Option<Arc<super::log_format::LogFormat>>,
    /// `underscores_in_headers`: fields with `_` in their names go upstream.
    pub underscores_in_headers: bool,
    /// `expires`.
    pub expires: Expires,
    /// `try_files`.
    pub try_files: Option<TryFiles>,
    /// Which variables the route's values name (worked out when the
    /// route is compiled, see [`Route::with_var_use`]).
    pub vars: VarUse,
    /// `proxy_pass http://…/URI`: the part of the request's path the
    /// location matched is replaced by the URI.
    pub proxy_uri: Option<ProxyUri>,
    /// This location's counters (attached when the table is installed).
    pub stats: crate::metrics::Attach<crate::metrics::RouteStats>,
}

impl Route {
    /// The route with [`Route::vars`] worked out from its values.
    pub fn with_var_use(mut self) -> Route {
        let ret = match &self.action {
            Action::Return(r) => r.text.as_ref(),
            _ => None,
        };
        let tried = self.try_files.iter().flat_map(|t| {
            let last = match &t.fallback {
                TryFallback::Uri(u) => Some(u),
                TryFallback::Code(_) => None,
            };
            t.files.iter().chain(last)
        });
        let all: Vec<&Template> = ret
            .into_iter()
            .chain(self.add_header.iter().map(|h| &h.value))
            .chain(self.proxy_set_header.iter().map(|h| &h.value))
            .chain(tried)
            .chain(
                self.log_format
                    .iter()
                    .filter(|_| self.access_log.is_some())
                    .map(|f| &f.template),
            )
            .collect();
        let any = all.iter().any(|t| t.has_vars());
        let request_id = all.iter().any(|t| t.uses(&Var::RequestId));
        self.vars = VarUse { any, request_id };
        self
    }

    /// The error page configured for a status, if any.
    pub fn error_page_for(&self, code: u16) -> Option<&ErrorPage> {
        self.error_page.iter().find(|p| p.codes.contains(&code))
    }

    /// A route with every setting at its default (for tests and fuzzing).
    pub fn defaults(action: Action) -> Route {
        Route {
            action,
            root: None,
            index: Arc::from(vec!["index.html".to_string()]),
            autoindex: false,
            autoindex_format: ListingFormat::Html,
            dotfiles: false,
            charset: None,
            access: AccessList::default(),
            auth: None,
            limits: Default::default(),
            real_ip: None,
            add_header: Vec::new(),
            proxy_set_header: Vec::new(),
            error_page: Vec::new(),
            gzip: Gzip {
                enabled: false,
                types: Arc::from(Vec::new()),
                min_length: 256,
                comp_level: 5,
                static_files: false,
            },
            client_body_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            proxy_connect_timeout: Duration::from_secs(5),
            proxy_read_timeout: Duration::from_secs(60),
            proxy_send_timeout: Duration::from_secs(60),
            client_max_body_size: 1 << 20,
            access_log: None,
            log_format: None,
            underscores_in_headers: false,
            expires: Expires::Off,
            try_files: None,
            vars: VarUse::default(),
            proxy_uri: None,
            stats: Default::default(),
        }
    }
}
