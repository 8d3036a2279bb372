"""The container image and its deployment files agree with docs/container.md.

Without a container these check the files: the Dockerfile's port, listening
address, health check and entrypoint; that the Podman flags, compose.yaml and
the Kubernetes manifests grant exactly the privileges the document lists; that
the probes' paths are the service's. scripts/test-container.sh runs them again
with PYEXEC_TEST_URL (the running container's address) and
PYEXEC_TEST_CONTAINER (its name): then the probes answer, and `pyexec check`
inside reports the sandbox whole.
"""
import json
import os
import pathlib
import re
import shlex
import subprocess
import urllib.error
import urllib.request

import pytest

yaml = pytest.importorskip("yaml")

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "container.md"
URL = os.environ.get("PYEXEC_TEST_URL") or None
CONTAINER = os.environ.get("PYEXEC_TEST_CONTAINER") or None
MODE = os.environ.get("CONTAINER_MODE", "root")

ROOT_CAPS = {"SYS_ADMIN", "SETUID", "SETGID", "SETPCAP", "KILL", "DAC_OVERRIDE", "CHOWN"}


def fenced_blocks(lang):
    """The contents of docs/container.md's fenced blocks whose info string is lang."""
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(), re.S | re.M)


def podman_run_flags(block):
    """The options of a documented `podman run` command that set privileges
    (all but its name), as a list."""
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:2] == ["podman", "run"], block
    return [w for w in words if w.startswith("--") and w != "--name"]


def documented_podman_flags():
    runs = [b for b in fenced_blocks("sh") if b.startswith("podman run")]
    assert len(runs) == 2, "docs/container.md should have two `podman run` commands: root and unprivileged"
    return podman_run_flags(runs[0]), podman_run_flags(runs[1])


def script_flags(name):
    """A bash array of scripts/test-container.sh (ROOT_FLAGS, UNPRIVILEGED_FLAGS)."""
    text = (ROOT / "scripts" / "test-container.sh").read_text()
    m = re.search(rf"^{name}=\(\n(.*?)^\)", text, re.S | re.M)
    assert m, f"no {name} in scripts/test-container.sh"
    return shlex.split(m.group(1))


def caps_of(flags):
    add = [f.split("=", 1)[1] for f in flags if f.startswith("--cap-add=")]
    return {c for a in add for c in a.split(",")}


def dockerfile_final_stage():
    text = (ROOT / "Dockerfile").read_text()
    return re.sub(r"^#.*\n", "", text[text.rindex("\nFROM "):], flags=re.M)


def manifests():
    docs = {}
    for f in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            docs[d["kind"]] = d
    return docs


def container_spec():
    [c] = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def api_routes():
    """The paths the service routes, from its routing table (src/service/http.c)."""
    return set(re.findall(r'\{ "(/[a-z/]*)", ROUTE_[A-Z_]+ \}', (ROOT / "src" / "service" / "http.c").read_text()))


# ---- the image ---------------------------------------------------------------


def test_image_listens_on_every_interface_on_3002():
    final = dockerfile_final_stage()
    assert re.search(r"^ENV .*\bBIND=0\.0\.0\.0\b", final, re.M), "the image must set BIND=0.0.0.0"
    assert re.search(r"^ENV .*\bPORT=3002\b", final, re.M)
    assert re.search(r"^EXPOSE 3002$", final, re.M)


def test_image_health_check_is_readiness():
    final = dockerfile_final_stage()
    m = re.search(r"^HEALTHCHECK .*?CMD (.*)$", final, re.S | re.M)
    assert m and "/health/ready" in m.group(1), "HEALTHCHECK must probe /health/ready"
    assert not re.search(r"\bcurl\b", final), "the image has no curl: the health check uses its Python"


def test_entrypoint_execs_pyexec_under_tini():
    """tini is PID 1 (it reaps orphans); the entrypoint execs pyexec as its child."""
    final = dockerfile_final_stage()
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/libexec/pyexec/container-entrypoint"]' in final
    assert 'CMD ["serve"]' in final
    script = (ROOT / "scripts" / "container-entrypoint.sh").read_text()
    assert script.rstrip().splitlines()[-1] == 'exec /usr/local/bin/pyexec "$@"'


def test_runtime_stage_has_no_build_tools():
    final = dockerfile_final_stage()
    for pkg in ("gcc", "meson", "ninja-build", "-dev ", "libseccomp"):
        assert pkg not in final, f"the runtime stage installs {pkg}"
    # libcurl4 (the callbacks' HTTP) is a library; the curl command is not there.
    assert not re.search(r"\bcurl\b", final), "the runtime stage installs curl"
    assert "ARG BLENDER=false" in final


# ---- the privileges: one list, everywhere --------------------------------------


def test_documented_podman_flags_are_the_tested_ones():
    root, unpriv = documented_podman_flags()
    assert root == script_flags("ROOT_FLAGS")
    expected = [f.replace("SECCOMP_USERNS", "pyexec-userns.json") for f in script_flags("UNPRIVILEGED_FLAGS")]
    assert unpriv == expected


def test_root_mode_grants_no_more_than_the_table():
    root, unpriv = documented_podman_flags()
    assert "--cap-drop=ALL" in root and caps_of(root) == ROOT_CAPS
    assert "--privileged" not in root + unpriv
    assert "--cap-drop=ALL" in unpriv and caps_of(unpriv) == set()
    table = DOC.read_text().split("## Running it as root in the container", 1)[1].split("### cgroups", 1)[0]
    listed = set(re.findall(r"^\| `CAP_([A-Z_]+)`(?:, `CAP_([A-Z_]+)`)?", table, re.M))
    assert {c for pair in listed for c in pair if c} == ROOT_CAPS, "the privilege table lists other capabilities"


def test_documented_docker_flags_are_podmans():
    [block] = [b for b in fenced_blocks("console") if b.startswith("docker run")]
    words = shlex.split(block.replace("\\\n", " "))
    caps = {w.split("=", 1)[1] for w in words if w.startswith("--cap-add=")}
    assert caps == ROOT_CAPS and "--cap-drop=ALL" in words
    root, _ = documented_podman_flags()
    same = [f for f in root if not f.startswith("--cap-add=")]
    assert set(same) <= set(words), set(same) - set(words)
    assert "--security-opt=apparmor=unconfined" in words and "--privileged" not in words


def test_compose_grants_the_documented_privileges():
    svc = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["pyexec"]
    assert svc["ports"] == ["3002:3002"]
    assert svc["cap_drop"] == ["ALL"]
    assert set(svc["cap_add"]) == ROOT_CAPS
    assert svc["cgroup"] == "private"
    assert "no-new-privileges" in svc["security_opt"]
    assert svc["read_only"] is True
    assert "/run/pyexec:/run/pyexec" in svc["volumes"]
    assert not svc.get("privileged")


def test_kubernetes_security_context_is_the_documented_one():
    [block] = [b for b in fenced_blocks("yaml") if b.startswith("securityContext:")]
    documented = yaml.safe_load(block)["securityContext"]
    sc = container_spec()["securityContext"]
    assert sc == documented
    assert set(sc["capabilities"]["add"]) == ROOT_CAPS and sc["capabilities"]["drop"] == ["ALL"]
    assert not sc.get("privileged")


def test_kubernetes_probes_and_ports():
    c = container_spec()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 3002}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["BIND"] == "0.0.0.0" and env["PORT"] == "3002"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    routes = api_routes()
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in routes, f"{probe}: the service has no such path"
        assert c[probe]["httpGet"]["port"] in ports
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
    svc = manifests()["Service"]
    [port] = svc["spec"]["ports"]
    assert port["port"] == 3002 and port["targetPort"] == "http"
    pod_labels = manifests()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_kubernetes_volumes_are_mounted():
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    names = {v["name"] for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container_spec()["volumeMounts"]}
    assert set(mounts.values()) == names
    assert "/run/pyexec" in mounts


# ---- the running container -------------------------------------------------------

live = pytest.mark.skipif(not URL, reason="no running container (PYEXEC_TEST_URL)")


@live
@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_probes_answer(path):
    with urllib.request.urlopen(URL + path, timeout=10) as r:
        assert r.status == 200
        assert json.load(r)["status"] in ("alive", "ready")


@live
def test_check_in_the_container_reports_the_sandbox_whole():
    p = subprocess.run(["podman", "exec", CONTAINER, "pyexec", "check", "--json"], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stdout.decode()[-2000:] + p.stderr.decode()[-2000:]
    info = json.loads(p.stdout)
    assert info["seccomp"]["available"]
    limits = {lim["name"]: lim["enforcedBy"] for lim in info["limits"]}
    if MODE == "root":
        assert info["privileged"] is True and info["userNamespaces"]["usedForRuns"] is False
        assert info["cgroup"]["version"] in ("v1", "v2"), info["cgroup"]
        for name in ("memory", "pids", "cpu-time"):
            assert "cgroup" in limits[name], f"{name}: {limits[name]}"
    else:
        assert info["privileged"] is False and info["userNamespaces"]["usedForRuns"] is True


@live
def test_the_service_is_tinis_child():
    p = subprocess.run(["podman", "exec", CONTAINER, "sh", "-c", "cat /proc/1/comm; cat /proc/1/task/1/children"],
                       capture_output=True, timeout=60)
    comm, children = p.stdout.decode().splitlines()
    assert comm == "tini"
    p = subprocess.run(["podman", "exec", CONTAINER, "cat", f"/proc/{children.split()[0]}/comm"],
                       capture_output=True, timeout=60)
    assert p.stdout.decode().strip() == "pyexec"


@live
@pytest.mark.skipif(not os.environ.get("PYEXEC_TEST_SRV"), reason="no jobs directory shared with the container")
def test_compose_job_publishes_into_the_shared_directory():
    """The compose job through the container's service, with the documented
    privileges: its output lands in the host directory mounted at /srv/pyexec,
    owned by that directory's owner."""
    from PIL import Image

    srv = pathlib.Path(os.environ["PYEXEC_TEST_SRV"])
    Image.new("RGB", (300, 350), "white").save(srv / "templates" / "ctr-shirt.png")
    Image.new("RGBA", (100, 100), (200, 30, 30, 255)).save(srv / "uploads" / "ctr-logo.png")
    out = srv / "composed" / "ctr-order.png"
    body = json.dumps({"params": {"template": "/srv/pyexec/templates/ctr-shirt.png",
                                  "design": "/srv/pyexec/uploads/ctr-logo.png", "preset": "chest-large",
                                  "output": "/srv/pyexec/composed/ctr-order.png"}}).encode()
    req = urllib.request.Request(URL + "/api/jobs/compose", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        res = json.load(r)
    assert res["status"] == "ok", res
    assert out.is_file(), f"the job said ok but {out} is not on the host"
    st, parent = out.stat(), out.parent.stat()
    assert (st.st_uid, st.st_gid) == (parent.st_uid, parent.st_gid)
    assert Image.open(out).size == (300, 350)
