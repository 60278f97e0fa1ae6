"""A short seed of `scripts/chaos`: every fault, kill -9, a power-loss restore, reconnects and redeliveries mixed;
every action applied exactly once or never with a recorded reason. RELIABILITY.md has the long runs."""

from __future__ import annotations

import io

from chaos.harness import Chaos


def test_a_short_chaos_seed_keeps_the_invariant(tmp_path, monkeypatch):
    out = io.StringIO()
    run = Chaos(seed=11, actions=10, workdir=tmp_path, out=out)
    try:
        ok = run.run()
    finally:
        run.close()
    report = out.getvalue()
    assert ok, report + (tmp_path / "service.log").read_text()[-4000:]
    assert "summary: " in report and " double 0, lost 0, wrong record 0, unsettled 0" in report
