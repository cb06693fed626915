#!/usr/bin/env bash
# Re-measure every results table of benchmarks/README.md: the JSON lines go to
# benchmarks/results/<table>.jsonl and each table is rewritten in place between its
# `<!-- results:<table> -->` and `<!-- /results:<table> -->` markers.
#
#   bash benchmarks/regenerate.sh            # all tables (about 8 minutes on 2 cores)
#   bash benchmarks/regenerate.sh e2e mpyc   # some of them: mul, e2e, mpyc
#   bash benchmarks/regenerate.sh --render   # only rewrite the tables from the stored JSON
#
# Needs the Mosquitto broker on 127.0.0.1:1883 (mul table) and MPyC (`pip install -e
# .[compare]`, mpyc table). `smpc bench` exits non-zero on a wrong result or a cost-model
# difference, which stops this script: no table is written from a bad measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"

render_only=0
tables=()
for a in "$@"; do
    if [[ $a == --render ]]; then render_only=1; else tables+=("$a"); fi
done
[[ ${#tables[@]} -eq 0 ]] && tables=(mul e2e mpyc)

measure_mul() {  # Beaver mul of 10^6 elements over every transport
    : >"$out/mul.jsonl"
    for t in "tcp --processes" "mqtt --processes" "memory" "tcp" "mqtt"; do
        # shellcheck disable=SC2086
        smpc bench --json --op mul --size 1000000 --parties 3 --repeat 5 --transport $t >>"$out/mul.jsonl"
    done
}

measure_e2e() {  # issue 6's training workload and fraud scoring at 10^5 transactions
    : >"$out/e2e.jsonl"
    for t in "tcp --processes" "memory"; do
        # shellcheck disable=SC2086
        smpc bench --json --op logistic_regression --size 10000 --epochs 10 --repeat 3 --transport $t >>"$out/e2e.jsonl"
        # shellcheck disable=SC2086
        smpc bench --json --op fraud_score --size 100000 --repeat 3 --transport $t >>"$out/e2e.jsonl"
    done
}

measure_mpyc() {  # the same workloads in MPyC 0.11, 3 parties as processes on loopback
    local o="--json --transport tcp --processes --repeat 3 --compare mpyc"
    : >"$out/mpyc.jsonl"
    # shellcheck disable=SC2086
    {
        smpc bench $o --op mul inner --size 10000 100000 1000000
        smpc bench $o --op fixed_mul --size 10000 100000
        smpc bench $o --op compare --size 1000 10000
        smpc bench $o --op reciprocal --size 1000
        smpc bench $o --op logistic_regression --size 1000 --epochs 1
    } >>"$out/mpyc.jsonl"
}

if [[ $render_only == 0 ]]; then
    for t in "${tables[@]}"; do
        echo "measuring: $t" >&2
        "measure_$t"
    done
fi

python - "$out" "${tables[@]}" <<'EOF'
"""Rewrite the README's tables from the JSON lines (numbers as measured, 3 significant digits)."""
import json
import re
import sys

out, tables = sys.argv[1], sys.argv[2:]
readme = "benchmarks/README.md"


def g(v, digits=3):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    e = f"{v:.{digits - 1}e}"
    m, x = e.split("e")
    x = int(x)
    return f"{float(e):.{max(0, digits - 1 - x)}f}" if -3 <= x < 4 else f"{m} x 10^{x}"


def where(r):
    tr = {"tcp": "tcp (Noise KK)", "mqtt": "mqtt (Mosquitto)", "memory": "memory"}[r["transport"]]
    return tr, "separate processes" if r["processes"] else "one process"


def mul(rs):
    rows = ["| transport | parties as | seconds | mul/s | offline s | rounds | bytes/party | correct |",
            "|---|---|---|---|---|---|---|---|"]
    for r in rs:
        rows.append(f"| {' | '.join(where(r))} | {g(r['seconds'])} | {g(r['ops_per_s'], 2)} | "
                    f"{g(r['offline_seconds'], 2)} | {r['rounds']} | {r['bytes_per_party']:,} | "
                    f"{r['correct']} |".replace(",", " "))
    return rows


def e2e(rs):
    rows = ["| job | size | parties as | online s | rows/s or txn/s | offline s | rounds | "
            "bytes/party | accuracy (float64) | check |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        if r["op"] == "logistic_regression":
            job = f"logistic_regression, {r['epochs']} epochs"
            chk = f"diff {r['accuracy_diff']:+.4f}, max coef diff {g(r['max_coef_diff'], 2)}"
        else:
            job = "fraud_score"
            chk = (f"{r['flag_mismatches']} flag mismatches ({r['flagged']} flagged), "
                   f"max score error {g(r['max_abs_error'], 2)}")
        rows.append(f"| {job} | {r['size']:,} | {where(r)[0]}, {where(r)[1]} | {g(r['seconds'])} | "
                    f"{g(r['ops_per_s'], 2)} | {g(r['offline_seconds'], 2)} | {r['rounds']} | "
                    f"{r['bytes_per_party']:,} | {r['accuracy']:.4f} ({r['float_accuracy']:.4f}) | "
                    f"{chk} |".replace(",", " ").replace("  ", " "))
    return rows


def mpyc(rs):
    rows = ["| op | size | smpc s | smpc ops/s | MPyC s | MPyC ops/s | smpc / MPyC |",
            "|---|---|---|---|---|---|---|"]
    for r in rs:
        m = r.get("mpyc") or {}
        op = r["op"] + (f" ({r['epochs']} epoch)" if r["op"] == "logistic_regression" else "")
        ratio = g(r.get("ratio_vs_mpyc"), 2) if m.get("correct") else f"MPyC: {m.get('error', '?')}"
        rows.append(f"| {op} | {g(r['size'], 1)} | {g(r['seconds'])} | {g(r['ops_per_s'], 2)} | "
                    f"{g(m.get('seconds'))} | {g(m.get('ops_per_s'), 2)} | {ratio} |")
    return rows


text = open(readme).read()
for t in tables:
    recs = [json.loads(x) for x in open(f"{out}/{t}.jsonl") if x.strip()]
    bad = [r for r in recs if not r["correct"] or r["cost_model_ok"] is False]
    if bad:
        sys.exit(f"{t}: {len(bad)} measurement(s) not correct / off the cost model; table not written")
    body = "\n".join({"mul": mul, "e2e": e2e, "mpyc": mpyc}[t](recs))
    pat = re.compile(rf"(<!-- results:{t} -->\n)(?:.*?\n)?(<!-- /results:{t} -->)", re.S)
    if not pat.search(text):
        sys.exit(f"README has no <!-- results:{t} --> markers")
    text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    print(f"{readme}: table {t} rewritten from {len(recs)} measurements", file=sys.stderr)
open(readme, "w").write(text)
EOF
