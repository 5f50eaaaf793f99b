#!/usr/bin/env python3
"""The image's config, checked against what the Kubernetes manifests expect
of it (make image runs this on every archive it builds).

    tools/check_image.py target/oci/kf-api-amd64.tar [--manifests k8s/base]

Checked: the user is the pods' runAsUser:runAsGroup; the entrypoint is the
gateway; the ports the image exposes are the container's named ports, and
KF_LISTEN / KF_ADMIN_LISTEN listen on them; the image's healthcheck asks the
startup probe's path on the http port; the emulator default agrees; the
image's architecture is the one asked for; and /opt/kf-api holds the
gateway, the template and a bootstrap for every function crate.
"""

import argparse
import io
import json
import pathlib
import sys
import tarfile

import yaml


def image_config(archive):
    with tarfile.open(archive) as oci:
        def blob(digest):
            return oci.extractfile("blobs/" + digest.replace(":", "/")).read()
        index = json.loads(oci.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        files = set()
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as t:
                files.update("/" + m.name.lstrip("./") for m in t.getmembers() if m.isfile())
    return config, files


def dockerfile_healthcheck(path="Dockerfile"):
    lines = pathlib.Path(path).read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("HEALTHCHECK"):
            return " ".join(lines[i:i + 2])
    return ""


def container(manifests):
    deployment = yaml.safe_load((manifests / "deployment.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def problems(config, files, spec, c, arch, functions):
    out = []
    cfg = config.get("config") or config.get("Config") or {}
    env = dict(e.split("=", 1) for e in cfg.get("Env", []))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    pod = spec["securityContext"]
    want_user = f"{pod['runAsUser']}:{pod['runAsGroup']}"
    if cfg.get("User") != want_user:
        out.append(f"user {cfg.get('User')!r}, the pods run as {want_user}")
    if cfg.get("Entrypoint") != ["/opt/kf-api/gateway"]:
        out.append(f"entrypoint {cfg.get('Entrypoint')}")
    exposed = {int(p.split("/")[0]) for p in cfg.get("ExposedPorts", {})}
    if exposed != set(ports.values()):
        out.append(f"exposes {sorted(exposed)}, the container's ports are {ports}")
    for var, name in [("KF_LISTEN", "http"), ("KF_ADMIN_LISTEN", "admin"), ("KF_PROBE_LISTEN", "probes")]:
        if not env.get(var, "").endswith(f":{ports[name]}"):
            out.append(f"{var}={env.get(var)!r} is not port {name} ({ports[name]})")
    manifest_env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if env.get("KF_EMULATOR") != manifest_env.get("KF_EMULATOR"):
        out.append(f"KF_EMULATOR {env.get('KF_EMULATOR')!r}, the manifest sets {manifest_env.get('KF_EMULATOR')!r}")
    # An OCI image config has no healthcheck (Docker's format does, and the
    # OCI archive drops it), so the Dockerfile's HEALTHCHECK is read instead.
    health = " ".join(cfg.get("Healthcheck", {}).get("Test", [])) or dockerfile_healthcheck()
    probe = c["startupProbe"]["httpGet"]
    want = f"127.0.0.1:{ports[probe['port']]}{probe['path']}"
    if want not in health:
        out.append(f"healthcheck {health!r} does not ask {want} (the startup probe)")
    if config.get("architecture") != arch:
        out.append(f"architecture {config.get('architecture')!r}, expected {arch!r}")
    if cfg.get("Labels", {}).get("org.opencontainers.image.title") != "kf-api":
        out.append("no org.opencontainers.image.title label")
    need = {"/opt/kf-api/gateway", "/opt/kf-api/template.yaml", "/opt/kf-api/aws-lambda-rie"}
    need |= {f"/opt/kf-api/functions/{f}/bootstrap" for f in functions}
    for path in sorted(need - files):
        out.append(f"{path} is missing")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive")
    p.add_argument("--arch", default=None, help="amd64 or arm64 (default: from the archive's name)")
    p.add_argument("--manifests", default="k8s/base", type=pathlib.Path)
    p.add_argument("--functions", default="functions", type=pathlib.Path)
    a = p.parse_args()
    arch = a.arch or a.archive.rsplit("-", 1)[-1].removesuffix(".tar")
    config, files = image_config(a.archive)
    spec, c = container(a.manifests)
    # Function crates are those with a binary (functions/edge is a library).
    functions = sorted(d.name for d in a.functions.iterdir() if (d / "src" / "main.rs").exists())
    found = problems(config, files, spec, c, arch, functions)
    for line in found:
        print(f"{a.archive}: {line}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"{a.archive}: config agrees with {a.manifests} ({arch}, user {config['config']['User']}, "
          f"{len(functions)} functions)")


if __name__ == "__main__":
    main()
