"""Correlated randomness for the online phase: the interface and its sources."""

from protocols.preprocessing.base import Preprocessing
from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer

__all__ = ["InsecureTrustedDealer", "Preprocessing"]
