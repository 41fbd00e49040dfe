//! Path → location within one server: `location = /p` wins outright, else
//! the longest prefix that matches on a segment boundary (`/api` matches
//! `/api` and `/api/x`, not `/apikey`); the first declared wins a tie.

use super::{Origin, Route};
use rustc_hash::FxHashMap as HashMap;
use std::fmt;

/// How a location matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Match {
    /// `location = /p`: only `/p`.
    Exact(String),
    /// `location /p`: `/p` and everything under `/p/`; `location /p/`:
    /// everything under `/p/`.
    Prefix(String),
}

/// Why a location does or does not match a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Exact location, equal path.
    ExactMatch,
    /// Exact location, other path.
    ExactMismatch,
    /// The prefix matches; the number of bytes it covers.
    PrefixMatch(usize),
    /// The path does not start with the prefix.
    NotAPrefix,
    /// The path starts with the prefix but continues inside a segment
    /// (`/api` against `/apikey`).
    NotASegmentBoundary,
}

impl Verdict {
    /// Whether this verdict is a match.
    pub fn is_match(self) -> bool {
        matches!(self, Verdict::ExactMatch | Verdict::PrefixMatch(_))
    }
}

impl Match {
    /// The path as written after `location` (and `=`).
    pub fn path(&self) -> &str {
        match self {
            Match::Exact(p) | Match::Prefix(p) => p,
        }
    }

    /// Whether and why this location matches a normalised path.
    pub fn check(&self, path: &str) -> Verdict {
        match self {
            Match::Exact(p) if p == path => Verdict::ExactMatch,
            Match::Exact(_) => Verdict::ExactMismatch,
            Match::Prefix(p) => {
                if !path.starts_with(p.as_str()) {
                    Verdict::NotAPrefix
                } else if p.ends_with('/')
                    || path.len() == p.len()
                    || path.as_bytes()[p.len()] == b'/'
                {
                    Verdict::PrefixMatch(p.len())
                } else {
                    Verdict::NotASegmentBoundary
                }
            }
        }
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Exact(p) => write!(f, "= {p}"),
            Match::Prefix(p) => f.write_str(p),
        }
    }
}

/// One `location` block, compiled.
#[derive(Debug)]
pub struct Location {
    /// How it matches.
    pub matcher: Match,
    /// What it does, with every inherited setting merged in.
    pub route: Route,
    /// Where the `location` directive is.
    pub origin: Origin,
}

/// Which part of a server answered a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationMatch {
    /// The server's locations at this index of [`Locations::list`].
    Location(usize),
    /// No location matched: the server-level settings.
    NoLocation,
    /// The server has a server-level `return`: locations are not consulted.
    ServerReturn,
}

/// A server's locations, indexed for lookup.
#[derive(Debug, Default)]
pub struct Locations {
    /// In declaration order.
    list: Vec<Location>,
    /// Exact path → index.
    exact: HashMap<String, usize>,
    /// Indices of prefix locations, longest prefix first; equal lengths in
    /// declaration order.
    prefixes: Vec<usize>,
    /// Indices of prefix locations that end in `/` and proxy: they also
    /// take their path without the slash, with a 301.
    slashed: Vec<usize>,
}

impl Locations {
    /// Indexes locations given in declaration order.
    pub fn new(list: Vec<Location>) -> Locations {
        let mut exact = HashMap::default();
        let mut prefixes = Vec::new();
        for (i, loc) in list.iter().enumerate() {
            match &loc.matcher {
                Match::Exact(p) => {
                    exact.entry(p.clone()).or_insert(i);
                }
                Match::Prefix(_) => prefixes.push(i),
            }
        }
        let slashed = prefixes
            .iter()
            .copied()
            .filter(|&i| {
                list[i].matcher.path().ends_with('/')
                    && matches!(list[i].route.action, super::Action::Proxy(_))
            })
            .collect();
        prefixes.sort_by_key(|&i| std::cmp::Reverse(list[i].matcher.path().len()));
        Locations {
            list,
            exact,
            prefixes,
            slashed,
        }
    }

    /// nginx's redirect for a prefix location that ends in `/` and
    /// proxies: the location that takes `path` without its slash (`/api`
    /// for `location /api/`) with a 301 to the slash form, unless an exact
    /// location takes that path.
    pub fn slash_redirect(&self, path: &str) -> Option<usize> {
        if self.slashed.is_empty() || path.ends_with('/') || self.exact.contains_key(path) {
            return None;
        }
        self.slashed.iter().copied().find(|&i| {
            let p = self.list[i].matcher.path();
            p.len() == path.len() + 1 && p.starts_with(path)
        })
    }

    /// The locations in declaration order.
    pub fn list(&self) -> &[Location] {
        &self.list
    }

    /// Number of locations.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The index of the location for a normalised path.
    pub fn find(&self, path: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(path) {
            return Some(i);
        }
        self.prefixes
            .iter()
            .copied()
            .find(|&i| self.list[i].matcher.check(path).is_match())
    }

    /// Every location's verdict for a path, in declaration order.
    pub fn explain(&self, path: &str) -> Vec<Verdict> {
        self.list.iter().map(|l| l.matcher.check(path)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Action;

    fn locs(list: &[Match]) -> Locations {
        Locations::new(
            list.iter()
                .map(|m| Location {
                    matcher: m.clone(),
                    route: Route::defaults(Action::NotFound),
                    origin: Origin::default(),
                })
                .collect(),
        )
    }

    fn p(s: &str) -> Match {
        Match::Prefix(s.into())
    }

    #[test]
    fn prefix_matches_on_segment_boundaries_only() {
        let l = locs(&[p("/"), p("/api"), p("/static/")]);
        assert_eq!(l.find("/api"), Some(1));
        assert_eq!(l.find("/api/users"), Some(1));
        assert_eq!(l.find("/apikey"), Some(0));
        assert_eq!(l.find("/static/a.css"), Some(2));
        assert_eq!(l.find("/static"), Some(0));
        assert_eq!(l.find("/"), Some(0));
    }

    #[test]
    fn exact_wins_outright_and_longest_prefix_wins() {
        let l = locs(&[
            p("/a"),
            p("/a/b"),
            Match::Exact("/a/b/c".into()),
            p("/a/b/c"),
        ]);
        assert_eq!(l.find("/a/b/c"), Some(2));
        assert_eq!(l.find("/a/b/c/d"), Some(3));
        assert_eq!(l.find("/a/b/x"), Some(1));
        assert_eq!(l.find("/a/x"), Some(0));
        assert_eq!(l.find("/b"), None);
    }

    #[test]
    fn exact_does_not_match_below() {
        let l = locs(&[Match::Exact("/p".into())]);
        assert_eq!(l.find("/p"), Some(0));
        assert_eq!(l.find("/p/"), None);
    }

    #[test]
    fn verdicts_explain_each_location() {
        let l = locs(&[p("/api"), Match::Exact("/x".into()), p("/a")]);
        assert_eq!(
            l.explain("/apikey"),
            vec![
                Verdict::NotASegmentBoundary,
                Verdict::ExactMismatch,
                Verdict::NotASegmentBoundary
            ]
        );
        assert_eq!(l.explain("/a/b")[2], Verdict::PrefixMatch(2));
    }
}
