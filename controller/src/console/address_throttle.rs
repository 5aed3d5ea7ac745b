//! Login throttling per client address. The per-user throttle (`password.rs`) stops guessing
//! one account; this stops one address spraying guesses over many accounts (and spending
//! the controller's CPU on argon2 for each). A pure table with time passed in; the login
//! handler records failures and asks before checking a password.
//!
//! Decisions (docs/console.md): only *failures* count, so a household behind one NAT logging
//! in all day is never held back; a success does not clear the count (a guesser who knows
//! one password must not reset its budget with it); IPv6 addresses count by their /64, which
//! is what one subscriber gets; the table is bounded, and when full the oldest window gives
//! way.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins one address may make within [`WINDOW`].
pub const MAX_FAILURES: u32 = 30;
/// How long failures count.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Addresses tracked at once.
pub const MAX_TRACKED: usize = 65_536;

/// The address of the client a request came from, put into the request's extensions by the
/// accept loop (`api::serve`): the TCP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddress(pub SocketAddr);

/// What failures are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4([u8; 4]),
    /// The /64 prefix.
    V6Prefix(u64),
    /// The address is not known (a router driven without the accept loop, in tests): all
    /// such requests share one budget, never none.
    Unknown,
}

impl AddressKey {
    pub fn of(ip: Option<IpAddr>) -> Self {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => AddressKey::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => AddressKey::V6Prefix(prefix64(v6)),
            None => AddressKey::Unknown,
        }
    }
}

fn prefix64(v6: Ipv6Addr) -> u64 {
    u64::try_from(v6.to_bits() >> 64).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failed logins per address, in fixed windows.
#[derive(Debug, Default)]
pub struct AddressThrottle {
    table: Mutex<HashMap<AddressKey, Window>>,
}

impl AddressThrottle {
    /// `Err(retry_after)` when `key` used up its failures for the current window.
    pub fn check(&self, key: AddressKey, now: Instant) -> Result<(), Duration> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(&key) {
            Some(w) if w.failures >= MAX_FAILURES => {
                let ends = w.started + WINDOW;
                if ends > now { Err(ends - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed login from `key`.
    pub fn failed(&self, key: AddressKey, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.contains_key(&key) && table.len() >= MAX_TRACKED {
            table.retain(|_, w| now.saturating_duration_since(w.started) < WINDOW);
            if table.len() >= MAX_TRACKED
                && let Some(oldest) = table.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
        }
        let window = table.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.saturating_duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// Addresses tracked now (for tests and `/metrics`).
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The client's address for throttling: behind a TLS proxy (`api_behind_tls_proxy`) the
/// last `X-Forwarded-For` entry — the one our proxy added; anything before it the client
/// could have written — else the TCP peer.
pub fn client_ip(
    peer: Option<PeerAddress>,
    headers: &axum::http::HeaderMap,
    behind_proxy: bool,
) -> Option<IpAddr> {
    if behind_proxy {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty())
            .and_then(|s| s.parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|p| p.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> AddressKey {
        AddressKey::of(Some(s.parse().unwrap()))
    }

    #[test]
    fn an_address_is_held_back_after_its_failures_until_the_window_ends() {
        let t = AddressThrottle::default();
        let start = Instant::now();
        let a = v4("192.0.2.7");
        for i in 0..MAX_FAILURES {
            assert_eq!(t.check(a, start), Ok(()), "attempt {i}");
            t.failed(a, start + Duration::from_secs(u64::from(i)));
        }
        let wait = t.check(a, start + Duration::from_secs(60)).unwrap_err();
        assert_eq!(wait, WINDOW - Duration::from_secs(60));
        assert_eq!(t.check(v4("192.0.2.8"), start), Ok(()), "another address");
        assert_eq!(t.check(a, start + WINDOW), Ok(()), "the window ended");
        t.failed(a, start + WINDOW);
        assert_eq!(
            t.check(a, start + WINDOW),
            Ok(()),
            "a new window counts anew"
        );
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let k = |s: &str| AddressKey::of(Some(s.parse().unwrap()));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.7"), v4("192.0.2.7"));
        assert_eq!(AddressKey::of(None), AddressKey::Unknown);
    }

    #[test]
    fn the_table_stays_bounded_and_the_oldest_gives_way() {
        let t = AddressThrottle::default();
        let start = Instant::now();
        for i in 0..MAX_TRACKED as u32 + 10 {
            t.failed(
                AddressKey::V4(i.to_be_bytes()),
                start + Duration::from_millis(u64::from(i)),
            );
        }
        assert_eq!(t.tracked(), MAX_TRACKED);
    }

    #[test]
    fn behind_a_proxy_the_last_forwarded_entry_is_the_client() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        let peer = Some(PeerAddress("10.0.0.2:443".parse().unwrap()));
        assert_eq!(
            client_ip(peer, &h, true),
            Some("198.51.100.4".parse().unwrap())
        );
        assert_eq!(
            client_ip(peer, &h, false),
            Some("10.0.0.2".parse().unwrap())
        );
        let garbage = {
            let mut h = axum::http::HeaderMap::new();
            h.append("x-forwarded-for", "not an address".parse().unwrap());
            h
        };
        assert_eq!(
            client_ip(peer, &garbage, true),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(client_ip(None, &axum::http::HeaderMap::new(), false), None);
    }
}
