//! A ZFS pool's vdev tree as the agent recorded it (`zpool status`, normalised by
//! `unity-collect`), rendered as nested lists. Read from the pool's detail JSON without
//! depending on the collector crate: the record is data, and fields it lacks are shown as
//! absent rather than refused (an older or newer agent's record still renders).

use maud::{Markup, html};
use serde_json::Value;

/// The sections of a pool's config, as `zpool status` prints them.
const SECTIONS: &[(&str, &str)] = &[
    ("logs", "logs"),
    ("cache", "cache"),
    ("spares", "spares"),
    ("special", "special"),
    ("dedup", "dedup"),
];

fn word(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.to_ascii_uppercase(),
        // `{"Other": "name"}` for kinds the parser does not know.
        Some(Value::Object(map)) => map
            .values()
            .next()
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
        _ => "?".into(),
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "ONLINE" | "AVAIL" | "INUSE" => "ok",
        "DEGRADED" | "OFFLINE" => "warning",
        "FAULTED" | "UNAVAIL" | "REMOVED" | "SUSPENDED" => "critical",
        _ => "unknown",
    }
}

fn vdev(node: &Value, depth: usize) -> Markup {
    let name = node.get("name").and_then(Value::as_str).unwrap_or("?");
    let state = word(node.get("state"));
    let counters = node.get("counters").filter(|c| c.is_object());
    let count = |key: &str| {
        counters
            .and_then(|c| c.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let errors = count("read") + count("write") + count("checksum");
    let children: &[Value] = node
        .get("children")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    html! {
        li {
            code { (name) } " "
            span class={"badge " (state_class(&state))} { (state) }
            @if counters.is_some() {
                " "
                span class=(if errors > 0 { "critical" } else { "muted" }) {
                    "read " (count("read")) ", write " (count("write")) ", checksum " (count("checksum"))
                }
            }
            @if let Some(note) = node.get("note").and_then(Value::as_str) { " " em { (note) } }
            @if let Some(was) = node.get("was").and_then(Value::as_str) { " " span.muted { "(was " (was) ")" } }
            @if !children.is_empty() && depth < 16 {
                ul { @for child in children { (vdev(child, depth + 1)) } }
            }
        }
    }
}

/// The tree of `status` (the pool record of the detail JSON), or a note that there is none.
pub fn tree(status: Option<&Value>) -> Markup {
    let Some(status) = status.filter(|s| s.is_object()) else {
        return html! { p.muted { "The agent sent no vdev tree for this pool." } };
    };
    html! {
        @if let Some(root) = status.get("root") {
            ul.tree { (vdev(root, 0)) }
        }
        @for (key, title) in SECTIONS {
            @if let Some(list) = status.get(*key).and_then(Value::as_array).filter(|l| !l.is_empty()) {
                h3 { (title) }
                ul.tree { @for v in list { (vdev(v, 0)) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_degraded_mirror_shows_its_faulted_disk_and_counts() {
        let status = serde_json::json!({
            "root": { "name": "tank", "kind": "Root", "state": "Degraded", "counters": { "read": 0, "write": 0, "checksum": 0 },
                "children": [ { "name": "mirror-0", "kind": "Mirror", "state": "Degraded", "counters": null, "children": [
                    { "name": "sda", "kind": "Disk", "state": "Online", "counters": { "read": 0, "write": 0, "checksum": 0 }, "children": [] },
                    { "name": "1234567", "kind": "Disk", "state": "Unavail", "counters": { "read": 3, "write": 0, "checksum": 9 },
                      "note": "cannot open", "was": "/dev/sdb1", "children": [] } ] } ] },
            "spares": [ { "name": "sdc", "kind": "Disk", "state": "Avail", "counters": null, "children": [] } ],
            "logs": []
        });
        let html = tree(Some(&status)).into_string();
        assert!(
            html.contains("<code>mirror-0</code> <span class=\"badge warning\">DEGRADED</span>"),
            "{html}"
        );
        assert!(
            html.contains("badge critical\">UNAVAIL")
                && html.contains("read 3, write 0, checksum 9"),
            "{html}"
        );
        assert!(
            html.contains("<em>cannot open</em>") && html.contains("(was /dev/sdb1)"),
            "{html}"
        );
        assert!(
            html.contains("<h3>spares</h3>") && !html.contains("<h3>logs</h3>"),
            "{html}"
        );
    }

    #[test]
    fn odd_records_render_without_failing() {
        assert!(tree(None).into_string().contains("no vdev tree"));
        assert!(
            tree(Some(&Value::String("x".into())))
                .into_string()
                .contains("no vdev tree")
        );
        let odd = serde_json::json!({ "root": { "name": "<pool>", "state": { "Other": "WEIRD" }, "children": "not a list" } });
        let html = tree(Some(&odd)).into_string();
        assert!(
            html.contains("&lt;pool&gt;") && html.contains("WEIRD"),
            "{html}"
        );
    }
}
