"""Prime fields GF(p): vectorised numpy for the Mersenne primes 2^61 - 1 and 2^127 - 1,
gmpy2 object arrays for any other prime.

The Mersenne primes make reduction cheap: for p = 2^k - 1 we have 2^k = 1 (mod p), so a
number v = hi * 2^k + lo is congruent to hi + lo, and a product can be reduced with shifts,
masks and adds instead of a division (the Mersenne / special-form reduction: Crandall, US
patent 5,159,632 (1992); Knuth, TAOCP vol. 2, sec. 4.3.2 on arithmetic modulo 2^e - 1).
Multiplying a canonical element by 2^r is therefore a rotation of its k
bits, which `matmul` and `sum` use to recombine limbs.

numpy has no 64 x 64 -> 128-bit multiply, so products are formed from limbs whose partial
products fit in a uint64 (numpy's uint64 multiply wraps mod 2^64; every partial product here is
provably below 2^64, the bounds are written next to each step). Nothing on the hot path uses
`%`: a value below 2p is made canonical with a conditional subtract written as
`minimum(v, v - p)` in wrapping uint64 arithmetic (if v < p, v - p wraps to something >= 2^64 - p
> v).

Scratch buffers: `Mersenne61.mul` and `Mersenne127.mul` work on cache-sized blocks with scratch
arrays that are allocated once per thread and reused across calls, so a long multiplication
allocates nothing but its output.
"""

from __future__ import annotations

from protocols.arith._fieldops import M61, M127
from protocols.arith._m127_numpy import DT127
from protocols.arith.domain import PrimeField
from protocols.arith.gmpy_field import GmpyField
from protocols.arith.mersenne61 import Mersenne61
from protocols.arith.mersenne127 import Mersenne127

__all__ = ["DT127", "GmpyField", "Mersenne61", "Mersenne127", "field_for", "M61", "M127"]


def field_for(p: int) -> PrimeField:
    """The fastest implementation of GF(p): Mersenne61 for 2^61 - 1, Mersenne127 for
    2^127 - 1, GmpyField otherwise (ParameterError if p is not a prime > 2)."""
    p = int(p)
    if p == M61:
        return Mersenne61()
    if p == M127:
        return Mersenne127()
    return GmpyField(p)
