//! How a member of an upstream group is picked for a request.
//!
//! The policy is chosen per group (`balance`); the state it needs
//! (current weights, active requests) is one worker's, keyed by group name.
//! Members that are down, already tried for this request, or backups while
//! a primary is up are skipped.

use super::Endpoint;
use std::fmt;

/// A balancing policy (`balance` directive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    /// Smooth weighted round robin: over any window, each member gets its
    /// weight's share, interleaved rather than in bursts.
    #[default]
    RoundRobin,
    /// The member with the fewest active requests (weighted).
    LeastConn,
    /// A hash of the client address, so a client keeps its member.
    IpHash,
    /// Two members at random; the less loaded one wins.
    Random,
}

impl Balance {
    /// The names `balance` accepts, in the order the docs list them.
    pub const NAMES: &'static [&'static str] = &["round_robin", "least_conn", "ip_hash", "random"];

    /// The policy for a name of [`Balance::NAMES`].
    pub fn from_name(name: &str) -> Option<Balance> {
        match name {
            "round_robin" => Some(Balance::RoundRobin),
            "least_conn" => Some(Balance::LeastConn),
            "ip_hash" => Some(Balance::IpHash),
            "random" => Some(Balance::Random),
            _ => None,
        }
    }

    /// The name as written in xps.conf.
    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::IpHash => "ip_hash",
            Balance::Random => "random",
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A member as the picker sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// `weight`.
    pub weight: u32,
    /// `backup`.
    pub backup: bool,
    /// Up and not yet tried for this request.
    pub usable: bool,
}

/// One worker's state for one group.
#[derive(Clone, Debug, Default)]
pub struct Picker {
    /// The members this state is for, in the group's order.
    addrs: Vec<Endpoint>,
    /// Smooth round robin's current weights.
    current: Vec<i64>,
    /// Requests in flight per member.
    active: Vec<u32>,
    /// xorshift state for `random`.
    seed: u64,
}

impl Picker {
    /// State for a group with these members; `seed` (non-zero) starts
    /// `random` and `least_conn`'s tie breaks (each worker its own).
    pub fn new(addrs: &[Endpoint], seed: u64) -> Picker {
        Picker {
            addrs: addrs.to_vec(),
            current: vec![0; addrs.len()],
            active: vec![0; addrs.len()],
            seed: seed.max(1),
        }
    }

    /// Follows the group's members after a reload: members that stay keep
    /// their state (by address), new ones start fresh. A request from an
    /// older snapshot may switch it back; nothing is lost either way.
    pub fn follow<'a>(&mut self, addrs: impl Iterator<Item = &'a Endpoint> + Clone) {
        if self.addrs.iter().eq(addrs.clone()) {
            return;
        }
        let addrs: Vec<Endpoint> = addrs.cloned().collect();
        let old = |a: &Endpoint| self.addrs.iter().position(|o| o == a);
        let current = addrs
            .iter()
            .map(|a| old(a).map_or(0, |i| self.current[i]))
            .collect();
        let active = addrs
            .iter()
            .map(|a| old(a).map_or(0, |i| self.active[i]))
            .collect();
        self.current = current;
        self.active = active;
        self.addrs = addrs;
    }

    /// A request started on member `i` of the current list.
    pub fn started(&mut self, i: usize) {
        if let Some(a) = self.active.get_mut(i) {
            *a += 1;
        }
    }

    /// A request on the member at `addr` ended (by address, so a request
    /// that started before a reload ends on the right member).
    pub fn finished(&mut self, addr: &Endpoint) {
        if let Some(i) = self.addrs.iter().position(|a| a == addr) {
            self.active[i] = self.active[i].saturating_sub(1);
        }
    }

    /// Picks a member: primaries first, backups only when no primary is
    /// usable. `client` is a hash of the client address (for `ip_hash`).
    pub fn pick(&mut self, policy: Balance, members: &[Candidate], client: u64) -> Option<usize> {
        let primary_up = members.iter().any(|m| m.usable && !m.backup);
        let eligible = |m: &Candidate| m.usable && m.backup != primary_up;
        if !members.iter().any(eligible) {
            return None;
        }
        match policy {
            Balance::RoundRobin => self.smooth(members, &eligible),
            Balance::LeastConn => self.least(members, &eligible),
            Balance::IpHash => {
                // Walk from the hashed position so a client keeps its member
                // while it is up, and moves only when it is not.
                let n = members.len();
                let start = (client % n as u64) as usize;
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| eligible(&members[i]))
            }
            Balance::Random => {
                // Power of two choices: two different members drawn by
                // weight, the less loaded one wins.
                let a = self.draw(members, &eligible, None)?;
                let Some(b) = self.draw(members, &eligible, Some(a)) else {
                    return Some(a);
                };
                let load =
                    |i: usize| (self.active[i] as u64 * 1000) / members[i].weight.max(1) as u64;
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }

    /// nginx's smooth weighted round robin.
    fn smooth(
        &mut self,
        members: &[Candidate],
        eligible: &dyn Fn(&Candidate) -> bool,
    ) -> Option<usize> {
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, m) in members.iter().enumerate() {
            if !eligible(m) {
                continue;
            }
            self.current[i] += m.weight as i64;
            total += m.weight as i64;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }

    fn least(
        &mut self,
        members: &[Candidate],
        eligible: &dyn Fn(&Candidate) -> bool,
    ) -> Option<usize> {
        // Fewest active per unit of weight; ties go round robin.
        let mut best: Option<(u64, usize)> = None;
        let n = members.len();
        let start = (self.next_random() % n as u64) as usize;
        for k in 0..n {
            let i = (start + k) % n;
            if !eligible(&members[i]) {
                continue;
            }
            let load = (self.active[i] as u64 * 1_000_000) / members[i].weight.max(1) as u64;
            if best.is_none_or(|(l, _)| load < l) {
                best = Some((load, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// One eligible member other than `except`, drawn with probability
    /// proportional to its weight.
    fn draw(
        &mut self,
        members: &[Candidate],
        eligible: &dyn Fn(&Candidate) -> bool,
        except: Option<usize>,
    ) -> Option<usize> {
        let counts = |i: usize, m: &Candidate| eligible(m) && Some(i) != except;
        let total: u64 = (members.iter().enumerate())
            .filter(|&(i, m)| counts(i, m))
            .map(|(_, m)| m.weight.max(1) as u64)
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = self.next_random() % total;
        for (i, m) in members.iter().enumerate() {
            if !counts(i, m) {
                continue;
            }
            let w = m.weight.max(1) as u64;
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        x
    }
}

/// A stable hash of a client address for `ip_hash` (IPv4: the first three
/// octets, as nginx, so a client's neighbours share a member; IPv6: all).
pub fn client_hash(ip: std::net::IpAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    };
    match ip {
        std::net::IpAddr::V4(v4) => v4.octets()[..3].iter().for_each(|b| eat(*b)),
        std::net::IpAddr::V6(v6) => v6.octets().iter().for_each(|b| eat(*b)),
    }
    // FNV's last step is a multiply, which leaves the low bits poorly
    // mixed: without this finish (MurmurHash3's), every 127.N.0.x maps to
    // the first of three members.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;

    fn addrs(n: u16) -> Vec<Endpoint> {
        (1..=n)
            .map(|p| Endpoint::Inet(SocketAddr::from(([127, 0, 0, 1], p))))
            .collect()
    }

    #[test]
    fn a_reload_keeps_state_by_address() {
        let mut p = Picker::new(&addrs(3), 7);
        let members = [c(1, false), c(1, false), c(1, false)];
        p.started(2);
        p.started(2);
        // Member 1 goes, 4 comes: member 3 keeps its two requests.
        let new = [
            addrs(3)[0].clone(),
            addrs(3)[2].clone(),
            Endpoint::Inet(SocketAddr::from(([127, 0, 0, 1], 4))),
        ];
        p.follow(new.iter());
        assert_eq!(
            p.pick(Balance::LeastConn, &members, 0)
                .map(|i| new[i] == new[1]),
            Some(false)
        );
        // A request from before the reload ends on its member, by address.
        p.finished(&addrs(3)[2]);
        p.finished(&addrs(3)[2]);
        p.finished(&addrs(3)[1]); // gone: ignored
        p.started(0);
        p.started(2);
        assert_eq!(p.pick(Balance::LeastConn, &members, 0), Some(1));
    }

    fn c(weight: u32, backup: bool) -> Candidate {
        Candidate {
            weight,
            backup,
            usable: true,
        }
    }

    #[test]
    fn names_round_trip() {
        for name in Balance::NAMES {
            assert_eq!(Balance::from_name(name).map(Balance::name), Some(*name));
        }
        assert_eq!(Balance::from_name("fastest"), None);
    }

    #[test]
    fn smooth_round_robin_interleaves_by_weight() {
        let members = [c(5, false), c(1, false), c(1, false)];
        let mut p = Picker::new(&addrs(3), 7);
        let picks: Vec<usize> = (0..7)
            .map(|_| p.pick(Balance::RoundRobin, &members, 0).expect("pick"))
            .collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn backups_serve_only_without_primaries() {
        let mut members = [c(1, false), c(1, true)];
        let mut p = Picker::new(&addrs(2), 7);
        assert_eq!(p.pick(Balance::RoundRobin, &members, 0), Some(0));
        members[0].usable = false;
        assert_eq!(p.pick(Balance::RoundRobin, &members, 0), Some(1));
        members[1].usable = false;
        assert_eq!(p.pick(Balance::RoundRobin, &members, 0), None);
    }

    #[test]
    fn least_conn_prefers_the_idle_member() {
        let members = [c(1, false), c(1, false)];
        let mut p = Picker::new(&addrs(2), 7);
        p.started(0);
        p.started(0);
        assert_eq!(p.pick(Balance::LeastConn, &members, 0), Some(1));
    }

    #[test]
    fn random_draws_two_different_members_by_weight() {
        // With two members both are always drawn: the busy one never wins.
        let members = [c(1, false), c(1, false)];
        let mut p = Picker::new(&addrs(2), 7);
        p.started(1);
        for _ in 0..100 {
            assert_eq!(p.pick(Balance::Random, &members, 0), Some(0));
        }
        // Idle members: drawn in proportion to their weights.
        let members = [c(3, false), c(1, false), c(1, false), c(1, false)];
        let mut p = Picker::new(&addrs(4), 7);
        let mut n = [0usize; 4];
        for _ in 0..6000 {
            n[p.pick(Balance::Random, &members, 0).expect("pick")] += 1;
        }
        assert!(n[0] > n[1] + n[2], "{n:?}");
        assert!(n.iter().all(|&k| k > 300), "{n:?}");
        // One member left: it is the only draw.
        let members = [
            c(1, false),
            Candidate {
                usable: false,
                ..c(1, false)
            },
        ];
        assert_eq!(p.pick(Balance::Random, &members, 0), Some(0));
    }

    #[test]
    fn ip_hash_is_stable_and_moves_only_when_down() {
        let mut members = [c(1, false), c(1, false), c(1, false)];
        let mut p = Picker::new(&addrs(3), 7);
        let h = client_hash("10.1.2.3".parse().expect("ip"));
        let first = p.pick(Balance::IpHash, &members, h).expect("pick");
        assert_eq!(p.pick(Balance::IpHash, &members, h), Some(first));
        members[first].usable = false;
        assert_ne!(p.pick(Balance::IpHash, &members, h), Some(first));
    }

    #[test]
    fn ip_hash_spreads_networks_that_differ_in_one_octet() {
        for n in [2u64, 3, 4] {
            for net in [|i: u8| [127, i, 0, 1], |i: u8| [10, 0, i, 1]] {
                let mut seen = vec![0; n as usize];
                for i in 0..=255u8 {
                    let ip = std::net::IpAddr::from(net(i));
                    seen[(client_hash(ip) % n) as usize] += 1;
                }
                // Each member gets at least half its fair share.
                assert!(
                    seen.iter().all(|&c| c * 2 * n >= 256),
                    "{n} members: {seen:?}"
                );
            }
        }
    }
}
