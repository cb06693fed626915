"""A seeded synthetic card-fraud data set for demos, tests and benchmarks.

    >>> from mpc.cli.datasets import make_fraud
    >>> data = make_fraud(20_000, n_banks=3, seed=0)
    >>> parts = data.horizontal()      # [(X_b, y_b)] per bank: its own customers' rows
    >>> parts = data.vertical()        # [(X_b, y or None)]: columns of the same aligned rows

Each row is one card transaction. Labels are drawn first (fraud with probability
`fraud_rate`, default 2%), then the features class-conditionally, with overlapping
distributions so that no single feature separates the classes:

  log_amount    log(1 + amount); amounts are log-normal with a Pareto tail (heavy-tailed;
                fraud skews larger)
  hour_sin, hour_cos   time of day on the circle (legitimate traffic peaks mid-day, fraud
                at night)
  cat_online, cat_travel, cat_electronics   merchant category indicators (8 categories
                with different fraud base rates; the integer category is `merchant`, a
                public group key for per-category aggregates)
  vel_1h, vel_24h   transactions of the same card in the last hour / day (velocity)
  cp_seen_<bank>    how often the transaction's counterparty account was seen at each
                bank in the last week. Fraud counterparties are mule accounts active at
                several banks at once: each bank alone sees a weak signal, the sum over
                banks a strong one. This is the signal that only appears when banks combine
                their data.

Partitions:
  horizontal(): bank b holds the rows of its own customers (home_bank == b), with the
      transaction features and cp_seen at bank b (what one bank knows about its rows).
  vertical(): every bank holds the same aligned rows (a shared transaction id); bank 0
      (the card issuer) holds the transaction features, y and its cp_seen column, bank
      j > 0 holds only cp_seen at bank j.
All randomness comes from numpy's Generator seeded by `seed` (synthetic data, not secrets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TXN_FEATURES = ("log_amount", "hour_sin", "hour_cos", "cat_online", "cat_travel",
                "cat_electronics", "vel_1h", "vel_24h")
#: merchant categories: (name, share of legitimate traffic, share of fraud)
CATEGORIES = (
    ("grocery", 0.25, 0.04), ("restaurants", 0.15, 0.04), ("fuel", 0.10, 0.06),
    ("online", 0.20, 0.38), ("travel", 0.06, 0.16), ("electronics", 0.06, 0.22),
    ("pharmacy", 0.08, 0.04), ("other", 0.10, 0.06),
)


@dataclass
class FraudData:
    X_txn: np.ndarray  # (N, 8) transaction features, TXN_FEATURES
    cp_seen: np.ndarray  # (N, n_banks) counterparty sightings per bank
    y: np.ndarray  # (N,) 0/1
    merchant: np.ndarray  # (N,) category index into CATEGORIES
    home_bank: np.ndarray  # (N,) the bank whose customer made the transaction
    n_banks: int

    @property
    def feature_names(self) -> list[str]:
        return [*TXN_FEATURES, *(f"cp_seen_{b}" for b in range(self.n_banks))]

    @property
    def X(self) -> np.ndarray:
        """All columns side by side (the vertical union)."""
        return np.hstack([self.X_txn, self.cp_seen])

    def X_home(self) -> np.ndarray:
        """Transaction features plus the home bank's cp_seen (the horizontal view)."""
        own = self.cp_seen[np.arange(len(self.y)), self.home_bank]
        return np.hstack([self.X_txn, own[:, None]])

    def horizontal(self) -> list[tuple[np.ndarray, np.ndarray]]:
        Xh = self.X_home()
        return [(Xh[self.home_bank == b], self.y[self.home_bank == b]) for b in range(self.n_banks)]

    def horizontal_order(self) -> np.ndarray:
        """Row indices in the order a horizontal secure run concatenates them (bank 0's rows,
        then bank 1's, ...)."""
        return np.concatenate([np.flatnonzero(self.home_bank == b) for b in range(self.n_banks)])

    def vertical(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        first = np.hstack([self.X_txn, self.cp_seen[:, :1]])
        rest = [(self.cp_seen[:, b : b + 1], None) for b in range(1, self.n_banks)]
        return [(first, self.y), *rest]

    def vertical_columns(self) -> np.ndarray:
        """X with the columns in the order of the vertical parts (bank 0's, then bank 1's...)."""
        return np.hstack([self.X_txn, self.cp_seen])


def make_fraud(
    n_samples: int = 20_000, *, n_banks: int = 3, fraud_rate: float = 0.02, seed: int = 0
) -> FraudData:
    """Generate the data set described in the module docstring (fraud_rate in [0.01, 0.03]
    is the realistic range; any value in (0, 0.5) works)."""
    if n_banks < 2:
        raise ValueError("need at least two banks")
    if not 0 < fraud_rate < 0.5:
        raise ValueError("fraud_rate must be in (0, 0.5)")
    rng = np.random.default_rng(seed)
    N = int(n_samples)
    y = (rng.random(N) < fraud_rate).astype(np.int64)
    fr = y == 1
    # amounts: log-normal body, Pareto tail for 3% of transactions
    amount = np.where(fr, rng.lognormal(4.0, 1.3, N), rng.lognormal(3.4, 1.1, N))
    tail = rng.random(N) < 0.03
    amount = np.where(tail, amount * (1 + rng.pareto(1.5, N)), amount)
    # hour of day: legit around 13h, fraud around 2h, both wide
    hour = np.where(fr, rng.normal(2.0, 5.0, N), rng.normal(13.0, 4.5, N)) % 24
    ang = 2 * np.pi * hour / 24
    legit_p = np.array([c[1] for c in CATEGORIES])
    fraud_p = np.array([c[2] for c in CATEGORIES])
    merchant = np.where(
        fr, rng.choice(len(CATEGORIES), N, p=fraud_p), rng.choice(len(CATEGORIES), N, p=legit_p / legit_p.sum())
    )
    vel_1h = rng.poisson(np.where(fr, 1.2, 0.3))
    vel_24h = vel_1h + rng.poisson(np.where(fr, 3.0, 1.5))
    # counterparty sightings: mules active at several banks, each bank sees few of them
    active = rng.random((N, n_banks)) < np.where(fr, 0.7, 0.35)[:, None]
    rate = np.where(fr, 1.6, 1.0)[:, None]
    cp_seen = (active * rng.poisson(rate, (N, n_banks))).astype(np.float64)
    names = [c[0] for c in CATEGORIES]
    X_txn = np.column_stack([
        np.log1p(amount), np.sin(ang), np.cos(ang),
        merchant == names.index("online"), merchant == names.index("travel"),
        merchant == names.index("electronics"), vel_1h, vel_24h,
    ]).astype(np.float64)
    home = rng.integers(0, n_banks, N)
    return FraudData(X_txn, cp_seen, y, merchant.astype(np.int64), home, n_banks)


__all__ = ["CATEGORIES", "TXN_FEATURES", "FraudData", "make_fraud"]
