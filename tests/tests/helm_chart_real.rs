//! The Helm chart (`packaging/helm/`), rendered by Helm's own library and validated against
//! the Kubernetes schemas by `packaging/helm/check.py` (which says what it does and does not
//! check). The tools come from `.ci/setup-packaging.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use unity_e2e::engines::present;

#[test]
fn the_chart_renders_lints_and_validates_against_kubernetes_schemas() {
    let Some(python) = present(
        "the Helm check's Python (.ci/setup-packaging.sh makes /opt/unity-ci/helm)",
        &["/opt/unity-ci/helm/bin/python"],
    ) else {
        return;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::process::Command::new(python)
        .arg(workspace.join("packaging/helm/check.py"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    println!("{text}");
    // The checks ran (not an empty success).
    assert!(text.contains("ok: helm lint --strict: clean"), "{text}");
    assert!(
        text.matches("valid for 1.27.0, 1.37.0").count() >= 9,
        "{text}"
    );
}
