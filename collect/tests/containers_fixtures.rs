//! The container mapping over real Docker Engine API responses
//! (`fixtures/containers/docker-api/`, copied from `../shared/fixtures/docker-api/` with their
//! MANIFEST rows). Every file either maps or fails with a precise error; plus adversarial
//! inputs that must be refused with an error naming the field, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unity_collect::containers::map::{
    MapError, parse_container_inspect, parse_container_list, parse_engine, parse_image_inspect,
    parse_image_list,
};
use unity_collect::containers::update;
use unity_collect::containers::{
    ContainerState, EngineKind, HealthStatus, UnknownReason, UpdateStatus,
};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/fixtures/containers/docker-api/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_fixture_maps_or_fails_precisely() {
    let dir = format!(
        "{}/fixtures/containers/docker-api",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = fixture(&name);
        let ok = if name.starts_with("container-inspect") {
            parse_container_inspect(&text).is_ok()
        } else if name.starts_with("containers-list") {
            parse_container_list(&text).is_ok()
        } else if name.starts_with("image-inspect") {
            parse_image_inspect(&text).is_ok()
        } else if name.starts_with("info-") {
            parse_engine("unix:///x", &text, None).is_ok()
        } else if name.starts_with("podman-libpod-images-list") {
            parse_image_list(&text).is_ok()
        } else {
            panic!("fixture {name} has no mapping assigned in this test");
        };
        assert!(ok, "{name} did not map");
        seen += 1;
    }
    assert_eq!(seen, 11);
}

#[test]
fn running_portainer_ports_mounts_networks() {
    let c = parse_container_inspect(&fixture("container-inspect-running-portainer.json")).unwrap();
    assert_eq!(c.name, "portainer");
    assert_eq!(c.image_reference, "portainer/portainer:latest");
    assert_eq!(
        c.image_id.as_deref(),
        Some("sha256:19d07168491a3f9e2798a9bed96544e34d57ddc4757a4ac5bb199dea896c87fd")
    );
    assert_eq!(c.state, ContainerState::Running);
    assert_eq!(c.health, HealthStatus::None);
    assert_eq!(c.exit_code, Some(0));
    assert_eq!(
        c.started_at.as_deref(),
        Some("2019-04-13T22:38:24.498745809Z")
    );
    assert_eq!(c.ports.len(), 1);
    assert_eq!(c.ports[0].container_port, 9000);
    assert_eq!(c.ports[0].host_port, Some(9000));
    assert_eq!(c.ports[0].host_ip.as_deref(), Some("0.0.0.0"));
    let kinds: Vec<(&str, &str)> = c
        .mounts
        .iter()
        .map(|m| (m.kind.as_str(), m.destination.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("volume", "/data"), ("bind", "/var/run/docker.sock")]
    );
    assert_eq!(c.mounts[0].name.as_deref(), Some("portainer_data"));
    assert_eq!(c.networks[0].name, "bridge");
    assert_eq!(c.networks[0].ip_address.as_deref(), Some("172.17.0.2"));
    assert!(c.compose.is_none());
    // No repo digests in an inspect: they come from the image list.
    assert!(c.repo_digests.is_empty());
    assert_eq!(
        update::plan(&c.image_reference, &c.repo_digests),
        update::CheckPlan::Decided(UpdateStatus::Unknown {
            reason: UnknownReason::NoRepoDigest
        })
    );
}

#[test]
fn exited_and_restarting_exit_codes() {
    for name in [
        "container-inspect-exited.json",
        "container-inspect-restarting-exited-code1.json",
    ] {
        let c = parse_container_inspect(&fixture(name)).unwrap();
        assert_eq!(c.state, ContainerState::Exited, "{name}");
        assert_eq!(c.exit_code, Some(1), "{name}");
        assert_eq!(c.restart_count, 0, "{name}");
    }
}

#[test]
fn compose_labels_recognised_and_shared_netns_has_no_networks() {
    let c =
        parse_container_inspect(&fixture("container-inspect-network-mode-container.json")).unwrap();
    let compose = c.compose.unwrap();
    assert_eq!(compose.project, "wt-contnet");
    assert_eq!(compose.service.as_deref(), Some("consumer"));
    assert_eq!(
        c.labels
            .get("com.docker.compose.version")
            .map(String::as_str),
        Some("2.19.1")
    );
    assert!(c.networks.is_empty(), "{:?}", c.networks);
}

#[test]
fn windows_container_maps() {
    let c = parse_container_inspect(&fixture("container-inspect-windows-lcow-sorted-keys.json"))
        .unwrap();
    assert_eq!(c.name, "cranky_clarke");
    assert_eq!(c.image_reference, "microsoft/nanoserver");
    assert_eq!(c.state, ContainerState::Running);
    assert_eq!(c.networks[0].name, "nat");
}

#[test]
fn container_list_rows() {
    let rows =
        parse_container_list(&fixture("containers-list-all-exited-and-running.json")).unwrap();
    let states: Vec<_> = rows.iter().map(|r| r.state.clone()).collect();
    assert_eq!(
        states,
        [
            ContainerState::Exited,
            ContainerState::Running,
            ContainerState::Running,
            ContainerState::Restarting
        ]
    );
    assert_eq!(rows[0].name.as_deref(), Some("watchtower-stopped"));
}

#[test]
fn images_inspect_and_podman_list() {
    let i = parse_image_inspect(&fixture("image-inspect-watchtower.json")).unwrap();
    assert_eq!(
        i.id,
        "sha256:4dbc5f9c07028a985e14d1393e849ea07f68804c4293050d5a641b138db72daa"
    );
    assert_eq!(i.tags, ["containrrr/watchtower:latest"]);
    assert!(i.repo_digests.is_empty());
    assert_eq!(i.size_bytes, Some(13_005_733));
    let w = parse_image_inspect(&fixture("image-inspect-windows-nanoserver.json")).unwrap();
    assert_eq!(
        w.created.as_deref(),
        Some("2016-09-22T02:39:30.9154862-07:00")
    );
    // Podman's libpod list is not the Docker API, but carries the same image-summary fields
    // (plus extras, ignored): it maps, and its repo digests drive the update comparison.
    let list = parse_image_list(&fixture("podman-libpod-images-list-NOT-docker.json")).unwrap();
    let chef = &list[0];
    assert_eq!(chef.tags, ["ghcr.io/gchq/cyberchef:latest"]);
    assert_eq!(chef.repo_digests.len(), 2);
    assert_eq!(chef.created.as_deref(), Some("2026-02-12T10:37:25Z"));
    let r = unity_collect::containers::ImageReference::parse(&chef.tags[0]).unwrap();
    assert_eq!(
        update::compare(
            &r,
            &chef.repo_digests,
            "sha256:7c743898296b9b1de2cc7d55779980dcb665a1a6fc32fa45704752132041ef90"
        ),
        UpdateStatus::UpToDate
    );
}

#[test]
fn engine_info_from_real_info_and_podman_version() {
    let e = parse_engine(
        "unix:///x",
        &fixture("info-linux-devicemapper-api122.json"),
        None,
    )
    .unwrap();
    assert_eq!(e.kind, EngineKind::Docker);
    assert_eq!(e.version.as_deref(), Some("1.10.2"));
    assert_eq!(e.storage_driver.as_deref(), Some("devicemapper"));
    assert!(!e.rootless);
    let w = parse_engine("unix:///x", &fixture("info-windows-lcow.json"), None).unwrap();
    assert_eq!(w.os_type.as_deref(), Some("windows"));
    // Podman names itself in /version's Components; rootless engines say so in SecurityOptions.
    let e = parse_engine(
        "unix:///p",
        r#"{"Driver":"overlay","SecurityOptions":["name=seccomp,profile=default","name=rootless"]}"#,
        Some(r#"{"Version":"4.3.1","ApiVersion":"1.41","Components":[{"Name":"Podman Engine","Version":"4.3.1"}]}"#),
    )
    .unwrap();
    assert_eq!(e.kind, EngineKind::Podman);
    assert!(e.rootless);
    assert_eq!(e.api_version.as_deref(), Some("1.41"));
}

#[test]
fn adversarial_inputs_are_precise_errors() {
    let err =
        |r: Result<unity_collect::containers::Container, MapError>| r.unwrap_err().to_string();
    assert_eq!(
        err(parse_container_inspect("{}")),
        "container inspect has no `Id`"
    );
    assert_eq!(
        err(parse_container_inspect(r#"{"Id":"a","Name":"/n"}"#)),
        "container inspect has no `Config`"
    );
    assert_eq!(
        err(parse_container_inspect(
            r#"{"Id":"a","Name":"/n","Config":{}}"#
        )),
        "container inspect has no `Config.Image`"
    );
    assert!(
        err(parse_container_inspect(
            r#"{"Id":"a","Name":"/n","Config":{"Image":"x"},"RestartCount":-1}"#
        ))
        .contains("RestartCount")
    );
    assert!(err(parse_container_inspect(
        r#"{"Id":"a","Name":"/n","Config":{"Image":"x"},"NetworkSettings":{"Ports":{"http/tcp":null}}}"#
    ))
    .contains("NetworkSettings.Ports"));
    assert!(err(parse_container_inspect(
        r#"{"Id":"a","Name":"/n","Config":{"Image":"x"},"NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"","HostPort":"99999"}]}}}"#
    ))
    .contains("HostPort"));
    assert!(
        err(parse_container_inspect(
            r#"{"Id":"a","Name":"/n","Config":{"Image":"x"},"State":{"Status":"zombie"}}"#
        ))
        .starts_with("container inspect is not the expected engine API JSON")
    );
    assert!(matches!(
        parse_container_inspect("not json"),
        Err(MapError::Json { .. })
    ));
    assert!(matches!(
        parse_image_list("[{}]"),
        Err(MapError::Json { .. })
    ));
    assert!(matches!(
        parse_container_list("{}"),
        Err(MapError::Json { .. })
    ));
    assert!(matches!(
        parse_container_list("[{}]"),
        Err(MapError::Missing { field: "Id", .. })
    ));
    // Truncations of every fixture never panic.
    let dir = format!(
        "{}/fixtures/containers/docker-api",
        env!("CARGO_MANIFEST_DIR")
    );
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for cut in (0..text.len()).step_by(97) {
            if let Some(t) = text.get(..cut) {
                let _ = parse_container_inspect(t);
                let _ = parse_container_list(t);
                let _ = parse_image_inspect(t);
                let _ = parse_image_list(t);
                let _ = parse_engine("x", t, Some(t));
            }
        }
    }
}
