"""The load test's own checks: a wrong answer must count as a failure."""

import unittest

import locustfile


class FakeResponse:
    """What check_hello needs of a Locust response."""

    def __init__(self, status, body):
        self.status_code, self._body, self.outcome = status, body, None
        self.text = str(body)

    def json(self):
        if isinstance(self._body, Exception):
            raise self._body
        return self._body

    def success(self):
        self.outcome = "success"

    def failure(self, why):
        self.outcome = f"failure: {why}"


def hello_body(n, p):
    return {"message1": "Hello, world!",
            "message2": f"The largest prime factor of {n} is {p}. Calculation took 0.000 seconds.",
            "n": n, "largest_prime_factor": p, "elapsed_time": 0.0001, "algorithm": "trial"}


class LargestPrimeFactor(unittest.TestCase):
    def test_against_plain_factoring(self):
        def reference(n):
            largest, d = 1, 2
            while d * d <= n:
                while n % d == 0:
                    largest, n = d, n // d
                d += 1
            return max(largest, n) if n > 1 else largest

        for n in list(range(2, 3000)) + [1462370954730, 2**41 + 1, 999999999989 * 2]:
            p = reference(n)
            self.assertTrue(locustfile.is_largest_prime_factor(n, p), (n, p))
            for wrong in {1, 2, 3, p - 1, p + 1, n} - {p}:
                self.assertFalse(locustfile.is_largest_prime_factor(n, wrong), (n, wrong))

    def test_primality_on_pseudoprimes(self):
        for composite in (561, 2047, 3215031751, 3825123056546413051):
            self.assertFalse(locustfile.is_prime(composite))
        for prime in (2, 65537, 4294967291, 18446744073709551557):
            self.assertTrue(locustfile.is_prime(prime))


class CheckHello(unittest.TestCase):
    def outcome(self, status, body, *expected):
        response = FakeResponse(status, body)
        locustfile.check_hello(response, *expected)
        return response.outcome

    def test_right_answers_pass(self):
        self.assertEqual(self.outcome(200, hello_body(1462370954730, 398311)), "success")
        self.assertEqual(self.outcome(200, hello_body(561, 17), 561, 17), "success")

    def test_wrong_answers_fail(self):
        n = 1462370954730
        for body in (hello_body(n, 2), hello_body(n, 5), hello_body(n, n)):
            self.assertTrue(self.outcome(200, body).startswith("failure"), body)
        self.assertTrue(self.outcome(200, hello_body(561, 11), 561, 17).startswith("failure"))
        self.assertTrue(self.outcome(200, hello_body(12, 3)).startswith("failure"))  # outside the range
        bad_message = dict(hello_body(n, 398311), message2="The largest prime factor of 1 is 1.")
        self.assertTrue(self.outcome(200, bad_message).startswith("failure"))

    def test_the_key_is_sent_only_when_set(self):
        self.assertEqual(locustfile.auth_headers({}), {})
        self.assertEqual(locustfile.auth_headers({"KF_API_KEY": " "}), {})
        self.assertEqual(locustfile.auth_headers({"KF_API_KEY": "kf_abc"}),
                         {"Authorization": "Bearer kf_abc"})

    def test_errors_and_garbage_fail(self):
        self.assertTrue(self.outcome(503, {"message": "Service Unavailable"}).startswith("failure"))
        self.assertTrue(self.outcome(200, ValueError("not JSON")).startswith("failure"))
        self.assertTrue(self.outcome(200, {"n": 3}).startswith("failure"))


if __name__ == "__main__":
    unittest.main()
