"""bench/net.py - the "net" suite of bench/run: what a network costs at create.

Runs BUILD/bench/net (bench/net.c), which moves itself into a network namespace of its
own (the host's network is never touched) and times POST /v1/sandboxes with
{"network": {"mode": "egress"}} next to the same create without a network, interleaved,
against a skiffd with a warm pool and one without. Called by bench/run's suite_net with
bench/run itself as `h` (its Table, Section, Target, run_tool and formatting helpers).
"""

# knobs: name -> (full default, quick default); bench/run merges them into its KNOBS
KNOBS = {
    "BENCH_NET_PAIRS": (300, 30),   # none/egress create pairs per variant
    "BENCH_NET_WARMUP": (10, 2),    # untimed pairs first
    "BENCH_NET_TIMEOUT": (600, 300),
}


def suite(ctx, h):
    k = ctx["knobs"]
    exe, skiffd = ctx["build"] / "bench" / "net", ctx["build"] / "skiffd"
    res = h.run_tool([str(exe), "--json", "-s", str(skiffd), "-n", str(k["BENCH_NET_PAIRS"]),
                      "-w", str(k["BENCH_NET_WARMUP"])], k["BENCH_NET_TIMEOUT"],
                     "net: create with egress vs none (build/bench/net)")
    if res.get("status") != "ok":
        return h.Section(res, targets=[h.Target("egress create, added at p50", "< 5 ms", "-", None)])
    rows = []
    for key, label in (("pool", f"pool warm ({res.get('pool_size', '?')} ready)"), ("cold", "pool off")):
        v = res.get(key) or {}
        if v.get("status") != "ok":
            rows.append([label, f"{v.get('status', 'missing')}: {v.get('reason', '')}"])
            continue
        for mode in ("none", "egress"):
            s = v.get(mode) or {}
            rows.append([f"{label}: {mode}", str(s.get("n", "-")), *(h.fmt_ms(s.get(x)) for x in ("p50", "p95", "p99"))])
        rows.append([f"{label}: egress adds", "", h.fmt_ms(v.get("added_p50_ms")), h.fmt_ms(v.get("added_p95_ms")),
                     ""])
    notes = ["egress: a veth pair (one end made in the sandbox's namespace), addresses, routes, "
             "/etc/resolv.conf and one nftables transaction, before the create answers"]
    srv = h.get(res, "pool", "server_setup_mean_ms")
    if srv is not None:
        notes.append(f"skiffd's own mean for that setup (skiff_net_setup_duration_seconds): {h.fmt_ms(srv)} ms")
    table = h.Table(f"sandbox create with a network (egress) vs without (none), interleaved, one keep-alive client, "
                    f"in a private network namespace ({res.get('elapsed_s', 0):.1f} s), ms",
                    ["case", "n", "p50", "p95", "p99"], rows, notes)
    added = h.get(res, "pool", "added_p50_ms")
    targets = [h.Target("egress create, added at p50 (pool warm)", "< 5 ms",
                        "-" if added is None else f"{h.fmt_ms(added)} ms", h.judged(added, lambda x: x < 5.0))]
    added_cold = h.get(res, "cold", "added_p50_ms")
    if added_cold is not None:
        targets.append(h.Target("egress create, added at p50 (pool off)", "< 5 ms", f"{h.fmt_ms(added_cold)} ms",
                                h.judged(added_cold, lambda x: x < 5.0)))
    return h.Section(res, [table], targets)
