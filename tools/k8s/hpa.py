#!/usr/bin/env python3
"""The HorizontalPodAutoscaler under a simulated offered load.

Run by tools/k8s/test.sh against its cluster:

    KUBECTL=... KUBECONFIG=... tools/k8s/hpa.py MANIFESTS NAMESPACE WORKDIR

What is real: the HPA controller (kube-controller-manager, synced every 5 s
here, 15 s by default), the Deployment and ReplicaSet controllers, the
scheduler, metrics-server serving metrics.k8s.io, and the manifests' HPA
with its `behavior`. What is simulated: the pods (kwok plays them; no
container runs) and their CPU use. This script plays the load: an offered
rate of `POST /api/v1/hello` requests, spread evenly over the ready pods
(as a Service spreads connections), each request costing the CPU that the
stack bench measured (results/results.json: the function's plus the
gateway's CPU time per `hello`, the builtin mode). Each second it sets each
ready pod's kwok.x-k8s.io/usage-cpu annotation to its share, capped at the
container's CPU limit (a pod cannot use more); kwok reports that usage as a
kubelet would, and metrics-server and the HPA read it from there.

For each offered load it waits until the HPA settles (the Deployment's
replicas, its ready pods and the HPA's desired count agree and hold for 10 s,
and the HPA reports the utilization that load gives) and checks:
  - the count it settles at is the one the measurements predict: the pods
    that keep each at the HPA's target, ceil(load / (request * target)),
    between minReplicas and maxReplicas, or one the HPA's 10% tolerance
    leaves alone;
  - it is never above maxReplicas;
  - each change kept to the `behavior` policies (scale-up: at most +100% or
    +4 pods per 15 s; scale-down: at most -50% per period), and no scale-down
    came before the stabilization window had passed since the load dropped.
The test overlay shortens the scale-down window from 300 s to 30 s and its
period from 60 s to 15 s (so the test takes minutes, not a quarter of an
hour), and says so in its output; scale-up is as shipped.

The pure parts (the prediction, the shares, the policy checks) are tested by
tools/tests/test_hpa.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "results.json"

# The offered loads in pods' worth (a pod's worth: what one pod carries at
# the HPA's target), in order: light, a few pods, more than ten pods' worth
# (the maximum must hold), then down twice. Each is half a pod from a whole
# count, away from the HPA's 10% tolerance, so the counts the test expects
# do not hang on the last bench's noise. K8S_HPA_LOADS="400 2000 ..." offers
# those req/s instead.
LOADS_IN_PODS = (0.5, 2.5, 14.5, 3.5, 0.5)
# The HPA's default --horizontal-pod-autoscaler-tolerance.
TOLERANCE = 0.1
# A count holds this long (two HPA syncs) before it counts as settled.
HOLD_S = 10
# The scale-down window and period: the shipped ones (the overlay checks
# that they still are, so that the output's claim stays true) and the test
# overlay's.
SHIPPED_SCALE_DOWN_WINDOW_S = 300
SHIPPED_SCALE_DOWN_PERIOD_S = 60
TEST_SCALE_DOWN_WINDOW_S = 30
TEST_SCALE_DOWN_PERIOD_S = 15
# Slack for this script's one-second view of the controllers' timing.
SLACK_S = 2


# --- the model (pure; tools/tests/test_hpa.py) -------------------------------

def cpu_per_request(results: dict) -> float:
    """CPU seconds one `hello` costs a pod: the function's and the gateway's
    CPU time per request in the stack bench's builtin mode."""
    per = results["stack"]["builtin"]["hello"]["cpu_us_per_request"]
    return (per["function"] + per["gateway"]) / 1e6


@dataclass(frozen=True)
class Hpa:
    """What the model needs of the HPA and its target's pods."""
    min_replicas: int
    max_replicas: int
    target: float          # averageUtilization / 100
    request_cores: float   # the container's CPU request
    limit_cores: float     # the container's CPU limit


def pods_needed(load_cores: float, hpa: Hpa) -> float:
    """Pods that hold the load at exactly the target utilization (a fraction)."""
    return load_cores / (hpa.request_cores * hpa.target)


def predicted(load_cores: float, hpa: Hpa) -> int:
    """The count the measurements say the load needs: ceil of pods_needed,
    between minReplicas and maxReplicas."""
    return min(hpa.max_replicas, max(hpa.min_replicas, math.ceil(round(pods_needed(load_cores, hpa), 9))))


def settles_at(load_cores: float, hpa: Hpa, tolerance: float = TOLERANCE) -> set[int]:
    """Counts the HPA may rest at: the predicted one, and any count whose
    utilization ratio is within the tolerance, where it makes no change."""
    need = pods_needed(load_cores, hpa)
    ok = {predicted(load_cores, hpa)}
    ok |= {n for n in range(hpa.min_replicas, hpa.max_replicas + 1) if abs(need / n - 1) <= tolerance}
    return ok


def offered_loads(in_pods: tuple[float, ...], cpu_s: float, hpa: Hpa) -> list[int]:
    """Loads in req/s of `hello`, from loads in pods' worth, to 10 req/s."""
    per_pod = hpa.request_cores * hpa.target / cpu_s
    return [max(10, int(round(m * per_pod, -1))) for m in in_pods]


def share_millicores(load_cores: float, ready: int, hpa: Hpa) -> int:
    """Each ready pod's CPU, in millicores: an even share, capped at the limit."""
    if ready <= 0:
        return 0
    return max(1, min(round(hpa.limit_cores * 1000), round(load_cores * 1000 / ready)))


def utilization(millicores: int, hpa: Hpa) -> int:
    """The utilization the HPA computes for a pod using `millicores` (percent of the request)."""
    return round(millicores / (hpa.request_cores * 1000) * 100)


@dataclass(frozen=True)
class Policy:
    kind: str       # "Pods" or "Percent"
    value: int
    period_s: int


def limit(start: int, policy: Policy, up: bool) -> int:
    """The furthest one policy lets the HPA go in one period from `start`,
    the count a period ago, as the controller computes it (a Percent
    scale-up rounds up, a Percent scale-down truncates)."""
    if policy.kind == "Pods":
        return start + policy.value if up else start - policy.value
    if up:
        return math.ceil(start * (1 + policy.value / 100))
    return int(start * (1 - policy.value / 100))


def policy_breaches(history: list[tuple[float, int]], policies: list[Policy], up: bool,
                    select: str = "Max", slack_s: float = SLACK_S) -> list[str]:
    """Changes in `history` ((time, replicas), in time order) that went
    further in one period than the policies, combined by selectPolicy
    (Max: the largest change any allows; Min: the smallest), allow. A
    change is judged from the count a period before it, as the controller
    does (the count now, less what the period added, plus what it
    removed), taken over a period `slack_s` shorter, so that this script's
    one-second sampling cannot invent a breach."""
    found = []
    for i in range(1, len(history)):
        t, n = history[i]
        before = history[i - 1][1]
        if n == before or (n > before) != up:
            continue
        bounds = []
        for p in policies:
            since = t - (p.period_s - slack_s)
            # The count in force when the period began, and any since.
            at_start = [m for (s, m) in history[:i] if s <= since][-1:]
            window = at_start + [m for (s, m) in history[:i] if s > since]
            bounds.append(limit(min(window) if up else max(window), p, up))
        most = max(bounds) if up else min(bounds)
        least = min(bounds) if up else max(bounds)
        allowed = most if select == "Max" else least
        if (up and n > allowed) or (not up and n < allowed):
            found.append(f"t={t:.0f}s: {before} -> {n}, beyond the policies' {allowed}")
    return found


# --- the cluster ---------------------------------------------------------------

def kubectl(*args: str, stdin: str | None = None) -> str:
    cmd = [os.environ.get("KUBECTL", "kubectl"), *args]
    run = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        raise SystemExit(f"  FAIL: {' '.join(cmd[1:])}: {run.stderr.strip()}")
    return run.stdout


def cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_overlay(manifests: Path, work: Path) -> None:
    """The minikube overlay, its pods on kwok-node-0 (the node whose pods
    kwok's /metrics/resource reports: see cluster.sh) and its HPA's
    scale-down window and period shortened."""
    work.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(manifests / "overlays" / "minikube", work)
    (work / "kustomization.yaml").write_text(f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
patches:
  - target: {{kind: Deployment, name: kf-api}}
    patch: |-
      - op: add
        path: /spec/template/spec/nodeSelector
        value: {{kubernetes.io/hostname: kwok-node-0}}
  - target: {{kind: HorizontalPodAutoscaler, name: kf-api-hpa}}
    patch: |-
      - op: test
        path: /spec/behavior/scaleDown/policies/0/type
        value: Percent
      - op: test
        path: /spec/behavior/scaleDown/stabilizationWindowSeconds
        value: {SHIPPED_SCALE_DOWN_WINDOW_S}
      - op: test
        path: /spec/behavior/scaleDown/policies/0/periodSeconds
        value: {SHIPPED_SCALE_DOWN_PERIOD_S}
      - op: replace
        path: /spec/behavior/scaleDown/stabilizationWindowSeconds
        value: {TEST_SCALE_DOWN_WINDOW_S}
      - op: replace
        path: /spec/behavior/scaleDown/policies/0/periodSeconds
        value: {TEST_SCALE_DOWN_PERIOD_S}
""")


@dataclass
class Sample:
    t: float
    replicas: int      # the Deployment's spec.replicas (what the HPA set)
    ready: int
    desired: int | None
    util: int | None
    limited: str       # the ScalingLimited condition's reason, when True
    able: str          # the AbleToScale condition's reason


@dataclass
class Row:
    rate: int
    load_cores: float
    predicted: int
    accepted: set[int]
    settled: int = 0
    took_s: float = 0
    util: int | None = None
    steps: list[int] = field(default_factory=list)
    note: str = ""


def main() -> int:
    manifests, ns, work = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    step_timeout = float(os.environ.get("K8S_HPA_STEP_TIMEOUT", "150"))
    results = json.loads(RESULTS.read_text())
    cpu_s = cpu_per_request(results)

    test_overlay(manifests, work)
    kubectl("apply", "-k", str(work), "-n", ns)
    kubectl("rollout", "status", "deployment", "kf-api", "-n", ns, "--timeout", "60s")
    spec = json.loads(kubectl("get", "hpa", "kf-api-hpa", "-n", ns, "-o", "json"))["spec"]
    deploy = json.loads(kubectl("get", "deployment", "kf-api", "-n", ns, "-o", "json"))
    container = deploy["spec"]["template"]["spec"]["containers"][0]["resources"]
    hpa = Hpa(spec.get("minReplicas", 1), spec["maxReplicas"],
              spec["metrics"][0]["resource"]["target"]["averageUtilization"] / 100,
              cores(container["requests"]["cpu"]), cores(container["limits"]["cpu"]))
    behavior = spec["behavior"]
    up_rules, down_rules = behavior["scaleUp"], behavior["scaleDown"]

    def policies(rules: dict) -> list[Policy]:
        return [Policy(p["type"], p["value"], p["periodSeconds"]) for p in rules["policies"]]

    up_policies, down_policies = policies(up_rules), policies(down_rules)
    down_window = down_rules.get("stabilizationWindowSeconds", 300)
    loads = ([int(x) for x in os.environ["K8S_HPA_LOADS"].split()] if os.environ.get("K8S_HPA_LOADS")
             else offered_loads(LOADS_IN_PODS, cpu_s, hpa))
    selector = ",".join(f"{k}={v}" for k, v in deploy["spec"]["selector"]["matchLabels"].items())

    print(f"\n== the HPA under a simulated offered load (namespace {ns})")
    print(f"  each `hello` costs {cpu_s * 1e6:.0f} µs of CPU (results/results.json: the function's and the "
          f"gateway's, builtin mode); a pod requests {hpa.request_cores:g} CPU (limit {hpa.limit_cores:g}), "
          f"the HPA targets {hpa.target:.0%}: {hpa.request_cores * hpa.target / cpu_s:.0f} req/s per pod")
    print(f"  test overlay: scale-down window {down_window} s and period "
          f"{down_policies[0].period_s} s (shipped: {SHIPPED_SCALE_DOWN_WINDOW_S} s, "
          f"{SHIPPED_SCALE_DOWN_PERIOD_S} s); scale-up as shipped; HPA sync every 5 s")

    start = time.monotonic()
    history: list[Sample] = []
    shares: dict[str, str] = {}
    rows: list[Row] = []

    def tick(load_cores: float) -> Sample:
        pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json"))["items"]
        ready = sorted(
            p["metadata"]["name"] for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        )
        want = f"{share_millicores(load_cores, len(ready), hpa)}m"
        stale = [name for name in ready if shares.get(name) != want]
        if stale:
            kubectl("annotate", "pods", "-n", ns, "--overwrite", *stale, f"kwok.x-k8s.io/usage-cpu={want}")
            shares.update({name: want for name in stale})
        h = json.loads(kubectl("get", "hpa", "kf-api-hpa", "-n", ns, "-o", "json"))["status"]
        d = json.loads(kubectl("get", "deployment", "kf-api", "-n", ns, "-o", "json"))
        metrics = h.get("currentMetrics") or []
        util = metrics[0].get("resource", {}).get("current", {}).get("averageUtilization") if metrics else None
        limited = next((c.get("reason", "") for c in h.get("conditions", [])
                        if c["type"] == "ScalingLimited" and c["status"] == "True"), "")
        able = next((c.get("reason", "") for c in h.get("conditions", []) if c["type"] == "AbleToScale"), "")
        s = Sample(time.monotonic() - start, d["spec"]["replicas"], d["status"].get("readyReplicas", 0),
                   h.get("desiredReplicas"), util, limited, able)
        if s.replicas > hpa.max_replicas or s.ready > hpa.max_replicas:
            raise SystemExit(f"  FAIL: t={s.t:.0f}s: {s.replicas} replicas ({s.ready} ready), "
                             f"above maxReplicas {hpa.max_replicas}")
        history.append(s)
        return s

    for rate in loads:
        load = rate * cpu_s
        row = Row(rate, load, predicted(load, hpa), settles_at(load, hpa))
        t0 = time.monotonic() - start
        first = len(history)
        stable_since = None
        while True:
            s = tick(load)
            expected_util = utilization(share_millicores(load, s.ready, hpa), hpa)
            # Settled: the HPA sees this load, wants what it has, and is
            # held back neither by a stabilization window (a lower
            # recommendation waiting) nor by a policy.
            agreed = (s.replicas == s.ready == s.desired and s.util is not None
                      and abs(s.util - expected_util) <= max(3, 0.1 * expected_util)
                      and s.able != "ScaleDownStabilized"
                      and s.limited not in ("ScaleUpLimit", "ScaleDownLimit"))
            prev = history[-2] if len(history) >= 2 else None
            if not agreed or (prev and prev.replicas != s.replicas):
                stable_since = None
            elif stable_since is None:
                stable_since = s.t
            if stable_since is not None and s.t - stable_since >= HOLD_S:
                break
            if s.t - t0 > step_timeout:
                changes = [x for i, x in enumerate(history[first:], first)
                           if i == first or (x.replicas, x.ready, x.desired, x.util)
                           != (history[i - 1].replicas, history[i - 1].ready, history[i - 1].desired,
                               history[i - 1].util)]
                for x in changes:
                    print(f"    t={x.t:.0f}s replicas={x.replicas} ready={x.ready} desired={x.desired} "
                          f"utilization={x.util}% {x.able} {x.limited}")
                raise SystemExit(f"  FAIL: {rate} req/s: not settled within {step_timeout:.0f} s "
                                 f"(replicas {s.replicas}, ready {s.ready}, desired {s.desired}, "
                                 f"utilization {s.util}%, expected {expected_util}%)")
            time.sleep(max(0.0, 1 - (time.monotonic() - start - s.t)))
        row.settled, row.util = s.replicas, s.util
        row.took_s = stable_since - t0
        steps = [history[max(0, first - 1)].replicas]
        for x in history[first:]:
            if x.replicas != steps[-1]:
                steps.append(x.replicas)
        row.steps = steps
        if any(x.limited == "TooManyReplicas" for x in history[first:]):
            row.note = "held at maxReplicas (ScalingLimited: TooManyReplicas)"
        elif any(x.limited == "ScaleUpLimit" for x in history[first:]):
            row.note = "a step limited by the scale-up policies (ScaleUpLimit)"
        if s.replicas not in row.accepted:
            raise SystemExit(f"  FAIL: {rate} req/s settled at {s.replicas} pods; the measurements say "
                             f"{row.predicted} (accepted: {sorted(row.accepted)})")
        # Scaled down: not before the window since this load began.
        if steps[-1] < steps[0]:
            first_down = next(x.t for x in history[first:] if x.replicas < steps[0])
            if first_down - t0 < down_window - SLACK_S:
                raise SystemExit(f"  FAIL: {rate} req/s: scaled down {first_down - t0:.0f} s after the load "
                                 f"dropped, inside the {down_window} s stabilization window")
            row.note = f"first scale-down {first_down - t0:.0f} s after the drop (window {down_window} s)"
        rows.append(row)
        print(f"  ok: {rate} req/s ({load:.2f} CPU): settled at {row.settled} pod{'s' if row.settled != 1 else ''} after {row.took_s:.0f} s "
              f"({' -> '.join(map(str, row.steps))}), {row.util}% of the request; predicted {row.predicted}")

    timeline = [(x.t, x.replicas) for x in history]
    breaches = (policy_breaches(timeline, up_policies, True, up_rules.get("selectPolicy", "Max"))
                + policy_breaches(timeline, down_policies, False, down_rules.get("selectPolicy", "Max")))
    if breaches:
        raise SystemExit("  FAIL: beyond the behavior's policies: " + "; ".join(breaches))
    print(f"  ok: every change within the behavior's policies; never above {hpa.max_replicas} "
          f"(highest: {max(x.replicas for x in history)})")

    print("\n  Offered load -> replicas (a simulation: the real HPA, simulated pods and CPU)\n")
    print("  | Offered load (`hello`) | CPU it needs | Pods predicted | HPA settled at | Took | Steps | Utilization | Note |")
    print("  |---:|---:|---:|---:|---:|---|---:|---|")
    for r in rows:
        print(f"  | {r.rate:,} req/s | {r.load_cores:.2f} | {r.predicted} | {r.settled} | {r.took_s:.0f} s "
              f"| {' → '.join(map(str, r.steps))} | {r.util}% | {r.note} |")
    # What the docs' results:hpa block is rendered from (tools/results.py).
    out = Path(os.environ.get("K8S_HPA_RESULTS", ROOT / "target" / "k8s-hpa.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "cpu_per_request_us": round(cpu_s * 1e6), "per_pod_req_s": round(hpa.request_cores * hpa.target / cpu_s),
        "scale_down_window_s": down_window, "scale_down_period_s": down_policies[0].period_s,
        "rows": [{"rate": r.rate, "load_cores": round(r.load_cores, 2), "predicted": r.predicted,
                  "settled": r.settled, "took_s": round(r.took_s), "steps": r.steps, "util": r.util,
                  "note": r.note} for r in rows],
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
