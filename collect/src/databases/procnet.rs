//! Pure parsers for the procfs text discovery reads: `/proc/net/{tcp,tcp6,unix}`, fd link
//! targets, `cmdline`, `stat` and `cgroup`. No I/O; every function takes what the kernel
//! printed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::model::ListenAddr;

/// TCP state `0A` is `TCP_LISTEN` (include/net/tcp_states.h).
const TCP_LISTEN: u8 = 0x0A;
/// `__SO_ACCEPTCON` in the Flags column of `/proc/net/unix`: a listening socket.
const SO_ACCEPTCON: u32 = 0x0001_0000;
/// `SOCK_STREAM` in the Type column.
const SOCK_STREAM: u16 = 1;

/// A listening socket and the inode that links it to a process's fd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListeningSocket {
    pub inode: u64,
    pub addr: ListenAddr,
}

/// Why a procfs line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcNetError {
    #[error("line {line}: expected at least {expected} columns, found {found}: {text:?}")]
    TooFewColumns {
        line: usize,
        expected: usize,
        found: usize,
        text: String,
    },
    #[error("line {line}: {column} {text:?} is not valid hex")]
    BadHex {
        line: usize,
        column: &'static str,
        text: String,
    },
    #[error("line {line}: address {text:?} is not `HEXADDR:HEXPORT`")]
    BadAddress { line: usize, text: String },
}

/// Parsed listening sockets plus the lines that could not be read (reported, not fatal: a
/// kernel that adds a column must not hide every database).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub sockets: Vec<ListeningSocket>,
    pub errors: Vec<ProcNetError>,
}

/// `/proc/net/tcp` or `/proc/net/tcp6`: the sockets in state LISTEN.
///
/// Addresses are printed by the kernel as the in-memory bytes of each 32-bit word in native
/// byte order (`%08X` of a `__be32` read as `u32`), so each word is turned back into bytes with
/// `to_ne_bytes`; IPv6 is four such words. Ports are already in host order.
pub fn parse_proc_net_tcp(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let cols: Vec<&str> = raw.split_whitespace().collect();
        if cols.is_empty() || (line == 1 && cols.first() == Some(&"sl")) {
            continue;
        }
        if cols.len() < 10 {
            out.errors.push(ProcNetError::TooFewColumns {
                line,
                expected: 10,
                found: cols.len(),
                text: truncate(raw),
            });
            continue;
        }
        let state = match u8::from_str_radix(cols[3], 16) {
            Ok(s) => s,
            Err(_) => {
                out.errors.push(ProcNetError::BadHex {
                    line,
                    column: "st",
                    text: truncate(cols[3]),
                });
                continue;
            }
        };
        if state != TCP_LISTEN {
            continue;
        }
        let addr = match parse_hex_socket_addr(cols[1]) {
            Some(a) => a,
            None => {
                out.errors.push(ProcNetError::BadAddress {
                    line,
                    text: truncate(cols[1]),
                });
                continue;
            }
        };
        let Ok(inode) = cols[9].parse::<u64>() else {
            out.errors.push(ProcNetError::BadHex {
                line,
                column: "inode",
                text: truncate(cols[9]),
            });
            continue;
        };
        out.sockets.push(ListeningSocket { inode, addr });
    }
    out
}

/// `0100007F:1F90` → 127.0.0.1:8080; 32 hex digits for IPv6.
pub fn parse_hex_socket_addr(text: &str) -> Option<ListenAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ip = match addr.len() {
        8 => {
            let word = u32::from_str_radix(addr, 16).ok()?;
            IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (k, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = u32::from_str_radix(addr.get(k * 8..k * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(ListenAddr::Tcp { ip, port })
}

/// `/proc/net/unix`: listening stream sockets that have a path (abstract names keep the
/// kernel's leading `@`). Columns: `Num RefCount Protocol Flags Type St Inode Path`.
pub fn parse_proc_net_unix(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if line == 1 && raw.starts_with("Num") {
            continue;
        }
        let mut rest = raw.trim_start();
        let mut cols = Vec::with_capacity(7);
        for _ in 0..7 {
            let Some((col, tail)) = split_field(rest) else {
                break;
            };
            cols.push(col);
            rest = tail;
        }
        if cols.is_empty() {
            continue;
        }
        if cols.len() < 7 {
            out.errors.push(ProcNetError::TooFewColumns {
                line,
                expected: 7,
                found: cols.len(),
                text: truncate(raw),
            });
            continue;
        }
        let (Ok(flags), Ok(kind)) = (
            u32::from_str_radix(cols[3], 16),
            u16::from_str_radix(cols[4], 16),
        ) else {
            out.errors.push(ProcNetError::BadHex {
                line,
                column: "Flags/Type",
                text: truncate(raw),
            });
            continue;
        };
        if flags & SO_ACCEPTCON == 0 || kind != SOCK_STREAM {
            continue;
        }
        let Ok(inode) = cols[6].parse::<u64>() else {
            out.errors.push(ProcNetError::BadHex {
                line,
                column: "Inode",
                text: truncate(cols[6]),
            });
            continue;
        };
        // The path is the rest of the line after one space: it may itself contain spaces.
        let path = rest
            .strip_prefix(' ')
            .unwrap_or(rest)
            .trim_end_matches('\n');
        if path.is_empty() {
            continue;
        }
        out.sockets.push(ListeningSocket {
            inode,
            addr: ListenAddr::Unix {
                path: path.to_owned(),
            },
        });
    }
    out
}

/// Next whitespace-separated field and the text after it (not trimmed, so a path keeps its
/// spaces).
fn split_field(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start_matches(' ');
    if text.is_empty() {
        return None;
    }
    match text.find(' ') {
        Some(end) => Some((&text[..end], &text[end..])),
        None => Some((text, "")),
    }
}

/// `socket:[12345]` (an fd link target) → 12345.
pub fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `/proc/<pid>/cmdline`: NUL-separated arguments. A process that rewrote its title (Redis,
/// PostgreSQL workers) may leave one argument followed by padding NULs or spaces.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

/// The fields of `/proc/<pid>/stat` discovery uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name (what `/proc/<pid>/comm` holds; an `exec` changes it).
    pub comm: String,
    pub ppid: u32,
    /// When the process started, in clock ticks after boot: with the pid, an identity that a
    /// recycled pid does not share.
    pub start_ticks: u64,
}

/// `/proc/<pid>/stat` → [`ProcStat`]. `comm` may contain spaces and `)`, so it is what lies
/// between the first `(` and the last `)`, and the numbered fields are read after that.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut fields = text[close + 1..].split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    // Field 22 (starttime); `fields` is at field 5 now.
    let start_ticks = fields.nth(22 - 5)?.parse().ok()?;
    Some(ProcStat {
        comm,
        ppid,
        start_ticks,
    })
}

/// True when `/proc/<pid>/cgroup` names `container_id` (docker, podman, containerd all put
/// the full id in the cgroup path). Ids shorter than 12 characters are never matched.
pub fn cgroup_mentions(cgroup: &str, container_id: &str) -> bool {
    let id = container_id.trim();
    id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && cgroup.contains(id)
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_in_kernel_byte_order() {
        // Captured on this (little-endian) machine: 127.0.0.1:36379 and [::1]:36379.
        assert_eq!(
            parse_hex_socket_addr("0100007F:8E1B"),
            Some(ListenAddr::Tcp {
                ip: "127.0.0.1".parse().unwrap(),
                port: 36379
            })
        );
        assert_eq!(
            parse_hex_socket_addr("00000000000000000000000001000000:8E1B"),
            Some(ListenAddr::Tcp {
                ip: "::1".parse().unwrap(),
                port: 36379
            })
        );
        // fe80::1 in the same layout.
        assert_eq!(
            parse_hex_socket_addr("000080FE000000000000000001000000:0050"),
            Some(ListenAddr::Tcp {
                ip: "fe80::1".parse().unwrap(),
                port: 80
            })
        );
        assert_eq!(parse_hex_socket_addr("0100007F"), None);
        assert_eq!(parse_hex_socket_addr("+100007F:0050"), None);
        assert_eq!(parse_hex_socket_addr("0100007:0050"), None);
    }

    #[test]
    fn only_listen_state_is_kept_and_bad_lines_are_reported() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0\n\
   2: garbage\n";
        let parsed = parse_proc_net_tcp(text);
        assert_eq!(parsed.sockets.len(), 1);
        assert_eq!(parsed.sockets[0].inode, 111);
        assert_eq!(parsed.errors.len(), 1);
    }

    #[test]
    fn unix_listening_stream_sockets_with_paths() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000090096800: 00000002 00000000 00010000 0001 01 80480 /tmp/a b/redis.sock\n\
000000003a50c45d: 00000003 00000000 00000000 0001 03  1600\n\
0000000000000000: 00000002 00000000 00010000 0002 01 9 /run/dgram\n\
0000000000000001: 00000002 00000000 00010000 0001 01 10 @abstract\n";
        let parsed = parse_proc_net_unix(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let paths: Vec<_> = parsed.sockets.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(paths, ["unix:/tmp/a b/redis.sock", "unix:@abstract"]);
    }

    #[test]
    fn small_helpers() {
        assert_eq!(parse_socket_link("socket:[80480]"), Some(80480));
        assert_eq!(parse_socket_link("pipe:[1]"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
        assert_eq!(
            parse_cmdline(b"redis-server 127.0.0.1:6379\0\0\0"),
            ["redis-server 127.0.0.1:6379"]
        );
        assert_eq!(parse_cmdline(b"a\0-D\0/x\0"), ["a", "-D", "/x"]);
        assert_eq!(parse_stat("42 (x"), None);
        assert_eq!(parse_stat(")( S 7"), None);
    }

    #[test]
    fn stat_gives_comm_parent_and_start_time() {
        // `cat /proc/self/stat` on the project's machine (Debian 12, Linux 6.1).
        let text = "3976 (cat) R 3933 3933 27028 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 4256220 \
                    3133440 416 18446744073709551615 94329505914880 94329505934761 \
                    140725512622608 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94329505950768 \
                    94329505952384 94330266718208 140725512624857 140725512624877 \
                    140725512624877 140725512626155 0\n";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                comm: "cat".into(),
                ppid: 3933,
                start_ticks: 4256220,
            })
        );
        // A name with spaces and parentheses; a truncated line has no start time.
        let odd = parse_stat("7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0").unwrap();
        assert_eq!(
            (odd.comm.as_str(), odd.ppid, odd.start_ticks),
            ("a) b (c", 1, 99)
        );
        assert_eq!(parse_stat("42 (we ird) name) S 7 42 42 0"), None);
        assert_eq!(parse_stat("42 x) S 7"), None);
        assert!(cgroup_mentions(
            "0::/system.slice/docker-0123456789abcdef0123.scope\n",
            "0123456789abcdef0123"
        ));
        assert!(!cgroup_mentions("0::/", ""));
    }
}
