//! Garbage never panics: every database parser is fed every fixture truncated at each byte
//! offset and with bytes flipped by a deterministic PRNG (failures reproduce), plus hostile
//! shapes. An `Err`/`NotThisProtocol` is fine; a panic is the bug. The `db_*` fuzz targets in
//! `fuzz/` explore further.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unity_collect::databases::{DatabaseKind, identify, procnet, wire};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/databases");

fn fixtures() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(DIR)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(std::fs::read(p).unwrap());
            }
        }
    }
    assert!(out.len() > 20);
    out
}

fn all_parsers(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = procnet::parse_proc_net_tcp(&text);
    let _ = procnet::parse_proc_net_unix(&text);
    let _ = procnet::parse_cmdline(bytes);
    let _ = procnet::parse_stat(&text);
    let _ = procnet::parse_hex_socket_addr(&text);
    let _ = procnet::parse_socket_link(&text);
    let _ = wire::mysql::parse_first_packet(bytes);
    let _ = wire::postgres::parse_ssl_reply(bytes);
    let _ = wire::redis::parse_reply(bytes);
    let _ = wire::redis::parse_info(&text);
    let _ = wire::mongo::parse_reply(bytes, 1);
    let _ = wire::mongo::parse_document(bytes);
    let _ = wire::http::parse_response_head(bytes);
    let _ = wire::describe_bytes(bytes);
    let argv: Vec<String> = text.split([' ', '\0']).map(str::to_owned).collect();
    for kind in DatabaseKind::ALL {
        let _ = identify::parse_version_output(kind, &text);
        let _ = identify::data_dir(kind, &argv, Some(&text));
        let _ = identify::port_option(kind, &argv);
    }
    let _ = identify::recognise_image(&text);
    let _ = identify::recognise_process(&identify::ProcessView {
        comm: text.to_string(),
        exe: Some(text.to_string()),
        argv,
    });
}

#[test]
fn truncations_and_bit_flips_never_panic() {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for f in fixtures() {
        // Every cut of small files; of larger ones every 5th and the last 32 (keeps this fast).
        for cut in (0..=f.len()).filter(|c| f.len() <= 256 || c % 5 == 0 || c + 32 >= f.len()) {
            all_parsers(&f[..cut]);
        }
        for _ in 0..40 {
            let mut m = f.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if !m.is_empty() {
                    let i = (seed as usize) % m.len();
                    m[i] ^= (seed >> 32) as u8 | 1;
                }
            }
            all_parsers(&m);
        }
    }
}

#[test]
fn hostile_shapes_never_panic() {
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 5],
        vec![0x0a; 4096],
        b"\xff\xff\xff\x00\x0a".to_vec(),
        b"\x05\x00\x00\x00\x0a\x00".to_vec(),
        b"$-1\r\n".to_vec(),
        b"$9223372036854775807\r\n".to_vec(),
        b":notanumber\r\n".to_vec(),
        // BSON lengths pointing past the end, negative, or overflowing.
        b"\xff\xff\xff\x7f\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00".to_vec(),
        b"\x15\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00"
            .to_vec(),
        b"\x0c\x00\x00\x00\x02a\x00\xff\xff\xff\x7f\x00".to_vec(),
        b"\x0c\x00\x00\x00\x03a\x00\x01\x00\x00\x00\x00".to_vec(),
        b"\x0c\x00\x00\x00\x05a\x00\xff\xff\xff\xff\x00".to_vec(),
        b"HTTP/1.1 200\r\n\r\n".to_vec(),
        b"HTTP/1.1 99999999999999999999 x\r\n\r\n".to_vec(),
        b"E\xff\xff\xff\xff".to_vec(),
        b"E\x00\x00\x00\x06S\x00".to_vec(),
        "0: \u{e9}\u{e9}\u{e9}\u{e9}:\u{e9}\u{e9} 0A"
            .as_bytes()
            .to_vec(),
        b"1 (x)".to_vec(),
        b")))".to_vec(),
        b"0000: 00000002 00000000 00010000 0001 01 123".to_vec(),
    ];
    for c in cases {
        all_parsers(&c);
    }
}
