#!/usr/bin/env python3
"""Renders the chart with the real Helm v4 SDK (PyPI helm-python-sdk: Helm's Go library, no
helm binary), lints it strictly, and validates every rendered object against the Kubernetes
JSON schemas of the oldest and newest supported versions (PyPI kubernetes-validate, strict:
unknown fields are errors). Then checks what the chart promises (docs/install.md).

What is NOT checked here: the CloudNativePG `Cluster` against its CRD (kubernetes-validate
carries only the core API; its fields are checked by hand below), and anything a real
cluster does (scheduling, probes actually passing, the UDP load balancer).

    packaging/helm/check.py            # exits non-zero with the reason on any failure
"""

import os
import sys

import helm_python as helm
import kubernetes_validate
import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unity-controller")
KUBE_VERSIONS = ["1.27.0", "1.37.0"]
BASE = {"keys": {"existingSecret": "unity-keys"}, "database": {"existingSecret": "unity-db"}}
CNPG = {
    "keys": {"existingSecret": "unity-keys"},
    "replicaCount": 3,
    "database": {"cloudnativepg": {"enabled": True}},
    "ingress": {"enabled": True, "className": "nginx", "tlsSecret": "unity-tls"},
    "quicService": {"type": "NodePort"},
}

checked = []


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def render(values):
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name="fleet", namespace="unity", is_install=True)
    objects = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((path, doc))
    return objects


def by_kind(objects, kind):
    return [doc for _, doc in objects if doc["kind"] == kind]


def validate(objects, label):
    for path, doc in objects:
        if doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                fail(f"{label}: {path} ({doc['kind']}) is not a valid {version} object: {error.message}")
        checked.append(f"{label}: {doc['kind']} {doc['metadata']['name']} valid for {', '.join(KUBE_VERSIONS)}")


def check_deployment(objects, label, replicas, secret_key):
    [deployment] = by_kind(objects, "Deployment")
    spec = deployment["spec"]
    if spec["replicas"] != replicas:
        fail(f"{label}: {spec['replicas']} replicas, not {replicas}")
    pod = spec["template"]["spec"]
    context = pod["securityContext"]
    if not (context.get("runAsNonRoot") and context.get("runAsUser") == 10001):
        fail(f"{label}: the pod may run as root: {context}")
    [container] = pod["containers"]
    sc = container["securityContext"]
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"]):
        fail(f"{label}: the container is not read-only / unprivileged: {sc}")
    if container["livenessProbe"]["httpGet"]["path"] != "/healthz":
        fail(f"{label}: liveness is not /healthz")
    if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
        fail(f"{label}: readiness is not /readyz")
    if not container.get("resources", {}).get("requests"):
        fail(f"{label}: no resource requests")
    ports = {p["name"]: p["protocol"] for p in container["ports"]}
    if ports != {"quic": "UDP", "api": "TCP"}:
        fail(f"{label}: ports {ports}")
    env = {e["name"]: e for e in container["env"]}
    ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    if (ref["name"], ref["key"]) != secret_key:
        fail(f"{label}: DATABASE_URL from {ref}, not {secret_key}")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in ["ca/ca.key.pem", "ca/ca.cert.pem", "job-signing.pk8", "notify.key"]:
        mount = mounts.get(f"/var/lib/unity-controller/{path}")
        if not mount or not mount.get("readOnly"):
            fail(f"{label}: {path} is not mounted read-only from the keys Secret")
    volumes = {v["name"]: v for v in pod["volumes"]}
    if volumes["keys"]["secret"]["secretName"] != "unity-keys":
        fail(f"{label}: keys from {volumes['keys']}")
    checked.append(f"{label}: Deployment non-root, read-only, no capabilities, probes, requests, keys from the Secret")


def check_services(objects, label):
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    quic = services["fleet-unity-controller-quic"]["spec"]["ports"][0]
    if quic["protocol"] != "UDP":
        fail(f"{label}: the QUIC service is {quic['protocol']}")
    api = services["fleet-unity-controller-api"]["spec"]["ports"][0]
    if api["protocol"] != "TCP":
        fail(f"{label}: the API service is {api['protocol']}")
    if not by_kind(objects, "PodDisruptionBudget"):
        fail(f"{label}: no PodDisruptionBudget")
    if by_kind(objects, "Secret"):
        fail(f"{label}: the chart renders a Secret; keys must never be generated by an upgrade")
    checked.append(f"{label}: UDP service for QUIC, TCP for the API, a PodDisruptionBudget, no Secret rendered")


def main():
    report = helm.lint(CHART, BASE, strict=True)
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    if problems or report.get("errors"):
        fail(f"helm lint: {problems} {report.get('errors')}")
    checked.append("helm lint --strict: clean")

    external = render(BASE)
    validate(external, "external database")
    check_deployment(external, "external database", 2, ("unity-db", "url"))
    check_services(external, "external database")
    if by_kind(external, "Ingress") or by_kind(external, "Cluster"):
        fail("external database: Ingress or Cluster rendered though not asked for")

    cnpg = render(CNPG)
    validate(cnpg, "CloudNativePG")
    check_deployment(cnpg, "CloudNativePG", 3, ("fleet-unity-controller-db-app", "uri"))
    check_services(cnpg, "CloudNativePG")
    [cluster] = by_kind(cnpg, "Cluster")
    spec = cluster["spec"]
    if spec["instances"] != 3 or spec["bootstrap"]["initdb"]["owner"] != "unity":
        fail(f"CloudNativePG: Cluster spec {spec}")
    if cluster["metadata"]["annotations"].get("helm.sh/resource-policy") != "keep":
        fail("CloudNativePG: the Cluster would be deleted with the release")
    [ingress] = by_kind(cnpg, "Ingress")
    if ingress["spec"]["tls"][0]["secretName"] != "unity-tls":
        fail("CloudNativePG: Ingress without its TLS secret")
    checked.append("CloudNativePG: Cluster (3 instances, owner unity, kept on uninstall; fields by hand), Ingress with TLS")

    for values, expected in [
        ({"database": {"existingSecret": "db"}}, "keys.existingSecret is required"),
        ({"keys": {"existingSecret": "k"}}, "a database is required"),
    ]:
        try:
            render(values)
        except helm.HelmError as error:
            if expected not in str(error):
                fail(f"rendering without {expected!r} failed for another reason: {error}")
        else:
            fail(f"rendering succeeded without {expected!r}")
    checked.append("missing keys Secret or database: refused with the reason")

    for line in checked:
        print(f"ok: {line}")


if __name__ == "__main__":
    main()
