"""Benchmarks of the GF(p) hot paths: elementwise mul (the core of Shamir Beaver
multiplication) and matmul. Run: pytest benchmarks/test_bench_field.py --benchmark-only

`extra_info` records elements and ns/element so the JSON output (--benchmark-json) carries
throughput, not only seconds.
"""

from __future__ import annotations

import pytest

from protocols.arith.field import GmpyField, Mersenne61, Mersenne127
from protocols.prg import CryptoRNG

N = 10**6


def _per_elem(benchmark, n: int) -> None:
    benchmark.extra_info["elements"] = n
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats is not None:
        benchmark.extra_info["ns_per_element_median"] = stats.median * 1e9 / n


@pytest.mark.parametrize("field", [Mersenne61(), Mersenne127()], ids=["m61", "m127"])
def test_bench_mul_1e6(benchmark, field):
    rng = CryptoRNG.from_seed(1)
    x, y = field.random(rng, (N,)), field.random(rng, (N,))
    out = field.zeros((N,))
    benchmark(field.mul, x, y, out)
    _per_elem(benchmark, N)
    assert field.to_int(out[:3]).tolist() == ((field.to_int(x[:3]) * field.to_int(y[:3])) % field.modulus).tolist()


@pytest.mark.parametrize("op", ["add", "sub"])
def test_bench_m61_addsub_1e6(benchmark, op):
    f = Mersenne61()
    rng = CryptoRNG.from_seed(2)
    x, y = f.random(rng, (N,)), f.random(rng, (N,))
    out = f.zeros((N,))
    benchmark(getattr(f, op), x, y, out)
    _per_elem(benchmark, N)


def test_bench_gmpy256_mul_1e4(benchmark):
    f = GmpyField(2**256 - 189)
    rng = CryptoRNG.from_seed(3)
    n = 10**4
    x, y = f.random(rng, (n,)), f.random(rng, (n,))
    benchmark(f.mul, x, y)
    _per_elem(benchmark, n)


def test_bench_m61_matmul(benchmark):
    """(10^4 x 100) @ (100 x 10), the shape of a linear-model gradient step."""
    f = Mersenne61()
    rng = CryptoRNG.from_seed(4)
    a, b = f.random(rng, (10**4, 100)), f.random(rng, (100, 10))
    r = benchmark(f.matmul, a, b)
    assert r.shape == (10**4, 10)


def test_bench_m127_matmul(benchmark):
    f = Mersenne127()
    rng = CryptoRNG.from_seed(5)
    a, b = f.random(rng, (10**4, 100)), f.random(rng, (100, 10))
    r = benchmark.pedantic(f.matmul, (a, b), rounds=3, iterations=1)
    assert r.shape == (10**4, 10)


@pytest.mark.parametrize("field", [Mersenne61(), Mersenne127()], ids=["m61", "m127"])
def test_bench_batch_inv_1e5(benchmark, field):
    rng = CryptoRNG.from_seed(6)
    x = field.random(rng, (10**5,))  # fixed seed: no zero (checked by batch_inv itself)
    benchmark.pedantic(field.batch_inv, (x,), rounds=3, iterations=1)
    _per_elem(benchmark, 10**5)
