//! Basic authentication (`auth_basic`, `auth_basic_user_file`): the users
//! of an htpasswd file and the check of one `Authorization` header.
//!
//! The file is read when the config is loaded (it is one of the config's
//! files: watched, and a change reloads the table). Hashes are checked
//! with `crypt3_rs`; the computed hash is compared with the stored one in
//! constant time.

use base64::Engine;
use rustc_hash::FxHashMap as HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The users of one htpasswd file.
#[derive(Debug)]
pub struct UserFile {
    /// The file, absolute.
    pub path: PathBuf,
    /// Different for every load of every file: keys the per-worker cache
    /// of checked credentials, so a changed file is never answered from it.
    pub id: u64,
    /// User → stored hash.
    users: HashMap<String, String>,
    /// A hash of the file's users and hashes (for `--dump` and the reload
    /// diff: a changed file shows as a changed value).
    pub version: u32,
}

impl PartialEq for UserFile {
    fn eq(&self, other: &UserFile) -> bool {
        self.path == other.path && self.users == other.users
    }
}

/// One problem of an htpasswd line: byte range in the file and what to
/// say.
#[derive(Debug, PartialEq)]
pub struct LineProblem {
    /// Start of the offending text.
    pub start: usize,
    /// End of the offending text.
    pub end: usize,
    /// The headline.
    pub message: String,
    /// What to do.
    pub help: &'static str,
}

/// The longest password checked, in bytes.
pub const MAX_PASSWORD: usize = 256;

/// The hash formats `htpasswd` writes that xps checks, for messages.
pub const FORMATS: &str = "bcrypt (`$2y$`), SHA-512 or SHA-256 crypt (`$6$`, `$5$`), apr1-MD5 (`$apr1$`) or MD5 crypt (`$1$`)";

impl UserFile {
    /// Parses an htpasswd file: `user:hash[:comment]` lines, `#` comments
    /// and blank lines. Lines that cannot be used are left out and
    /// reported; the first line of a user wins (later ones are reported).
    pub fn parse(path: PathBuf, text: &str) -> (UserFile, Vec<LineProblem>) {
        let mut users: HashMap<String, String> = HashMap::default();
        let mut problems = Vec::new();
        let mut offset = 0;
        for raw in text.split_inclusive('\n') {
            let start = offset;
            offset += raw.len();
            let line = raw.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, rest)) = line.split_once(':') else {
                problems.push(LineProblem {
                    start,
                    end: start + line.len(),
                    message: "this line is not `user:hash`: it is left out".into(),
                    help: "create users with `htpasswd -B FILE USER`",
                });
                continue;
            };
            let hash = rest.split(':').next().unwrap_or("");
            let hash_at = start + user.len() + 1;
            if user.is_empty() {
                problems.push(LineProblem {
                    start,
                    end: start + 1,
                    message: "this line has no user name: it is left out".into(),
                    help: "create users with `htpasswd -B FILE USER`",
                });
                continue;
            }
            if let Err(why) = check_hash(hash) {
                // An empty hash: the colon before it is what to point at.
                let (at, end) = if hash.is_empty() {
                    (hash_at - 1, hash_at)
                } else {
                    (hash_at, hash_at + hash.len())
                };
                problems.push(LineProblem {
                    start: at,
                    end,
                    message: format!("user `{user}` cannot log in: {why}"),
                    help: "set the password again with `htpasswd -B FILE USER`",
                });
                continue;
            }
            if users.contains_key(user) {
                problems.push(LineProblem {
                    start,
                    end: start + user.len(),
                    message: format!("user `{user}` is listed again: this line is ignored"),
                    help: "the first line of a user is the one that counts: remove the others",
                });
                continue;
            }
            users.insert(user.to_string(), hash.to_string());
        }
        let version = version(&users);
        let file = UserFile {
            path,
            id: next_id(),
            users,
            version,
        };
        (file, problems)
    }

    /// How many users can log in.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user an `Authorization` header value proves, if it does.
    pub fn check(&self, authorization: &[u8]) -> Option<&str> {
        let mut decoded = decode(authorization)?;
        let found = self.check_decoded(&decoded);
        // The password does not outlive the check.
        decoded.fill(0);
        found
    }

    fn check_decoded(&self, decoded: &[u8]) -> Option<&str> {
        let colon = decoded.iter().position(|&b| b == b':')?;
        let user = std::str::from_utf8(&decoded[..colon]).ok()?;
        let password = &decoded[colon + 1..];
        // SHA-crypt's work grows with the square of the password's length:
        // a longer one is refused without hashing (bcrypt reads 72 bytes).
        if password.len() > MAX_PASSWORD {
            return None;
        }
        let (name, stored) = self.users.get_key_value(user)?;
        // The hashes come from a file checked at load, the password from
        // a peer: a fault in the hashing code answers "no", never stops
        // the worker.
        let computed = std::panic::catch_unwind(|| crypt3_rs::unix::crypt(password, stored))
            .ok()?
            .ok()?;
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(computed.as_str().as_bytes(), stored.as_bytes()).into();
        same.then_some(name.as_str())
    }
}

/// `auth_basic` with its users: what a route checks.
#[derive(Debug, PartialEq)]
pub struct BasicAuth {
    /// The realm, as written.
    pub realm: String,
    /// The `WWW-Authenticate` value of a 401.
    pub challenge: Arc<str>,
    /// The users.
    pub users: Arc<UserFile>,
}

impl BasicAuth {
    /// Auth for `realm` with the users of `users`.
    pub fn new(realm: String, users: Arc<UserFile>) -> BasicAuth {
        let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
        BasicAuth {
            challenge: Arc::from(format!("Basic realm=\"{escaped}\", charset=\"UTF-8\"")),
            realm,
            users,
        }
    }
}

/// The decoded `user:password` of a `Basic` credential
/// (`Basic dXNlcjpwYXNz`).
fn decode(value: &[u8]) -> Option<Vec<u8>> {
    let value = value.trim_ascii();
    let space = value.iter().position(|&b| b == b' ')?;
    if !value[..space].eq_ignore_ascii_case(b"basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(value[space..].trim_ascii())
        .ok()
}

/// Whether a stored hash is one xps can check (format and parameters),
/// without hashing anything.
fn check_hash(hash: &str) -> Result<(), String> {
    if hash.is_empty() {
        return Err("the password hash is empty".into());
    }
    if hash.starts_with("{SHA}") {
        return Err(format!(
            "`{{SHA}}` (unsalted SHA-1) is not supported; use {FORMATS}"
        ));
    }
    if !hash.starts_with('$') {
        return Err(format!(
            "the password is not hashed in a format xps checks ({FORMATS}); plain text and DES crypt are not accepted"
        ));
    }
    match crypt3_rs::Hash::try_from(hash) {
        Ok(_) => {}
        Err(_) => return Err(format!("the hash is malformed or not one of {FORMATS}")),
    }
    if let Some(rest) = hash.strip_prefix("$2") {
        let cost: Option<u32> = rest.get(2..4).and_then(|c| c.parse().ok());
        match cost {
            Some(c) if (4..=31).contains(&c) => {}
            _ => return Err("the bcrypt cost is not a number from 04 to 31".into()),
        }
        let tail = rest.get(5..).unwrap_or("");
        let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
        if tail.len() != 53 || !tail.bytes().all(alphabet) {
            return Err("the bcrypt hash is malformed".into());
        }
    }
    Ok(())
}

fn version(users: &HashMap<String, String>) -> u32 {
    use std::hash::Hasher;
    let mut sorted: Vec<(&String, &String)> = users.iter().collect();
    sorted.sort();
    let mut h = rustc_hash::FxHasher::default();
    for (u, p) in sorted {
        h.write(u.as_bytes());
        h.write_u8(0);
        h.write(p.as_bytes());
        h.write_u8(0);
    }
    h.finish() as u32
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by `htpasswd` 2.4.71 (-B -C 5, -m, -2, -5) for the password
    // `secret`.
    const FILE: &str = "\
# team
bcrypt:$2y$05$9lJZPSLHkuhKYsr6x9LPiuDMAvUrd2EfwzvsQIgJgTq5eQwCNOcIS
apr1:$apr1$Cf.IpkwU$ote1UrulhdpWQcRFj91k0.
sha256:$5$sxLhcfF3DxLcSJUU$VbajDhjseKs/OpbLsKN5MmaUKHQYKS4Va1N6YvLxv.0
sha512:$6$YGN0lW.1xyMyvPuk$jiNrJBtispC6.th9YOeEr9iH/wLmGl7fic7ROrUc2tMjqBNj8oOft4cG7v3Gz./K.JcdOqxXooYNcEJnegBBm/:a comment
";

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}").into_bytes()
    }

    #[test]
    fn every_format_htpasswd_writes_is_checked() {
        let (f, problems) = UserFile::parse(PathBuf::from("/h"), FILE);
        assert_eq!(problems, vec![]);
        assert_eq!(f.len(), 4);
        for user in ["bcrypt", "apr1", "sha256", "sha512"] {
            assert_eq!(f.check(&basic(user, "secret")), Some(user), "{user}");
            assert_eq!(f.check(&basic(user, "Secret")), None, "{user}");
        }
        assert_eq!(f.check(&basic("nobody", "secret")), None);
        assert_eq!(f.check(&basic("sha512", &"A".repeat(12_000))), None);
        let mut odd = String::from("x:$2y$05");
        odd.push('é');
        odd.push_str(&"a".repeat(52));
        let (f2, problems) = UserFile::parse(PathBuf::from("/h"), &odd);
        assert!(f2.is_empty() && problems.len() == 1);
        assert_eq!(f.check(b"Bearer abc"), None);
        assert_eq!(f.check(b"Basic !!!"), None);
        assert_eq!(f.check(b"Basic"), None);
        let lower = String::from_utf8(basic("apr1", "secret"))
            .unwrap()
            .replace("Basic", "basic");
        assert_eq!(f.check(lower.as_bytes()), Some("apr1"));
    }

    #[test]
    fn unusable_lines_are_reported_with_their_place() {
        let text = "a:$apr1$wH0.oQhN$dd5ymVkOpdmfTK4sv5yHB1\nnocolon\nb:plain\nc:{SHA}abc\na:$apr1$Cf.IpkwU$ote1UrulhdpWQcRFj91k0.\n:$apr1$wH0.oQhN$dd5ymVkOpdmfTK4sv5yHB1\nd:$2y$05$short\n";
        let (f, problems) = UserFile::parse(PathBuf::from("/h"), text);
        assert_eq!(f.len(), 1);
        let at: Vec<&str> = problems.iter().map(|p| &text[p.start..p.end]).collect();
        // An empty hash at the very end of the file: the colon.
        let (_, p) = UserFile::parse(PathBuf::from("/h"), "x:");
        assert_eq!((p[0].start, p[0].end), (1, 2));
        assert_eq!(
            at,
            vec!["nocolon", "plain", "{SHA}abc", "a", ":", "$2y$05$short"]
        );
        assert!(problems[1].message.contains("`b` cannot log in"));
    }

    #[test]
    fn the_challenge_quotes_the_realm() {
        let (f, _) = UserFile::parse(PathBuf::from("/h"), "");
        let a = BasicAuth::new("say \"hi\"".into(), Arc::new(f));
        assert_eq!(
            &*a.challenge,
            "Basic realm=\"say \\\"hi\\\"\", charset=\"UTF-8\""
        );
    }
}
