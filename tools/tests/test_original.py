"""The Python original's equivalent (tools/original/app.py), which `make bench`
measures beside the stack: it must do the original's work and answer in this
API's shape, or the comparison means nothing. Runs in .venv-original."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "original"))

import app  # noqa: E402


class Original(unittest.TestCase):
    def test_the_loop_finds_the_largest_prime_factor(self):
        # The README's example, a prime, a prime power and a product of two
        # primes close together (the loop's worst case).
        for n, largest in [(2493542942731, 763493), (1_000_003, 1_000_003), (2**20, 2),
                           (999_983 * 1_000_003, 1_000_003), (1462370954730, 398311)]:
            self.assertEqual(app.largest_prime_factor(n), largest, n)

    def test_hello_draws_from_the_originals_range_and_answers_in_the_apis_fields(self):
        for _ in range(20):
            answer = app.hello(app.MessageInput())
            body = app.MessageOutput(**answer).dict()
            self.assertEqual(set(body), {"message1", "message2", "n", "largest_prime_factor",
                                         "elapsed_time"})
            self.assertTrue(1_250_000_000_000 <= body["n"] < 2_500_000_000_000, body["n"])
            self.assertEqual(body["n"] % body["largest_prime_factor"], 0)
            self.assertIn(f"The largest prime factor of {body['n']} is {body['largest_prime_factor']}.",
                          body["message2"])

    def test_the_routes_are_the_apis(self):
        routes = {(tuple(sorted(r.methods)), r.path) for r in app.app.routes if hasattr(r, "methods")}
        self.assertIn((("POST",), "/api/v1/hello"), routes)
        self.assertIn((("GET",), "/ping"), routes)
        self.assertEqual(app.ping(), {"ping": "pong!"})


if __name__ == "__main__":
    unittest.main()
