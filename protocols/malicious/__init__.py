"""Malicious security with abort (`Session.security == "malicious"`).

`chida18`: Shamir sharing with an honest majority (t < n/2), the compiler of Chida, Genkin,
Hamada, Ikarashi, Kikuchi, Lindell and Nof (CRYPTO 2018): every value travels as the pair
([x], [r*x]) (an `MShare`), and one batched check runs before anything is revealed.
`fixed`: checked random bits, truncation (masks preprocessed by `prepare_trunc`), fixed_mul.
`compare`: ltz, lt, eqz, eq, select, relu (Catrina-de Hoogh on checked bits; masks
preprocessed by `prepare_compare`).
"""

from protocols.malicious.chida18 import (
    MIN_FIELD_BITS,
    InputRangeCheatingError,
    MShare,
    authenticate,
    input,
    input_many,
    input_unchecked,
    matmul,
    mul,
    open,
    range_bits,
    refresh,
    reveal_to,
    verify,
    verify_inputs,
)
from protocols.malicious.compare import eq, eqz, lt, ltz, prepare_compare, relu, select
from protocols.malicious.fixed import fixed_mul, prepare_trunc, prepared, random, random_bits, trunc

__all__ = [
    "MIN_FIELD_BITS", "InputRangeCheatingError", "MShare", "authenticate", "eq", "eqz", "fixed_mul", "input",
    "input_many", "input_unchecked", "lt", "range_bits", "verify_inputs", "ltz", "matmul", "mul",
    "open", "prepare_compare", "prepare_trunc", "prepared", "random", "random_bits", "refresh",
    "relu", "reveal_to", "select", "trunc", "verify",
]
