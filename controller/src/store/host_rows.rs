//! What every module that writes a host's rows needs, whatever the table: the host and
//! tenant being written for, and the few conversions that keep an agent's values storable
//! (counters PostgreSQL's integers cannot hold, NUL characters `text` and `jsonb` refuse).

use uuid::Uuid;

/// The host a report is being applied for, and its tenant (needed for inserts: the
/// row-level-security `WITH CHECK` compares it with the transaction's tenant).
#[derive(Debug, Clone, Copy)]
pub struct HostScope {
    pub tenant_id: Uuid,
    pub host_id: Uuid,
}

/// An object that just went missing from its host: its id and how to name it in an alert.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Vanished {
    pub id: Uuid,
    pub name: String,
}

/// Agent-supplied counters are `u64`; PostgreSQL has `bigint`. Anything beyond `i64::MAX` is
/// nonsense from a tool and is clamped rather than refusing the report.
pub(crate) fn to_i64(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

pub(crate) fn to_i32(value: Option<u32>) -> Option<i32> {
    value.map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

/// Parses `detail_json` for a `jsonb` column. Text that is not JSON is kept as a JSON string
/// (returned with `false`) rather than losing the report; NUL characters, which PostgreSQL
/// cannot store in `jsonb`, are replaced by U+FFFD.
pub fn detail_value(raw: &str) -> (serde_json::Value, bool) {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(mut value) => {
            strip_nul_in_json(&mut value);
            (value, true)
        }
        Err(_) => (serde_json::Value::String(strip_nul(raw)), false),
    }
}

/// PostgreSQL `text` cannot hold NUL; a tool printing one must not make a report unstorable.
pub fn strip_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn strip_nul_in_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => *s = strip_nul(s),
        Value::Array(items) => items.iter_mut().for_each(strip_nul_in_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    strip_nul_in_json(&mut v);
                    map.insert(strip_nul(&k), v);
                }
            } else {
                map.values_mut().for_each(strip_nul_in_json);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_keeps_json_and_wraps_anything_else() {
        let (value, ok) = detail_value(r#"{"a":[1,"x\u0000y"],"k\u0000":2}"#);
        assert!(ok);
        assert_eq!(
            value,
            serde_json::json!({"a": [1, "x\u{FFFD}y"], "k\u{FFFD}": 2})
        );
        let (value, ok) = detail_value("not json\0");
        assert!(!ok);
        assert_eq!(value, serde_json::json!("not json\u{FFFD}"));
    }
}
