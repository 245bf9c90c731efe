# /// farm
# name = "primes"
# description = "Count primes below 30,000 by trial division (CPU-bound, pure Python)"
# packages = []
# repeatable = true
# ///
import time

LIMIT = 30_000


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    divisor = 2
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 1
    return True


start = time.perf_counter()
count = sum(1 for n in range(LIMIT) if is_prime(n))
elapsed_ms = (time.perf_counter() - start) * 1000
assert count == 3245, count
print(f"primes below {LIMIT}: {count}")
print(f"FARM_TIMING compute {elapsed_ms:.3f}")
