"""Arithmetic domains: Z_2^64 (`Ring64`) and prime fields, plus fixed-point encoding."""

from protocols.arith.domain import Domain, PrimeField
from protocols.arith.ring import Ring64

__all__ = ["Domain", "PrimeField", "Ring64"]
