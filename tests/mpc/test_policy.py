import pytest

from mpc.node import codes
from mpc.node.config import load_config
from mpc.node.consortium import write_consortium
from mpc.node.jobs import REGISTRY, JobParameterError
from mpc.node.manifest import generate_signing_key, load_signing_key, sign_manifest
from mpc.node.policy import PolicyError, check_manifest, check_rows


@pytest.fixture
def setup(tmp_path):
    r = write_consortium(tmp_path, 3, computations=["aggregate_sum"], min_group_size=5,
                         max_rows=100,
                         sources={i: {"tx": {"kind": "csv", "path": "tx.csv"}} for i in range(3)})
    return load_config(r["configs"][0]), load_signing_key(r["analyst_key"])


def _body(**kw):
    b = {"computation": "aggregate_sum", "idempotency_key": "k", "recipients": ["analyst"],
         "inputs": {f"bank{i}": {"source": "tx", "columns": ["a"]} for i in range(3)},
         "consortium": "demo", "not_after": 4102444800}
    b.update(kw)
    return b


def test_allowed_manifest_passes(setup):
    cfg, key = setup
    check_manifest(sign_manifest(_body(), key), cfg, REGISTRY)


@pytest.mark.parametrize("kw,code", [
    ({"computation": "aggregate_mean"}, codes.POLICY_COMPUTATION),
    ({"computation": "teleport"}, codes.POLICY_UNKNOWN_COMPUTATION),
    ({"recipients": ["mallory"]}, codes.POLICY_RECIPIENT),
    ({"consortium": "other"}, codes.POLICY_CONSORTIUM),
    ({"inputs": {"bank0": {"source": "nope", "columns": ["a"]}}}, codes.SOURCE_UNKNOWN),
    ({"inputs": {"bank9": {"source": "tx", "columns": ["a"]}}}, codes.POLICY_PARTY),
])
def test_refusals_have_codes(setup, kw, code):
    cfg, key = setup
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(_body(**kw), key), cfg, REGISTRY)
    assert e.value.code == code


def test_unknown_analyst(setup):
    cfg, _ = setup
    stranger, _ = generate_signing_key()
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(_body(), stranger), cfg, REGISTRY)
    assert e.value.code == codes.POLICY_ANALYST


def test_parameters_and_widths_checked(setup):
    cfg, key = setup
    with pytest.raises(JobParameterError, match="parameters.bogus"):
        check_manifest(sign_manifest(_body(parameters={"bogus": 1}), key), cfg, REGISTRY)
    inputs = {f"bank{i}": {"source": "tx", "columns": ["a"] * (i + 1)} for i in range(3)}
    with pytest.raises(JobParameterError, match="same number"):
        check_manifest(sign_manifest(_body(inputs=inputs), key), cfg, REGISTRY)


def test_row_limits(setup):
    cfg, _ = setup
    check_rows(50, cfg)
    for rows, code in ((4, codes.POLICY_MIN_GROUP_SIZE), (101, codes.POLICY_MAX_ROWS)):
        with pytest.raises(PolicyError) as e:
            check_rows(rows, cfg)
        assert e.value.code == code


# ---------------------------------------------------------------- issue 13: owners' policy ---
from mpc.node.budget import BudgetLedger  # noqa: E402
from mpc.node.policy import agree_dp, dp_request, model_hash  # noqa: E402

COLS = """
[sources.tx.columns.a]
computations = ["aggregate_sum"]
bounds = [0, 100]
[sources.tx.columns.b]
aggregate_only = true
[sources.tx.columns.c]
"""


@pytest.fixture
def owner(tmp_path):
    r = write_consortium(tmp_path, 3, min_group_size=1,
                         computations=["aggregate_sum", "aggregate_mean", "fraud_score",
                                       "fraud_aggregate"],
                         sources={i: {"tx": {"kind": "csv", "path": "tx.csv"}} for i in range(3)},
                         dp={"epsilon": 1.0, "budget_epsilon": 2.0})
    cfg0 = r["configs"][0]
    text = cfg0.read_text().replace("[policy]\n", "[policy]\n" f'approved_models = ["{"0" * 64}"]\n'
                                    'approved_models_file = "approved.txt"\n', 1)
    cfg0.write_text(text + COLS)
    return load_config(cfg0), load_signing_key(r["analyst_key"]), tmp_path


def _fraud(cols0, **p):
    params = {"owner": "bank0", "coef": [1.0] * (len(cols0) + 1), "threshold": 0.5, **p}
    return {"computation": "fraud_score", "idempotency_key": "f", "recipients": ["bank0"],
            "parameters": params, "inputs": {"bank0": {"source": "tx", "columns": cols0},
                                             "bank1": {"source": "tx", "columns": ["x"]}},
            "consortium": "demo", "not_after": 4102444800}


def test_column_policy(owner):
    cfg, key, _ = owner
    ok = _body(inputs={f"bank{i}": {"source": "tx", "columns": ["a"]} for i in range(3)})
    check_manifest(sign_manifest(ok, key), cfg, REGISTRY)
    for cols, comp in ((["zz"], "aggregate_sum"), (["a"], "aggregate_mean")):
        b = _body(computation=comp,
                  inputs={f"bank{i}": {"source": "tx", "columns": cols} for i in range(3)})
        with pytest.raises(PolicyError) as e:
            check_manifest(sign_manifest(b, key), cfg, REGISTRY)
        # the code is typed; the reason names no column (the log has it)
        assert e.value.code == "policy.column" and f"'{cols[0]}'" not in str(e.value)


def test_dp_needs_bounds_and_caps_epsilon(owner):
    cfg, key, _ = owner
    b = _body(inputs={f"bank{i}": {"source": "tx", "columns": ["c"]} for i in range(3)})
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(b, key), cfg, REGISTRY)
    assert e.value.code == "policy.bounds"
    b = _body(parameters={"epsilon": 5.0},
              inputs={f"bank{i}": {"source": "tx", "columns": ["a"]} for i in range(3)})
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(b, key), cfg, REGISTRY)
    assert e.value.code == "policy.epsilon"
    m = sign_manifest(_body(parameters={"epsilon": 0.5}, inputs={
        f"bank{i}": {"source": "tx", "columns": ["a"]} for i in range(3)}), key)
    req = dp_request(m, cfg)
    assert req == {"epsilon": 0.5, "delta": 0.0, "mechanism": "laplace", "bounds": [[0.0, 100.0]]}
    views = {0: {"dp": req}, 1: {"dp": {**req, "epsilon": 0.3, "bounds": [[0, 5]]}}, 2: {}}
    agreed = agree_dp(views)
    assert agreed["epsilon"] == 0.3 and agreed["mechanism"] == "laplace"
    assert agreed["bounds"] == {0: [[0.0, 100.0]], 1: [[0, 5]]}
    assert agree_dp({0: {"dp": None}, 1: {}}) is None


def test_budget_checked_at_policy(owner):
    cfg, key, d = owner
    led = BudgetLedger(d / "b.db")
    b = _body(inputs={f"bank{i}": {"source": "tx", "columns": ["a"]} for i in range(3)})
    from mpc.node.policy import spend_budget

    for k in ("k1", "k2"):
        m = sign_manifest({**b, "idempotency_key": k}, key)
        check_manifest(m, cfg, REGISTRY, led)
        spend_budget(m, cfg, led, agree_dp({0: {"dp": dp_request(m, cfg)}}))
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest({**b, "idempotency_key": "k3"}, key), cfg, REGISTRY, led)
    assert e.value.code == "policy.budget"
    check_manifest(sign_manifest({**b, "idempotency_key": "k1"}, key), cfg, REGISTRY, led)


def test_fraud_models_approved_by_hash_and_scores_by_policy(owner):
    cfg, key, d = owner
    body = _fraud(["c"])
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(body, key), cfg, REGISTRY)
    assert e.value.code == "policy.model"
    h = model_hash([1.0, 1.0], 0.0, 0.5, True)
    (d / "approved.txt").write_text(f"# approved by the officer\n{h}\n")
    check_manifest(sign_manifest(body, key), cfg, REGISTRY)  # re-read at every job
    # the same model with another threshold is another model
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(_fraud(["c"], threshold=0.6), key), cfg, REGISTRY)
    assert e.value.code == "policy.model"
    with pytest.raises(PolicyError) as e:  # per-row scores: not allowed by default
        check_manifest(sign_manifest(_fraud(["c"], reveal_scores=True), key), cfg, REGISTRY)
    assert e.value.code == "policy.reveal_scores"


def test_aggregate_only_column_never_feeds_per_row_scores(owner):
    cfg, key, d = owner
    import dataclasses

    cfg = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy,
                                                              allow_reveal_scores=True))
    (d / "approved.txt").write_text(model_hash([1.0, 1.0], 0.0, 0.5, True) + "\n")
    check_manifest(sign_manifest(_fraud(["c"], reveal_scores=True), key), cfg, REGISTRY)
    with pytest.raises(PolicyError) as e:
        check_manifest(sign_manifest(_fraud(["b"], reveal_scores=True), key), cfg, REGISTRY)
    assert e.value.code == "policy.reveal_scores"


def test_training_dp_is_asked_by_the_analyst_or_required_by_the_policy(owner):
    """Issue 13: trained coefficients get DP noise when the manifest asks (epsilon) or the
    node's [policy.dp] models = "required"; their feature columns then need bounds; a node
    without [policy.dp] refuses a training job that asks for epsilon."""
    import dataclasses

    cfg, key, _ = owner

    def train(cols, **p):
        return sign_manifest(_body(computation="logistic_regression", parameters=p, inputs={
            f"bank{i}": {"source": "tx", "columns": cols, "label": "c"} for i in range(3)}), key)

    assert dp_request(train(["a"]), cfg) is None  # optional, not asked: no noise
    assert dp_request(train(["a"], epsilon=0.5), cfg) == {
        "epsilon": 0.5, "delta": 0.0, "mechanism": "laplace", "bounds": [[0.0, 100.0]]}
    with pytest.raises(PolicyError) as e:
        dp_request(train(["c"], epsilon=0.5), cfg)  # no bounds for the feature
    assert e.value.code == "policy.bounds"
    req = dataclasses.replace(cfg.policy, dp=dataclasses.replace(cfg.policy.dp, models="required"))
    forced = dataclasses.replace(cfg, policy=req)
    assert dp_request(train(["a"]), forced)["epsilon"] == 1.0  # the policy's per-job epsilon
    none = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, dp=None))
    assert dp_request(train(["a"]), none) is None
    with pytest.raises(PolicyError) as e:
        dp_request(train(["a"], epsilon=0.5), none)
    assert e.value.code == "policy.epsilon"


def test_every_agreed_run_of_a_job_spends_and_a_retry_beyond_the_budget_is_refused(owner):
    """Attack (review2): a failed job may be re-submitted and runs again with FRESH noise on
    the same data (runner: check_manifest, agreement, spend_budget, then load and compute).
    An attempt can fail after its noisy output left (a cheating recipient bank takes its
    reveal of the first output, then drops before the honest recipients got theirs; or a
    timeout in delivery), so each retry is another release. The ledger charged a job id
    once: every retry was free, and k retries averaged the noise down by sqrt(k). Every
    agreed run must be charged, and a run that does not fit is refused before any data is
    read (policy.budget); an idempotent resubmission of the job still passes the policy."""
    from mpc.node.policy import spend_budget

    cfg, key, d = owner  # epsilon 1.0 per job, budget_epsilon 2.0
    led = BudgetLedger(d / "b.db")
    b = _body(inputs={f"bank{i}": {"source": "tx", "columns": ["a"]} for i in range(3)})
    m = sign_manifest({**b, "idempotency_key": "retry"}, key)
    analyst = m.analyst_key.hex()

    def attempt():  # what Runner.run does on this node for one attempt, up to the data
        check_manifest(m, cfg, REGISTRY, led)
        spend_budget(m, cfg, led, agree_dp({0: {"dp": dp_request(m, cfg)}}))

    attempt()  # attempt 1: agreed, spent, then failed after its release
    attempt()  # attempt 2 (the re-submission): fresh noise, so it spends again
    assert led.spent(analyst, "tx").epsilon == pytest.approx(2.0)
    assert led.spent(analyst, "tx").jobs == 2
    with pytest.raises(PolicyError) as e:
        attempt()  # attempt 3 would exceed the budget: refused before anything is computed
    assert e.value.code == "policy.budget"
    assert led.spent(analyst, "tx").epsilon == pytest.approx(2.0)  # the refusal spends nothing
    check_manifest(m, cfg, REGISTRY, led)  # resubmitting a done job: its stored record (T18)


@pytest.mark.parametrize("bad", [
    {"epsilon": float("nan")}, {"epsilon": -1.0}, {"epsilon": True}, {"epsilon": "1"},
    {"delta": float("nan")}, {"delta": 1.5}, {"mechanism": "none"},
    {"bounds": [[0, float("nan")]]}, {"bounds": [[5, 1]]}, {"bounds": "x"},
])
def test_a_peers_malformed_dp_terms_end_the_agreement_typed(bad):
    """review2: agree_dp took the peers' DP terms as sent. A cheating bank that is party 0
    and sends epsilon NaN made the agreed epsilon NaN (min() keeps a leading NaN): its cost
    was stored as NULL (spending nothing) and the sampler failed with an untyped ValueError;
    a negative epsilon or delta >= 1 failed later, untyped. Every term is validated at the
    agreement: agreement.malformed, before anything is spent or read."""
    good = {"epsilon": 1.0, "delta": 0.0, "mechanism": "laplace", "bounds": [[0.0, 100.0]]}
    with pytest.raises(PolicyError) as e:
        agree_dp({0: {"dp": {**good, **bad}}, 1: {"dp": good}, 2: {"dp": good}})
    assert e.value.code == codes.AGREEMENT_MALFORMED
    assert agree_dp({0: {"dp": good}, 1: {"dp": {**good, "epsilon": 0.5}}, 2: {}})["epsilon"] == 0.5


def test_dp_training_settings_outside_the_analysis_are_refused_at_submission(owner):
    """review2: a DP training job whose settings the sensitivity analysis does not cover (lr
    <= 0, another schedule, the closed form, class weights) was refused only when it ran,
    after every node had charged its epsilon; now check_manifest refuses it (job.parameters)
    before anything is queued or spent. The same settings without DP pass."""
    import dataclasses

    from mpc.node.config import load_config
    from mpc.node.jobs import JobParameterError

    _, key, tmp = owner
    path = next(f for f in tmp.rglob("*.toml") if "[sources.tx.columns.a]" in f.read_text())
    path.write_text(path.read_text() + "[sources.tx.columns.d]\nbounds = [-1, 1]\n")
    cfg = load_config(path)
    pol = dataclasses.replace(cfg.policy, allowed_computations=(
        *cfg.policy.allowed_computations, "logistic_regression"))
    cfg = dataclasses.replace(cfg, policy=pol)

    def train(**p):
        return sign_manifest(_body(computation="logistic_regression", parameters=p, inputs={
            f"bank{i}": {"source": "tx", "columns": ["d"], "label": "c"} for i in range(3)}), key)

    check_manifest(train(epsilon=0.5, lr=0.5), cfg, REGISTRY)
    for bad in ({"lr": -0.5}, {"lr": 0.0}, {"schedule": "epoch_decay"},
                {"class_weight": "balanced"}, {"solver": "closed"}, {"standardize": True}):
        with pytest.raises(JobParameterError) as e:
            check_manifest(train(epsilon=0.5, **bad), cfg, REGISTRY)
        assert e.value.code == "job.parameters"
        check_manifest(train(**bad), cfg, REGISTRY)  # without DP: not this check's business
