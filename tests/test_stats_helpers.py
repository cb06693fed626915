import itertools

from stats_helpers import vote


def test_vote_equals_the_full_count_and_stops_once_decided():
    for outcome in itertools.product([False, True], repeat=3):
        seen = []

        def trial(i, outcome=outcome, seen=seen):
            seen.append(i)
            return outcome[i]

        assert vote(trial, range(3)) == (sum(outcome) >= 2)
        # the third trial runs only when the first two disagree
        assert len(seen) == (3 if outcome[0] != outcome[1] else 2)
