#!/usr/bin/env bash
# The pods' sandbox image for the one-node cluster (node.sh), built here
# because no registry is reachable: one static binary that holds the pod's
# namespaces, reaps orphans and exits on SIGINT/SIGTERM, as Kubernetes' own
# pause does, written out as an OCI archive for `ctr images import`.
#
#   tools/k8s/pause.sh DIR NAME     DIR/pause.tar, an image named NAME
set -euo pipefail
dir=$1
name=$2
mkdir -p "$dir/rootfs"
cat > "$dir/pause.c" <<'C'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, quit);
  signal(SIGTERM, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
C
cc -static -Os -s -o "$dir/rootfs/pause" "$dir/pause.c"
python3 - "$dir" "$name" <<'PY'
import hashlib, io, json, sys, tarfile
d, name = sys.argv[1:]
blobs = {}
def blob(data, media):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media, "digest": digest, "size": len(data)}
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    info = t.gettarinfo(f"{d}/rootfs/pause", "pause")
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    with open(f"{d}/rootfs/pause", "rb") as f:
        t.addfile(info, f)
layer = layer.getvalue()
config = json.dumps({
    "architecture": "amd64" if __import__("platform").machine() == "x86_64" else "arm64",
    "os": "linux",
    "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
}).encode()
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": blob(config, "application/vnd.oci.image.config.v1+json"),
    "layers": [blob(layer, "application/vnd.oci.image.layer.v1.tar")],
}).encode()
desc = blob(manifest, "application/vnd.oci.image.manifest.v1+json")
desc["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
index = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
with tarfile.open(f"{d}/pause.tar", "w") as out:
    def add(path, data):
        info = tarfile.TarInfo(path)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for digest, data in blobs.items():
        add("blobs/sha256/" + digest.split(":")[1], data)
PY
