# /// farm
# name = "cpu_intensive"
# description = "Pure-Python integer and float work: longest Collatz chain below 100,000 and pi by midpoint rule"
# packages = []
# repeatable = true
# ///
import math
import time

LIMIT = 100_000
STEPS = 1_000_000


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


start = time.perf_counter()
best = max(range(1, LIMIT), key=collatz_steps)
collatz_ms = (time.perf_counter() - start) * 1000

start = time.perf_counter()
width = 1.0 / STEPS
pi = width * sum(4.0 / (1.0 + ((i + 0.5) * width) ** 2) for i in range(STEPS))
pi_ms = (time.perf_counter() - start) * 1000

# The midpoint rule's error here is about 1e-12: anything larger means wrong arithmetic.
assert abs(pi - math.pi) < 1e-9, pi
print(f"longest Collatz chain below {LIMIT}: start {best}, {collatz_steps(best)} steps")
print(f"pi by midpoint rule with {STEPS} steps: {pi:.12f}")
print(f"FARM_TIMING collatz {collatz_ms:.3f}")
print(f"FARM_TIMING pi {pi_ms:.3f}")
