"""The model behind tools/k8s/hpa.py's HPA simulation: the pods a load
needs, the counts the HPA may rest at, each pod's share of the CPU, and the
check that every change kept to the HPA's `behavior` policies.

Worked out by hand against the manifests' numbers (500m request, 1 CPU
limit, 50% target, 1 to 10 pods; scale-up +100% or +4 pods per 15 s,
scale-down -50% per period). Plain python3; run by `make unit`.
"""

import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "k8s"))

import hpa  # noqa: E402

SHIPPED = hpa.Hpa(min_replicas=1, max_replicas=10, target=0.5, request_cores=0.5, limit_cores=1.0)
UP = [hpa.Policy("Percent", 100, 15), hpa.Policy("Pods", 4, 15)]
DOWN = [hpa.Policy("Percent", 50, 15)]


class CpuPerRequest(unittest.TestCase):
    def test_function_plus_gateway(self):
        results = {"stack": {"builtin": {"hello": {"cpu_us_per_request": {"function": 243.0, "gateway": 67.0}}}}}
        self.assertAlmostEqual(hpa.cpu_per_request(results), 310e-6)

    def test_the_measured_file_has_it(self):
        import json
        results = json.loads(hpa.RESULTS.read_text())
        self.assertGreater(hpa.cpu_per_request(results), 0)


class Prediction(unittest.TestCase):
    def test_a_pod_holds_a_quarter_cpu_at_the_target(self):
        # 500m request at 50%: 0.25 CPU per pod.
        self.assertAlmostEqual(hpa.pods_needed(0.62, SHIPPED), 2.48)
        self.assertEqual(hpa.predicted(0.62, SHIPPED), 3)

    def test_exactly_full_pods_need_no_extra(self):
        self.assertEqual(hpa.predicted(0.75, SHIPPED), 3)
        self.assertEqual(hpa.predicted(0.7500001, SHIPPED), 4)

    def test_between_min_and_max(self):
        self.assertEqual(hpa.predicted(0.0, SHIPPED), 1)
        self.assertEqual(hpa.predicted(3.72, SHIPPED), 10)

    def test_the_tolerance_lets_a_near_count_stand(self):
        # 3.05 pods' worth: 3 pods run at 102% of the target, within 10%.
        self.assertEqual(hpa.settles_at(0.7625, SHIPPED), {3, 4})
        # 2.48 pods' worth: 3 only (2 pods would be at 124%).
        self.assertEqual(hpa.settles_at(0.62, SHIPPED), {3})
        # Above the maximum: only the maximum.
        self.assertEqual(hpa.settles_at(3.72, SHIPPED), {10})


class Loads(unittest.TestCase):
    def test_in_req_per_s(self):
        self.assertEqual(hpa.offered_loads((0.5, 2.5, 14.5, 3.5), 310e-6, SHIPPED), [400, 2020, 11690, 2820])

    def test_the_expected_counts_do_not_hang_on_the_bench(self):
        # Whatever a request costs, the loads ask for the same pods.
        for cpu_us in (100, 222, 270, 310, 500, 1000):
            loads = hpa.offered_loads(hpa.LOADS_IN_PODS, cpu_us / 1e6, SHIPPED)
            counts = [hpa.settles_at(rate * cpu_us / 1e6, SHIPPED) for rate in loads]
            self.assertEqual(counts, [{1}, {3}, {10}, {4}, {1}], cpu_us)


class Shares(unittest.TestCase):
    def test_even_share_in_millicores(self):
        self.assertEqual(hpa.share_millicores(0.62, 3, SHIPPED), 207)

    def test_capped_at_the_limit(self):
        self.assertEqual(hpa.share_millicores(3.72, 3, SHIPPED), 1000)

    def test_no_ready_pod_takes_nothing(self):
        self.assertEqual(hpa.share_millicores(0.62, 0, SHIPPED), 0)

    def test_utilization_is_of_the_request(self):
        self.assertEqual(hpa.utilization(207, SHIPPED), 41)
        self.assertEqual(hpa.utilization(1000, SHIPPED), 200)


class Limits(unittest.TestCase):
    def test_scale_up(self):
        self.assertEqual(hpa.limit(3, UP[0], up=True), 6)
        self.assertEqual(hpa.limit(3, UP[1], up=True), 7)

    def test_scale_down_truncates(self):
        self.assertEqual(hpa.limit(10, DOWN[0], up=False), 5)
        self.assertEqual(hpa.limit(5, DOWN[0], up=False), 2)


class Breaches(unittest.TestCase):
    def test_the_simulations_steps_pass(self):
        history = [(0, 1), (19, 3), (60, 3), (62, 7), (78, 10), (130, 10), (164, 5), (180, 4)]
        self.assertEqual(hpa.policy_breaches(history, UP, up=True), [])
        self.assertEqual(hpa.policy_breaches(history, DOWN, up=False), [])

    def test_select_max_takes_the_larger_change(self):
        # 3 -> 7 is Pods' +4, beyond Percent's 6: allowed under Max, not Min.
        history = [(0, 3), (5, 7)]
        self.assertEqual(hpa.policy_breaches(history, UP, up=True, select="Max"), [])
        self.assertEqual(len(hpa.policy_breaches(history, UP, up=True, select="Min")), 1)

    def test_too_far_up_in_one_period(self):
        history = [(0, 1), (5, 2), (10, 5)]
        found = hpa.policy_breaches(history, [hpa.Policy("Percent", 100, 15)], up=True)
        self.assertEqual(len(found), 1)
        self.assertIn("2 -> 5", found[0])

    def test_too_far_down_in_one_period(self):
        # 10 -> 5 -> 4 within one 15 s period: 4 is below the 5 allowed.
        history = [(0, 10), (30, 5), (35, 4)]
        found = hpa.policy_breaches(history, DOWN, up=False)
        self.assertEqual(len(found), 1)
        self.assertIn("5 -> 4", found[0])

    def test_a_period_later_it_may_go_on(self):
        history = [(0, 10), (30, 5), (46, 4)]
        self.assertEqual(hpa.policy_breaches(history, DOWN, up=False), [])

    def test_changes_the_other_way_are_not_judged(self):
        history = [(0, 10), (1, 1)]
        self.assertEqual(hpa.policy_breaches(history, UP, up=True), [])


if __name__ == "__main__":
    unittest.main()
