//! `auth_basic` on a worker: each worker remembers the credentials it
//! checked, so a bcrypt hash (milliseconds of CPU) is computed once per
//! client and password, not once per request.

use crate::routing::auth::BasicAuth;
use rustc_hash::FxHashMap as HashMap;

/// Credentials remembered per worker; the map starts again when full.
const MAX_REMEMBERED: usize = 1024;

/// What a checked `Authorization` value proved: the user file load it
/// was checked against, and the user (`None`: refused).
type Checked = (u64, Option<Box<str>>);

/// The checked `Authorization` values of one worker, by user file load.
#[derive(Default)]
pub struct AuthCache {
    /// Header value → what it proved.
    checked: HashMap<Box<[u8]>, Checked>,
}

/// What a request's credentials prove.
pub enum Verdict {
    /// A user of the file, with the right password.
    User(Box<str>),
    /// Missing or wrong: 401.
    Refused,
}

impl AuthCache {
    /// Checks the `Authorization` header value of a request (if any)
    /// against `auth`.
    pub fn check(&mut self, auth: &BasicAuth, header: Option<&[u8]>) -> Verdict {
        let Some(value) = header else {
            return Verdict::Refused;
        };
        let id = auth.users.id;
        match self.checked.get(value) {
            Some((checked_with, Some(user))) if *checked_with == id => {
                return Verdict::User(user.clone());
            }
            Some((checked_with, None)) if *checked_with == id => return Verdict::Refused,
            _ => {}
        }
        let user: Option<Box<str>> = auth.users.check(value).map(Box::from);
        if self.checked.len() >= MAX_REMEMBERED {
            self.checked.clear();
        }
        self.checked.insert(Box::from(value), (id, user.clone()));
        match user {
            Some(u) => Verdict::User(u),
            None => Verdict::Refused,
        }
    }
}
