"""Fetch throughput through ssh+psql (the ssh source) against psql run locally on the same query.

Starts a throwaway sshd and PostgreSQL (tests/servers.py), simulates one day big enough
for 100,000+ RENO rows, loads it into PostgreSQL, then times `SshSource.extract_transactions`
(connect, authenticate, remote psql, stream, verify the count) and the same COPY script
through a local psql writing to a file. Needs openssh-server (scripts/ensure_test_deps.sh).

    python -m bench.ssh_fetch            # BENCH_SSH_NEW_PER_DAY (2500), BENCH_REPEAT (3)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2025, 3, 3)


def fetch_once(source, kind: str, day: dt.date, scratch: Path, local_psql: list[str] | None = None) -> dict:
    """Throughput of one day's extract through ssh+psql, and of the same COPY run by a local psql.

    `local_psql` is the argv prefix of a psql that reaches the same database directly (e.g.
    ["psql", "-h", sockdir, "-p", "5432", "-U", "postgres", "-d", "nova"]); omitted, only
    the ssh figure is measured. Returns rows, bytes, seconds and MB/s for each path.
    """
    from cvas.sources.psql_copy import copy_script   # the very script the source sends
    from cvas.sql import extract_query

    scratch.mkdir(parents=True, exist_ok=True)
    dest = scratch / f"bench_{kind}_{day}.csv"
    t0 = time.perf_counter()
    rows = source.extract_transactions(kind, day, dest)
    ssh_s = time.perf_counter() - t0
    size = dest.stat().st_size
    result = {"kind": kind, "day": day.isoformat(), "rows": rows, "bytes": size,
              "ssh_s": ssh_s, "ssh_mb_s": size / 1e6 / ssh_s, "ssh_rows_s": rows / ssh_s}
    if local_psql:
        sql, variables = extract_query(kind)
        script = copy_script(sql, int(source.settings.command_timeout * 1000))
        argv = [*local_psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"start_ts={day}",
                "-v", f"end_ts={day + dt.timedelta(days=1)}",
                *(x for k, v in sorted(variables.items()) for x in ("-v", f"{k}={v}")), "-f", "-"]
        local_dest = scratch / f"bench_{kind}_{day}.local.csv"
        t0 = time.perf_counter()
        with open(local_dest, "wb") as out:
            subprocess.run(argv, input=script.encode(), stdout=out, stderr=subprocess.PIPE, check=True)
        local_s = time.perf_counter() - t0
        result.update(local_s=local_s, local_mb_s=local_dest.stat().st_size / 1e6 / local_s,
                      local_rows_s=rows / local_s, same_bytes=local_dest.read_bytes() == dest.read_bytes())
        local_dest.unlink()
    dest.unlink()
    return result


def run(new_per_day: int = 2500, repeat: int = 3, kind: str = "reno") -> dict:
    """Median figures of `repeat` fetches of `kind` for one simulated day; see the module docstring."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from cvas.simulator.nova_pg import load_into_postgres
    from cvas.simulator.simulate import simulate
    from cvas.sources.ssh import SshSettings, SshSource
    from tests.servers import start_postgres, start_sshd

    pg = start_postgres()
    sshd = start_sshd()
    try:
        with tempfile.TemporaryDirectory(prefix="cvas-bench-ssh-") as tmp:
            work = Path(tmp)
            info = simulate(work / "nova", DAY, 1, new_per_day=new_per_day, seed=3)
            pg.sql("CREATE DATABASE nova;")
            load_into_postgres(info.database, psql=pg.psql, psql_args=pg.args("nova"))
            settings = SshSettings(host="127.0.0.1", port=sshd.port, user=sshd.user, key_file=sshd.client_key,
                                   known_hosts=sshd.write_known_hosts(work / "known_hosts"), psql_path=pg.psql,
                                   database="nova", db_host=str(pg.socket_dir), db_port=pg.port,
                                   command_timeout=600)
            source = SshSource(settings)
            runs = [fetch_once(source, kind, DAY, work / "out", [pg.psql, *pg.args("nova")])
                    for _ in range(repeat)]
    finally:
        sshd.stop()
        pg.stop()
    assert all(r["same_bytes"] for r in runs), "ssh and local psql gave different bytes"
    med = {k: statistics.median(r[k] for r in runs) for k in ("ssh_s", "local_s", "ssh_mb_s", "local_mb_s",
                                                                  "ssh_rows_s", "local_rows_s")}
    return {"kind": kind, "rows": runs[0]["rows"], "bytes": runs[0]["bytes"], "repeat": repeat, **med,
            "ssh_vs_local": med["ssh_rows_s"] / med["local_rows_s"]}


def main() -> int:
    result = run(int(os.environ.get("BENCH_SSH_NEW_PER_DAY", "2500")), int(os.environ.get("BENCH_REPEAT", "3")))
    print(f"ssh fetch of one {result['kind']} day: {result['rows']:,} rows, {result['bytes'] / 1e6:.1f} MB")
    print(f"  ssh+psql   {result['ssh_s']:.2f} s  {result['ssh_rows_s']:,.0f} rows/s  {result['ssh_mb_s']:.1f} MB/s")
    print(f"  local psql {result['local_s']:.2f} s  {result['local_rows_s']:,.0f} rows/s  "
          f"{result['local_mb_s']:.1f} MB/s")
    print(f"  ssh/local  {result['ssh_vs_local']:.0%}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
