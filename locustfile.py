"""Load test for kf-api: one file for every deployment.

Only --host changes:
    locust --host http://127.0.0.1:8080                       # make run (the container's stack)
    locust --host http://127.0.0.1:9000                       # make watch (cargo lambda watch)
    locust --host https://abc123.execute-api.eu-west-2.amazonaws.com   # sam deploy's ApiUrl
    locust --host http://EXTERNAL-IP:8080                     # the Kubernetes LoadBalancer

Users, as in the tutorial, send requests back to back (no wait):
    HelloUser  - the tutorial's workload: POST /api/v1/hello with {}
    PingUser   - GET /ping
    RhoUser    - POST /api/v1/hello with an explicit n and "algorithm": "rho"

Every response is checked: status, content type, fields, and the answer
itself. A wrong answer is a failure, not a success. For `{}` (a random n) the
answer is checked without factoring n again: the claimed factor must divide
n, be prime, and leave a cofactor with no larger prime factor.

With the API key authorizer on (RequireApiKey=true), set KF_API_KEY to a key
(`make keygen`): it is sent as `Authorization: Bearer <key>` with every
/api/v1/hello request.

The load shape ramps to KF_USERS users (default 250, as in the tutorial's
chart) over KF_RAMP_SECONDS (default 60), holds for KF_HOLD_SECONDS
(default 30), then stops. KF_SHAPE=off leaves users and run time to the
command line (-u, -r, -t) or the web UI.
"""

import os
import random

from locust import FastHttpUser, LoadTestShape, constant, task

# (n, largest prime factor): inputs that are hard for one algorithm or
# another, with answers known independently (see shared/tests/factor.rs).
RHO_CASES = [
    (3 * 5 * 17 * 257 * 641 * 65537 * 6700417, 6700417),  # 2^64 - 1
    (18446744073709551557, 18446744073709551557),  # the largest 64-bit prime
    (4294967291 * 4294967291, 4294967291),  # the largest 32-bit prime, squared
    (2147483647 * 4294967291, 4294967291),  # a semiprime of two ~32-bit primes
    (149491 * 747451 * 34233211, 34233211),  # a strong pseudoprime to bases 2..31
    (1462370954730, 398311),  # the tutorial's example
    (561, 17),  # the first Carmichael number
    (2, 2),
]

DEFAULT_RANGE = (1_250_000_000_000, 2_500_000_000_000)
SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin: these bases decide every n < 3.3e24."""
    if n < 2:
        return False
    for p in SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in SMALL_PRIMES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def is_largest_prime_factor(n: int, p: int) -> bool:
    """Whether p is the largest prime factor of n, without factoring n again.

    p must divide n and be prime, and n / p must have no prime factor above
    p. The trial division of the cofactor stops at min(p, sqrt(cofactor)),
    so it costs at most about n^(1/3) steps.
    """
    if p < 2 or n % p or not is_prime(p):
        return False
    m, d = n // p, 2
    while d * d <= m:
        if d > p:
            return False  # m's smallest factor is at least d > p
        while m % d == 0:
            m //= d
        d += 1 if d == 2 else 2
    return m <= p


def check_hello(response, expected_n=None, expected_p=None):
    """Fails `response` unless it is a correct /api/v1/hello answer."""
    if response.status_code != 200:
        response.failure(f"status {response.status_code}: {response.text[:200]}")
        return
    try:
        body = response.json()
        n, p = body["n"], body["largest_prime_factor"]
        elapsed = body["elapsed_time"]
        message2 = body["message2"]
    except (ValueError, KeyError, TypeError) as error:
        response.failure(f"malformed body ({error!r}): {response.text[:200]}")
        return
    if body.get("message1") != "Hello, world!":
        response.failure(f"message1: {body.get('message1')!r}")
    elif not isinstance(elapsed, float) or elapsed < 0:
        response.failure(f"elapsed_time: {elapsed!r}")
    elif not message2.startswith(f"The largest prime factor of {n} is {p}. Calculation took "):
        response.failure(f"message2: {message2!r}")
    elif expected_n is not None and (n, p) != (expected_n, expected_p):
        response.failure(f"largest prime factor of {expected_n} is {expected_p}, got {p} (n={n})")
    elif expected_n is None and not DEFAULT_RANGE[0] <= n < DEFAULT_RANGE[1]:
        response.failure(f"n={n} is outside the default range")
    elif expected_n is None and not is_largest_prime_factor(n, p):
        response.failure(f"{p} is not the largest prime factor of {n}")
    else:
        response.success()


def auth_headers(environ=os.environ):
    """The Authorization header for KF_API_KEY, if it is set."""
    key = environ.get("KF_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def post_hello(user, body, name, expected_n=None, expected_p=None):
    """POSTs `body` to /api/v1/hello and checks the answer."""
    with user.client.post("/api/v1/hello", json=body, name=name, headers=auth_headers(),
                          catch_response=True) as response:
        check_hello(response, expected_n, expected_p)


class HelloUser(FastHttpUser):
    """The tutorial's workload: factor a random number, back to back."""

    weight = 8
    wait_time = constant(0)

    @task
    def hello(self):
        post_hello(self, {}, "POST /api/v1/hello {}")


class PingUser(FastHttpUser):
    """The cheapest request: what the stack costs without the compute."""

    weight = 1
    wait_time = constant(0)

    @task
    def ping(self):
        with self.client.get("/ping", name="GET /ping", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif response.text.replace(" ", "") != '{"ping":"pong!"}':
                response.failure(f"body {response.text[:100]!r}")
            else:
                response.success()


class RhoUser(FastHttpUser):
    """Clients sending their own numbers, hard ones included, to rho."""

    weight = 1
    wait_time = constant(0)

    @task
    def rho(self):
        n, p = random.choice(RHO_CASES)
        post_hello(self, {"n": n, "algorithm": "rho"}, "POST /api/v1/hello rho", n, p)


class RampTo250(LoadTestShape):
    """The tutorial's chart: users rise steadily to 250, then hold."""

    use_common_options = True

    def __init__(self):
        super().__init__()
        self.users = int(os.environ.get("KF_USERS", "250"))
        self.ramp = float(os.environ.get("KF_RAMP_SECONDS", "60"))
        self.hold = float(os.environ.get("KF_HOLD_SECONDS", "30"))

    def tick(self):
        t = self.get_run_time()
        if t >= self.ramp + self.hold:
            return None
        users = self.users if t >= self.ramp else max(1, round(self.users * t / self.ramp))
        # Spawn rate: reach each step within the next second.
        return users, max(1.0, self.users / max(self.ramp, 1.0) * 2)


if os.environ.get("KF_SHAPE", "on") == "off":
    del RampTo250
