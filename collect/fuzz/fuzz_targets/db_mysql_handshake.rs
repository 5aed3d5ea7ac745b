//! MySQL/MariaDB first packet: any bytes give a parse result, never a panic; every prefix of
//! a complete packet is `Incomplete` or a decision, never out-of-bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::databases::wire::{self, mysql};

fuzz_target!(|data: &[u8]| {
    if let wire::Parse::Done(mysql::FirstPacket::Greeting(g)) = mysql::parse_first_packet(data) {
        let _ = unity_collect::databases::identify::normalise_mysql_version(&g.server_version);
    }
});
