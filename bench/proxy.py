"""bench/proxy.py - the "proxy" suite of bench/run: HTTP through an exposed port.

Runs BUILD/bench/proxy (bench/proxy.c): GET requests to a Python HTTP server in a
sandbox through skiffd's port proxy (/p/<sandbox>/8000/...) next to the same requests
sent directly from inside the sandbox's network namespace - latency p50/p95/p99,
requests per second with concurrent clients, and MB/s for a large body. Called by
bench/run's suite_proxy with bench/run itself as `h` (its Table, Section, Target,
run_tool and formatting helpers).
"""

# knobs: name -> (full default, quick default); bench/run merges them into its KNOBS
KNOBS = {
    "BENCH_PROXY_REQUESTS": (2000, 200),   # sequential request pairs for the latency
    "BENCH_PROXY_CLIENTS": (4, 2),         # concurrent clients for the throughput
    "BENCH_PROXY_SECONDS": (5, 1),         # seconds per throughput run (each way)
    "BENCH_PROXY_BIG_MB": (100, 16),       # size of the large body, 10^6 bytes
    "BENCH_PROXY_REPS": (5, 2),            # large-body repetitions (each way)
    "BENCH_PROXY_TIMEOUT": (600, 300),     # seconds before the suite is stopped
}


def suite(ctx, h):
    k = ctx["knobs"]
    exe, skiffd = ctx["build"] / "bench" / "proxy", ctx["build"] / "skiffd"
    server = h.REPO / "tests" / "helpers" / "port_server.py"
    res = h.run_tool([str(exe), "--json", "-s", str(skiffd), "-p", str(server),
                      "-n", str(k["BENCH_PROXY_REQUESTS"]), "-c", str(k["BENCH_PROXY_CLIENTS"]),
                      "-t", str(k["BENCH_PROXY_SECONDS"]), "-r", str(k["BENCH_PROXY_REPS"]),
                      "-b", str(k["BENCH_PROXY_BIG_MB"])],
                     k["BENCH_PROXY_TIMEOUT"], "proxy: HTTP through an exposed port vs direct (build/bench/proxy)")
    if res.get("status") != "ok":
        return h.Section(res)
    lat = res.get("latency", {})
    rows = []
    for way in ("direct", "proxied"):
        v = lat.get(way) or {}
        rows.append([way, str(v.get("n", "-")), *(h.fmt_ms(v.get(x)) for x in ("p50", "p95", "p99", "max"))])
    rows.append(["proxy adds (p50 / p99)", "", h.fmt_ms(lat.get("overhead_p50_ms")), "",
                 h.fmt_ms(lat.get("overhead_p99_ms")), ""])
    t1 = h.Table("exposed port: GET of a 100-byte body, one keep-alive client, direct (inside the sandbox's "
                 "netns) and through skiffd's path proxy interleaved, ms",
                 ["way", "n", "p50", "p95", "p99", "max"], rows,
                 ["server: Python ThreadingHTTPServer in the sandbox (tests/helpers/port_server.py)"])
    tp, big = res.get("throughput", {}), res.get("large_body", {})
    d_rps, p_rps = tp.get("direct_rps"), tp.get("proxied_rps")
    d_mbs, p_mbs = h.get(big, "direct", "mb_per_s"), h.get(big, "proxied", "mb_per_s")

    def f1(v):
        return "-" if v is None else f"{v:.1f}"

    t2 = h.Table(f"exposed port: throughput ({tp.get('clients', '?')} clients x {tp.get('seconds', '?')} s each way; "
                 f"large body {big.get('size_mb', '?')} MB, median of {big.get('reps', '?')})",
                 ["case", "direct", "proxied", "proxied/direct"],
                 [["requests/s, 100-byte GET", f1(d_rps), f1(p_rps), str(h.ratio(p_rps, d_rps) or "-")],
                  ["MB/s, large GET", f1(d_mbs), f1(p_mbs), str(h.ratio(p_mbs, d_mbs) or "-")]])
    return h.Section(res, [t1, t2], [])
