#!/usr/bin/env python3
"""The one-node cluster's LoadBalancer controller (tools/k8s/node.sh).

What a cloud's service controller, MetalLB or `minikube tunnel` does for a
cluster, reduced to what one node needs: every Service of type
LoadBalancer without an address gets the next free one from --first up,
written to its status (status.loadBalancer.ingress, ipMode VIP), and
kube-proxy then routes that address to the Service's ready pods, as it does
for a cloud load balancer's. The addresses exist only inside the node's
network namespace. A Service that leaves type LoadBalancer gives its
address back.

MetalLB would also work here, but its layer-2 mode announces addresses by
ARP on a real interface and needs its speaker as a privileged pod; nothing in
one namespace listens for those announcements, so it would add a build and
a daemon set without adding anything this test observes.

It polls the API once a second (a watch would be quicker but not simpler to
keep correct across API restarts) and runs until it is killed.
"""

import argparse
import ipaddress
import json
import subprocess
import sys
import time


def kubectl(args, opts, **kw):
    return subprocess.run(
        [opts.kubectl, "--kubeconfig", opts.kubeconfig, *args],
        check=True, capture_output=True, text=True, **kw,
    ).stdout


def assign(services, first, count):
    """The address each LoadBalancer Service should get: (ns, name, ip) for
    those that have none yet, lowest free address first."""
    used = set()
    for svc in services:
        for ing in svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []:
            if ing.get("ip"):
                used.add(ing["ip"])
    pool = (str(first + i) for i in range(count))
    out = []
    for svc in services:
        if svc["spec"].get("type") != "LoadBalancer":
            continue
        if svc.get("status", {}).get("loadBalancer", {}).get("ingress"):
            continue
        ip = next((a for a in pool if a not in used), None)
        if ip is None:
            print(f"lb: no address left for {svc['metadata']['name']}", file=sys.stderr)
            break
        used.add(ip)
        out.append((svc["metadata"]["namespace"], svc["metadata"]["name"], ip))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubectl", default="kubectl")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--first", required=True, type=ipaddress.IPv4Address)
    p.add_argument("--count", type=int, default=100)
    opts = p.parse_args()
    while True:
        try:
            services = json.loads(kubectl(["get", "services", "-A", "-o", "json"], opts))["items"]
            for ns, name, ip in assign(services, opts.first, opts.count):
                status = {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}
                kubectl(["patch", "service", name, "-n", ns, "--subresource=status",
                         "--type=merge", "-p", json.dumps(status)], opts)
                print(f"lb: {ns}/{name} -> {ip}", flush=True)
        except (subprocess.CalledProcessError, json.JSONDecodeError) as e:
            print(f"lb: {e}", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
