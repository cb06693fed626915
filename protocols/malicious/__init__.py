"""Malicious security with abort (`Session.security == "malicious"`).

`chida18`: Shamir sharing with an honest majority (t < n/2), the compiler of Chida, Genkin,
Hamada, Ikarashi, Kikuchi, Lindell and Nof (CRYPTO 2018): every value travels as the pair
([x], [r*x]) (an `MShare`), and one batched check runs before anything is revealed.
"""

from protocols.malicious.chida18 import (
    MIN_FIELD_BITS,
    MShare,
    input,
    matmul,
    mul,
    open,
    refresh,
    reveal_to,
    verify,
)
from protocols.malicious.fixed import fixed_mul, prepare_trunc, prepared, random, random_bits, trunc

__all__ = [
    "MIN_FIELD_BITS", "MShare", "fixed_mul", "input", "matmul", "mul", "open", "prepare_trunc", "prepared", "random",
    "random_bits", "refresh", "reveal_to", "trunc", "verify",
]
