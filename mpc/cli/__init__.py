"""The `smpc` command line: its entry point, the demo and the example data.

    smpc demo | init | keygen | node | submit | status | audit verify | bench | example
"""

from mpc.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
