"""How `smpc bench` shows its measurements: the table (measured next to predicted) and the
--plot figure."""

from __future__ import annotations

import sys

_COLS = ("op", "size", "n", "lat s", "seconds", "ops/s", "offline s", "rounds (model)",
         "bytes/party (model)", "ok")
_CMP_COLS = ("mpyc s", "mpyc ops/s", "smpc/mpyc", "smpc/mpyc e2e")


def _row(r: dict, compare: bool) -> list[str]:
    secs = f"{r['seconds']:.4g}" if r["seconds"] is not None else "ERROR"
    ops = f"{r['ops_per_s']:.3g}" if r["ops_per_s"] is not None else "-"
    flag = " !" if r["cost_model_ok"] is False or not r.get("counts_stable", True) else ""

    def pr(k):
        return "-" if r[k] is None else r[k]

    row = [
        r["op"], str(r["size"]), str(r["parties"]), f"{r['latency']:g}", secs, ops,
        f"{r['offline_seconds']:.3g}",
        f"{r['rounds']} ({pr('predicted_rounds')}){flag}",
        f"{r['bytes_per_party']} ({pr('predicted_bytes_per_party')}){flag}",
        "yes" if r["correct"] else "NO",
    ]
    if compare:
        m = r.get("mpyc") or {}
        if m.get("seconds"):
            e2e = r.get("ratio_vs_mpyc_end_to_end")
            row += [f"{m['seconds']:.4g}", f"{m['ops_per_s']:.3g}", f"{r['ratio_vs_mpyc']:.3g}x",
                    f"{e2e:.3g}x" if e2e else "-"]
        else:
            row += ["-", "-", m.get("error", "n/a")[:40], "-"]
    return row


def plot(recs: list[dict], path: str) -> None:
    """Three panels from the run's measurements: throughput against size (one line per op
    and party count), throughput against parties (per op, at its largest size) and online
    time against one-way latency (per op and size). A panel with one x value only says so.
    MPyC's figures (with --compare mpyc) are drawn dashed in the first panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in recs if r["seconds"] is not None]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
    r0 = recs[0] if recs else {"scheme": "?", "transport": "?", "processes": False}
    where = "separate processes" if r0["processes"] else "one process"
    fig.suptitle(f"smpc bench: {r0['scheme']} sharing, {r0['transport']} ({where}); online "
                 "phase, median of repeats", fontsize=11)
    lat0 = min((r["latency"] for r in ok), default=0.0)
    big = {}
    for r in ok:
        big[r["op"]] = max(big.get(r["op"], 0), r["size"])

    def lines(ax, key, xkey, ykey, label, **kw):
        groups: dict = {}
        for r in ok:
            groups.setdefault(key(r), []).append(r)
        drawn = False
        for k, rs in sorted(groups.items()):
            pts = sorted({r[xkey]: ykey(r) for r in rs if ykey(r) is not None}.items())
            if len(pts) < 2:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label(k), **kw)
            drawn = True
        return drawn

    ax = axes[0]  # at the lowest latency of the run
    d1 = lines(ax, lambda r: (r["op"], r["parties"]), "size",
               lambda r: r["ops_per_s"] if r["latency"] == lat0 else None,
               lambda k: f"smpc {k[0]} n={k[1]}")
    lines(ax, lambda r: (r["op"], r["parties"]), "size",
          lambda r: (r.get("mpyc") or {}).get("ops_per_s") if r["latency"] == lat0 else None,
          lambda k: f"MPyC {k[0]} n={k[1]}", linestyle="--")
    ax.set(xscale="log", yscale="log", xlabel="size (elements)", ylabel="ops / s (online)",
           title=f"throughput vs size (latency {lat0:g} s)")
    ax = axes[1]  # largest size of each op, lowest latency
    d2 = lines(ax, lambda r: (r["op"], r["size"]), "parties",
               lambda r: r["ops_per_s"] if r["size"] == big[r["op"]] and r["latency"] == lat0 else None,
               lambda k: f"{k[0]} size {k[1]}")
    ax.set(yscale="log", xlabel="parties", ylabel="ops / s (online)",
           title=f"throughput vs parties (latency {lat0:g} s)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax = axes[2]  # largest size of each op
    d3 = lines(ax, lambda r: (r["op"], r["size"], r["parties"]), "latency",
               lambda r: r["seconds"] if r["size"] == big[r["op"]] else None,
               lambda k: f"{k[0]} size {k[1]} n={k[2]} ({_rounds_of(ok, k[0])} rounds)")
    ax.set(xlabel="one-way latency (s)", ylabel="online seconds (median)", title="time vs latency")
    for ax, drawn, flag in zip(axes, (d1, d2, d3), ("--size", "--parties", "--latency"), strict=True):
        if drawn:
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
        else:
            ax.text(0.5, 0.5, f"give {flag} several values\nto draw this panel",
                    ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rounds_of(recs, op) -> int:
    return next((r["rounds"] for r in recs if r["op"] == op), 0)


def print_table(recs: list[dict], *, compare: bool = False, file=None) -> None:
    file = file or sys.stdout
    r0 = recs[0]
    print(f"{r0['scheme']} sharing; network: {r0['network']}", file=file)
    print(f"median of {r0['repeat']} runs after a warm-up; online time; "
          "(model) = cost-model prediction (- = not modelled), ! = differs", file=file)
    cols = _COLS + (_CMP_COLS if compare else ())
    rows = [_row(r, compare) for r in recs]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip(), file=file)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=file)
