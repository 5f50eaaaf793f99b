"""The cost model of tools/results.py: FaaS or containers, in money.

Checks the formulas with numbers worked out by hand, the break-even against
both cost curves, the pod count's steps, and that the model's constants are
still what template.yaml and the Kubernetes manifests say.

Run by `make unit` with the load test's venv (the chart needs matplotlib;
everything else runs on a plain python3, and the chart's test then skips).
"""

import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402

try:
    import matplotlib  # noqa: F401
    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False


def geometric(low, high, count):
    return [low * (high / low) ** (i / (count - 1)) for i in range(count)]


# A stack section shaped like stack-bench's, with round numbers.
STACK = {
    "builtin": {"hello": {"rps": 4000.0, "cpu_us_per_request": {"function": 200.0, "gateway": 50.0}}},
    "pinning": {"stack_cpu": "1"},
    "machine": {"cpus": 2, "cpu": "test CPU", "memory_gib": 1}, "date": "2026-11-30", "commit": "test",
}


class LambdaCost(unittest.TestCase):
    def test_a_million_requests_worked_by_hand(self):
        # 0.5 GB x 0.001 s x 1e6 = 500 GB-s at $0.0000133334, + $0.20 + $1.00.
        self.assertAlmostEqual(results.lambda_usd(1e6, 1, 512), 500 * 0.0000133334 + 0.20 + 1.00, places=9)
        self.assertAlmostEqual(results.lambda_usd(1e6, 1, 512), 1.2066667, places=7)
        # 1,024 MB for 3 ms: 3,000 GB-s.
        self.assertAlmostEqual(results.lambda_usd(1e6, 3, 1024), 3000 * 0.0000133334 + 1.20, places=9)

    def test_linear_in_requests(self):
        one = results.lambda_usd(1e6, 1)
        self.assertEqual(results.lambda_usd(0, 1), 0)
        for n in (2, 3, 10, 1000):
            self.assertAlmostEqual(results.lambda_usd(n * 1e6, 1), n * one, places=6)
        self.assertAlmostEqual(results.lambda_usd(1.5e6, 1) - results.lambda_usd(0.5e6, 1), one, places=9)

    def test_duration_part_scales_with_memory_and_billed_time(self):
        duration = lambda mb, ms: results.lambda_usd(1e6, ms, mb) - results.lambda_usd(1e6, 0, mb)
        self.assertAlmostEqual(duration(1024, 2), 4 * duration(512, 1), places=12)
        self.assertAlmostEqual(duration(128, 1), duration(512, 1) / 4, places=12)

    def test_billed_duration_is_whole_milliseconds_rounded_up_at_least_one(self):
        for us, ms in ((0, 1), (1, 1), (244, 1), (843, 1), (999.9, 1), (1000, 1), (1000.5, 2),
                       (1999, 2), (2000, 2), (2001, 3), (40780, 41)):
            self.assertEqual(results.lambda_billed_ms(us), ms, f"{us} µs")


class PodCost(unittest.TestCase):
    def test_an_hour_of_the_pod_worked_by_hand(self):
        # 0.5 vCPU x $0.0445 + 64/1024 GiB x $0.0049225.
        self.assertAlmostEqual(results.pod_usd_per_hour(), 0.02225 + 0.0625 * 0.0049225, places=12)
        self.assertAlmostEqual(results.pod_usd_per_hour(1, 1), 0.0445 + 0.0049225, places=12)

    def test_autopilot_raises_memory_to_a_gib_per_vcpu(self):
        self.assertEqual(results.autopilot_memory_gib(0.5, 64 / 1024), 0.5)
        self.assertEqual(results.autopilot_memory_gib(0.5, 2.0), 2.0)
        self.assertEqual(results.autopilot_memory_gib(2, 1.0), 2.0)

    def test_pod_count_steps_up_at_capacity(self):
        cap = 841.75
        self.assertEqual(results.pods_for(0, cap), 1)
        self.assertEqual(results.pods_for(0.001, cap), 1)
        self.assertEqual(results.pods_for(cap, cap), 1)
        self.assertEqual(results.pods_for(cap + 0.01, cap), 2)
        self.assertEqual(results.pods_for(2 * cap, cap), 2)
        self.assertEqual(results.pods_for(2 * cap + 0.01, cap), 3)
        self.assertEqual(results.pods_for(10 * cap, cap), 10)
        self.assertEqual(results.pods_for(0.1 * 3 * cap * 10, cap), 3)  # 3 x cap, with rounding error
        # minReplicas holds the floor until the load needs more.
        self.assertEqual(results.pods_for(cap, cap, min_replicas=3), 3)
        self.assertEqual(results.pods_for(3 * cap + 0.01, cap, min_replicas=3), 4)

    def test_cpus_in_a_taskset_list(self):
        self.assertEqual(results.cpus_in("1"), 1)
        self.assertEqual(results.cpus_in("0-1"), 2)
        self.assertEqual(results.cpus_in("0-1,3"), 3)


class BreakEven(unittest.TestCase):
    def check_crossing(self, m, below_too=True):
        be = m["break_even"]
        faas = lambda r: results.lambda_usd_per_hour(m, r)
        pods = lambda r: results.pods_usd_per_hour(m, r)
        # Equal there, within a cent an hour and a month.
        self.assertAlmostEqual(faas(be), pods(be), delta=0.01)
        self.assertAlmostEqual(faas(be) * results.HOURS_PER_MONTH, pods(be) * results.HOURS_PER_MONTH, delta=0.01)
        # Above it, up to far past the first steps, the pods cost less.
        for r in geometric(be * 1.001, 1e6, 400) + [k * m["capacity"] * (1 + 1e-6) for k in range(1, 50)]:
            if r > be:
                self.assertLess(pods(r), faas(r), f"{r} req/s")
        if below_too:
            for r in geometric(0.001, be * 0.999, 200):
                self.assertLess(faas(r), pods(r), f"{r} req/s")

    def test_measured_model(self):
        m = results.cost_model(results.load()["stack"])
        self.check_crossing(m)
        # One pod's price buys this many Lambda requests an hour.
        self.assertAlmostEqual(m["break_even"], m["pod_hour"] / (3600 * m["lambda_per_request"]), places=9)

    def test_round_numbers(self):
        m = results.cost_model(STACK)
        # 200 µs at 512/1769 vCPU is 691 µs: billed 1 ms, $1.2066667 a million.
        self.assertEqual(m["billed_ms"], 1)
        self.assertAlmostEqual(m["duration_us"], 200 * 1769 / 512, places=9)
        self.assertAlmostEqual(m["lambda_per_million"], 1.2066667, places=7)
        # 4,000 req/s a CPU x 0.5 CPU x 50%.
        self.assertEqual(m["capacity"], 1000)
        # One pod's hour, $0.022557656, buys 18,694 Lambda requests: 5.19 req/s.
        self.assertAlmostEqual(m["break_even"], 0.02255765625 / 3600 / 1.2066667e-6, places=6)
        self.assertAlmostEqual(m["break_even"], 5.1928, places=3)
        self.check_crossing(m)

    def test_a_pod_that_barely_pays_crosses_past_its_first_steps(self):
        # $1 an hour for 10 req/s, against Lambda at $0.12 an hour per req/s:
        # the pods only stay cheaper once the extra pod's step no longer lifts
        # them above Lambda, from 5 pods (41.7 req/s) on.
        per_request = 0.12 / 3600
        be = results.break_even_rate(per_request, 1.0, 10)
        self.assertAlmostEqual(be, 5 / 0.12, places=9)
        m = {"lambda_per_request": per_request, "pod_hour": 1.0, "capacity": 10, "break_even": be}
        self.check_crossing(m, below_too=False)
        self.assertGreater(results.pods_usd_per_hour(m, 40.01), results.lambda_usd_per_hour(m, 40.01))

    def test_no_break_even_when_a_full_pod_costs_more_than_lambda(self):
        self.assertIsNone(results.break_even_rate(1e-6, 1.0, 10))          # $0.036/h for a pod's 10 req/s
        self.assertIsNone(results.break_even_rate(1.0 / 36000, 1.0, 10))   # exactly a pod's price


class Deployment(unittest.TestCase):
    """The model's constants are what the deployment files say."""

    def test_hello_memory_is_the_templates(self):
        text = (ROOT / "template.yaml").read_text()
        block = re.search(r"^  HelloFunction:\n(.*?)(?=^  \S)", text, re.M | re.S)
        self.assertIsNotNone(block, "template.yaml has no HelloFunction")
        memory = re.findall(r"^      MemorySize: (\d+)\s*$", block.group(1), re.M)
        self.assertEqual(memory, [str(results.HELLO_MEMORY_MB)])
        self.assertIn("Architectures: [arm64]", text)  # the price is arm64's

    def test_pod_requests_are_the_deployments(self):
        text = (ROOT / "k8s/base/deployment.yaml").read_text()
        requests = re.findall(r"^(\s+)requests:\n\1  cpu: (\S+)\n\1  memory: (\S+)$", text, re.M)
        self.assertEqual(len(requests), 1, "one container's requests")
        _, cpu, memory = requests[0]
        cpu = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
        self.assertEqual(cpu, results.POD_CPU_REQUEST)
        self.assertTrue(memory.endswith("Mi"), memory)
        self.assertEqual(int(memory[:-2]) / 1024, results.POD_MEMORY_REQUEST_GIB)

    def test_hpa_is_the_manifests(self):
        text = (ROOT / "k8s/base/hpa.yaml").read_text()
        field = lambda name: [int(v) for v in re.findall(rf"^\s+{name}: (\d+)\s*$", text, re.M)]
        self.assertEqual(field("minReplicas"), [results.HPA_MIN_REPLICAS])
        self.assertEqual(field("maxReplicas"), [results.HPA_MAX_REPLICAS])
        self.assertEqual(field("averageUtilization"), [round(results.HPA_CPU_TARGET * 100)])
        self.assertRegex(text, r"name: cpu\n\s+target:\n\s+type: Utilization")


class Rendering(unittest.TestCase):
    def test_table_states_the_numbers(self):
        text = results.render_cost(STACK)
        self.assertIn("**Break-even: 5.2 req/s**", text)
        self.assertIn("$1.2067 per million", text)
        self.assertIn("A pod serves 1,000 `hello` req/s", text)
        self.assertIn(f"List prices as of {results.PRICES_AS_OF}", text)
        # 10,000 req/s needs 10 pods of 1,000: within maxReplicas, so no warning.
        self.assertIn("| 10,000 req/s | 26,280 million | $31,711 a month ($43.44/h) | 10 pods: $164.67 a month", text)
        self.assertNotIn("over the HPA's maxReplicas", text)
        self.assertIn("| 1 req/s | 2.6 million |", text)
        self.assertEqual(len(re.findall(r"^\| [\d,]+ req/s \|", text, re.M)), len(results.COST_RATES))

    def test_render_needs_no_matplotlib(self):
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import results; "
                "results.render_cost(results.load()['stack']); "
                "assert 'matplotlib' not in sys.modules, 'render imported matplotlib'")
        run = subprocess.run([sys.executable, "-c", code, str(ROOT / "tools")], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)

    def test_the_docs_have_the_block_and_the_chart(self):
        section = (ROOT / "docs" / "faas-or-containers.md").read_text()
        self.assertIn("<!-- results:cost -->", section)
        self.assertIn("<!-- /results:cost -->", section)
        self.assertIn("](cost/cost.png)", section)
        self.assertTrue((ROOT / "docs" / "cost" / "cost.png").exists())

    @unittest.skipUnless(HAVE_MATPLOTLIB, "matplotlib is in .venv-loadtest")
    def test_chart_is_a_png(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sub" / "cost.png"
            results.chart_cost(STACK, path)
            self.assertEqual(path.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
            self.assertGreater(path.stat().st_size, 10_000)


if __name__ == "__main__":
    unittest.main()
