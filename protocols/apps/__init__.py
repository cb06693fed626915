"""Applications built on the primitives: regression training (ml/), fraud scoring (fraud.py)
and released aggregates (aggregate.py)."""
