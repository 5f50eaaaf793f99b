"""The Python original's equivalent, for `make bench` to measure beside the stack.

What the tutorial's service does, written here (not copied) at the original's
major versions (tools/requirements-original.txt): FastAPI with pydantic 1,
served by plain uvicorn, one worker, no uvloop or httptools, as the original's
Dockerfile runs it. The same paths and fields as this repository's API:

    GET  /ping           {"ping": "pong!"}
    POST /api/v1/hello   an empty model in; a random n from the original's
                         range [1_250_000_000_000, 2_500_000_000_000), its
                         largest prime factor by the original's loop (trial
                         division by every i while i <= n / i), and the time
                         it took

Both endpoints are plain `def`, as in the original, so FastAPI runs them in
its thread pool. Run: `uvicorn app:app --app-dir tools/original --port 8000`.
"""

import random
import time

from fastapi import FastAPI
from pydantic import BaseModel

MAX_RANGE = 2_500_000_000_000

app = FastAPI(title="kf-api (the Python original's equivalent)")


class MessageInput(BaseModel):
    """The original takes a JSON object and uses none of it."""


class MessageOutput(BaseModel):
    message1: str
    message2: str
    n: int
    largest_prime_factor: int
    elapsed_time: float


def largest_prime_factor(n: int) -> int:
    """Trial division by every integer from 2, dividing each factor out.

    The original's loop, float division included (`n / i`, then `n /= i`
    makes n a float): the same work, so the same CPU per request.
    """
    factor = 1
    i = 2
    while i <= n / i:
        if n % i == 0:
            factor = i
            n /= i
        else:
            i += 1
    if factor < n:
        factor = n
    return int(factor)


@app.post("/api/v1/hello", response_model=MessageOutput)
def hello(inputs: MessageInput):
    n = int(random.uniform(MAX_RANGE // 2, MAX_RANGE))
    start = time.time()
    factor = largest_prime_factor(n)
    elapsed = time.time() - start
    return {
        "message1": "Hello, world!",
        "message2": f"The largest prime factor of {n} is {factor}. "
        f"Calculation took {elapsed:0.3f} seconds.",
        "n": n,
        "largest_prime_factor": factor,
        "elapsed_time": elapsed,
    }


@app.get("/ping")
def ping():
    return {"ping": "pong!"}
