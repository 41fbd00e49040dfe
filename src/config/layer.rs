//! Inheritance: the inheritable settings one block sets, merged main →
//! server → location. A value set in an outer block is the default of every
//! inner block that does not set it; lists (`allow`/`deny`, `add_header`,
//! `proxy_set_header`, `index`, `error_page`) are replaced whole, never
//! merged.

use super::check::Node;
use super::directives::Key;
use super::values::{LogSpec, Value};
use crate::log::LogTarget;
use crate::routing::{
    AccessList, AccessRule, Action, ErrorPage, Gzip, Header, ListingFormat, Origin, Route,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The inheritable settings of one block; `None` means "not set here".
#[derive(Clone, Debug, Default)]
pub struct Layer {
    pub access_log: Option<Option<LogTarget>>,
    /// The `log_format` of `access_log` (set with it by the compiler,
    /// which knows the formats); `None` inside for `combined`.
    pub log_format: Option<Option<Arc<crate::routing::log_format::LogFormat>>>,
    pub root: Option<PathBuf>,
    pub index: Option<Arc<[String]>>,
    pub autoindex: Option<bool>,
    pub autoindex_format: Option<ListingFormat>,
    pub dotfiles: Option<bool>,
    pub charset: Option<Option<String>>,
    pub expires: Option<crate::routing::Expires>,
    /// Not inherited: a server's applies to requests no location takes.
    pub try_files: Option<crate::routing::TryFiles>,
    pub access: Option<Vec<AccessRule>>,
    /// `auth_basic`, with the span of its arguments.
    pub auth_basic: Option<(Option<String>, super::source::Span)>,
    /// `auth_basic_user_file`, read (set by the compiler, which holds the
    /// files); `Some(None)` when it could not be read.
    pub auth_basic_user_file: Option<Option<Arc<crate::routing::auth::UserFile>>>,
    pub set_real_ip_from: Option<Vec<crate::routing::AccessTarget>>,
    pub real_ip_header: Option<String>,
    pub real_ip_recursive: Option<bool>,
    pub limit_req: Option<Vec<crate::routing::limits::LimitReq>>,
    pub limit_req_status: Option<u16>,
    pub limit_conn: Option<Vec<crate::routing::limits::LimitConn>>,
    pub limit_conn_status: Option<u16>,
    pub add_header: Option<Vec<Header>>,
    pub proxy_set_header: Option<Vec<Header>>,
    pub error_page: Option<Vec<ErrorPage>>,
    pub gzip: Option<bool>,
    pub gzip_types: Option<Arc<[String]>>,
    pub gzip_min_length: Option<u64>,
    pub gzip_comp_level: Option<u32>,
    pub gzip_static: Option<bool>,
    pub client_header_timeout: Option<Duration>,
    pub client_body_timeout: Option<Duration>,
    pub keepalive_timeout: Option<Duration>,
    pub keepalive_requests: Option<u64>,
    pub send_timeout: Option<Duration>,
    pub proxy_connect_timeout: Option<Duration>,
    pub proxy_read_timeout: Option<Duration>,
    pub proxy_send_timeout: Option<Duration>,
    pub proxy_timeout: Option<Duration>,
    pub client_max_body_size: Option<u64>,
    pub client_header_max_size: Option<u64>,
    pub client_min_rate: Option<Option<crate::routing::MinRate>>,
    pub underscores_in_headers: Option<bool>,
}

/// The default `gzip_types`.
pub const DEFAULT_GZIP_TYPES: &[&str] = &[
    "text/html",
    "text/plain",
    "text/css",
    "text/xml",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
];

impl Layer {
    /// Records an inheritable setting of this block; returns false for
    /// directives that are not inheritable settings. `folder` is the folder
    /// of the file the node is written in (for relative paths).
    pub fn apply(&mut self, node: &Node, folder: &Path, origin: impl FnOnce() -> Origin) -> bool {
        match (node.spec.key, &node.value) {
            (Key::AccessLog, Value::AccessLog(spec, _)) => {
                self.access_log = Some(spec.as_ref().map(|s| log_target(s, folder)))
            }
            (Key::Root, Value::Text(p)) => self.root = Some(absolute(folder, p)),
            (Key::Index, Value::Words(w)) => self.index = Some(Arc::from(w.as_slice())),
            (Key::Autoindex, Value::Flag(b)) => self.autoindex = Some(*b),
            (Key::AutoindexFormat, Value::Choice(c)) => {
                self.autoindex_format = Some(if *c == "json" {
                    ListingFormat::Json
                } else {
                    ListingFormat::Html
                })
            }
            (Key::Dotfiles, Value::Choice(c)) => self.dotfiles = Some(*c == "allow"),
            (Key::Charset, Value::TextOrOff(t)) => self.charset = Some(t.clone()),
            (Key::Expires, Value::Expires(e)) => self.expires = Some(*e),
            (Key::TryFiles, Value::TryFiles(t)) => self.try_files = Some(t.clone()),
            (Key::AuthBasic, Value::TextOrOff(t)) => self.auth_basic = Some((t.clone(), node.args)),
            (Key::Allow | Key::Deny, Value::Access(target)) => {
                self.access.get_or_insert_with(Vec::new).push(AccessRule {
                    allow: node.spec.key == Key::Allow,
                    target: *target,
                    origin: origin(),
                })
            }
            (Key::SetRealIpFrom, Value::Access(target)) => self
                .set_real_ip_from
                .get_or_insert_with(Vec::new)
                .push(*target),
            (Key::RealIpHeader, Value::Text(h)) => self.real_ip_header = Some(h.clone()),
            (Key::RealIpRecursive, Value::Flag(b)) => self.real_ip_recursive = Some(*b),
            (Key::LimitReqStatus, Value::Number(n)) => self.limit_req_status = Some(*n as u16),
            (Key::LimitConnStatus, Value::Number(n)) => self.limit_conn_status = Some(*n as u16),
            (Key::AddHeader, Value::Header(h)) => {
                self.add_header.get_or_insert_with(Vec::new).push(h.clone())
            }
            (Key::ProxySetHeader, Value::Header(h)) => self
                .proxy_set_header
                .get_or_insert_with(Vec::new)
                .push(h.clone()),
            (Key::ErrorPage, Value::ErrorPage(p)) => {
                self.error_page.get_or_insert_with(Vec::new).push(p.clone())
            }
            (Key::Gzip, Value::Flag(b)) => self.gzip = Some(*b),
            (Key::GzipTypes, Value::Words(w)) => self.gzip_types = Some(Arc::from(w.as_slice())),
            (Key::GzipMinLength, Value::Size(n)) => self.gzip_min_length = Some(*n),
            (Key::GzipCompLevel, Value::Number(n)) => self.gzip_comp_level = Some(*n as u32),
            (Key::GzipStatic, Value::Flag(b)) => self.gzip_static = Some(*b),
            (Key::ClientHeaderTimeout, Value::Duration(d)) => self.client_header_timeout = Some(*d),
            (Key::ClientBodyTimeout, Value::Duration(d)) => self.client_body_timeout = Some(*d),
            (Key::KeepaliveTimeout, Value::Duration(d)) => self.keepalive_timeout = Some(*d),
            (Key::KeepaliveRequests, Value::Number(n)) => self.keepalive_requests = Some(*n),
            (Key::SendTimeout, Value::Duration(d)) => self.send_timeout = Some(*d),
            (Key::ProxyConnectTimeout, Value::Duration(d)) => self.proxy_connect_timeout = Some(*d),
            (Key::ProxyReadTimeout, Value::Duration(d)) => self.proxy_read_timeout = Some(*d),
            (Key::ProxySendTimeout, Value::Duration(d)) => self.proxy_send_timeout = Some(*d),
            (Key::ProxyTimeout, Value::Duration(d)) => self.proxy_timeout = Some(*d),
            (Key::ClientMaxBodySize, Value::Size(n)) => self.client_max_body_size = Some(*n),
            (Key::ClientHeaderMaxSize, Value::Size(n)) => self.client_header_max_size = Some(*n),
            (Key::ClientMinRate, Value::MinRate(r)) => self.client_min_rate = Some(*r),
            (Key::UnderscoresInHeaders, Value::Flag(b)) => self.underscores_in_headers = Some(*b),
            _ => return false,
        }
        true
    }

    /// This block's settings over the outer block's.
    pub fn inherit(mut self, outer: &Layer) -> Layer {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if self.$field.is_none() {
                    self.$field = outer.$field.clone();
                }
            )*};
        }
        take!(
            access_log,
            log_format,
            root,
            index,
            autoindex,
            autoindex_format,
            dotfiles,
            charset,
            expires,
            access,
            auth_basic,
            auth_basic_user_file,
            set_real_ip_from,
            real_ip_header,
            real_ip_recursive,
            limit_req,
            limit_req_status,
            limit_conn,
            limit_conn_status,
            add_header,
            proxy_set_header,
            error_page,
            gzip,
            gzip_types,
            gzip_min_length,
            gzip_comp_level,
            gzip_static,
            client_header_timeout,
            client_body_timeout,
            keepalive_timeout,
            keepalive_requests,
            send_timeout,
            proxy_connect_timeout,
            proxy_read_timeout,
            proxy_send_timeout,
            proxy_timeout,
            client_max_body_size,
            client_header_max_size,
            client_min_rate,
            underscores_in_headers
        );
        self
    }

    /// The effective route: every unset setting at its default.
    pub fn route(&self, action: Action) -> Route {
        Route {
            action,
            root: self.root.clone(),
            index: self.index.clone().unwrap_or_else(|| defaults().0.clone()),
            autoindex: self.autoindex.unwrap_or(false),
            autoindex_format: self.autoindex_format.unwrap_or_default(),
            dotfiles: self.dotfiles.unwrap_or(false),
            charset: self.charset.clone().flatten(),
            access: AccessList {
                rules: self.access.clone().unwrap_or_default(),
            },
            auth: match (&self.auth_basic, &self.auth_basic_user_file) {
                (Some((Some(realm), _)), Some(Some(users))) => Some(Arc::new(
                    crate::routing::auth::BasicAuth::new(realm.clone(), users.clone()),
                )),
                _ => None,
            },
            real_ip: self.real_ip(),
            limits: crate::routing::limits::Limits {
                req: self.limit_req.clone().unwrap_or_default(),
                req_status: self.limit_req_status.unwrap_or(503),
                conn: self.limit_conn.clone().unwrap_or_default(),
                conn_status: self.limit_conn_status.unwrap_or(503),
            },
            add_header: self.add_header.clone().unwrap_or_default(),
            proxy_set_header: self.proxy_set_header.clone().unwrap_or_default(),
            error_page: self.error_page.clone().unwrap_or_default(),
            gzip: Gzip {
                enabled: self.gzip.unwrap_or(false),
                types: self
                    .gzip_types
                    .clone()
                    .unwrap_or_else(|| defaults().1.clone()),
                min_length: self.gzip_min_length.unwrap_or(256),
                comp_level: self.gzip_comp_level.unwrap_or(5),
                static_files: self.gzip_static.unwrap_or(false),
            },
            client_body_timeout: self.client_body_timeout.unwrap_or(Duration::from_secs(10)),
            send_timeout: self.send_timeout.unwrap_or(Duration::from_secs(30)),
            proxy_connect_timeout: self.proxy_connect_timeout.unwrap_or(Duration::from_secs(5)),
            proxy_read_timeout: self.proxy_read_timeout.unwrap_or(Duration::from_secs(60)),
            proxy_send_timeout: self.proxy_send_timeout.unwrap_or(Duration::from_secs(60)),
            client_max_body_size: self.client_max_body_size.unwrap_or(1 << 20),
            access_log: self.access_log.clone().flatten(),
            log_format: self.log_format.clone().flatten(),
            underscores_in_headers: self.underscores_in_headers.unwrap_or(false),
            expires: self.expires.unwrap_or_default(),
            try_files: self.try_files.clone(),
            vars: Default::default(),
            proxy_uri: None,
            stats: Default::default(),
        }
        .with_var_use()
    }
}

impl Layer {
    /// The real-address settings, when some balancer is trusted.
    fn real_ip(&self) -> Option<Arc<crate::routing::real_ip::RealIp>> {
        use crate::routing::real_ip::{RealIp, RealIpSource};
        let from = self.set_real_ip_from.clone().filter(|f| !f.is_empty())?;
        let header = self.real_ip_header.as_deref().unwrap_or("X-Real-IP");
        let source = if header == "proxy_protocol" {
            RealIpSource::ProxyProtocol
        } else {
            RealIpSource::Header(header.to_ascii_lowercase())
        };
        Some(Arc::new(RealIp {
            from,
            source,
            recursive: self.real_ip_recursive.unwrap_or(false),
        }))
    }
}

/// `(index, gzip_types)`.
type DefaultLists = (Arc<[String]>, Arc<[String]>);

/// The default `index` and `gzip_types` lists, built once and shared.
fn defaults() -> &'static DefaultLists {
    static DEFAULTS: OnceLock<DefaultLists> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        (
            Arc::from(vec!["index.html".to_string()]),
            DEFAULT_GZIP_TYPES.iter().map(|s| s.to_string()).collect(),
        )
    })
}

/// A log destination with its path resolved.
pub fn log_target(spec: &LogSpec, folder: &Path) -> LogTarget {
    match spec {
        LogSpec::Stdout => LogTarget::Stdout,
        LogSpec::Stderr => LogTarget::Stderr,
        LogSpec::Path(p) => LogTarget::File(absolute(folder, p).into()),
    }
}

/// `p` made absolute against `folder` (symlinks are not resolved).
pub fn absolute(folder: &Path, p: &str) -> PathBuf {
    let joined = folder.join(p);
    let abs = std::path::absolute(&joined).unwrap_or(joined);
    // Drop `.` components; keep `..` (resolving it lexically is wrong
    // across symlinks).
    abs.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}
