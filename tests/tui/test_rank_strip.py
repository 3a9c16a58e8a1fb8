"""The per-rank strip (issue 29 item 2): shown for a data-parallel run, each rank named host:rank, the rank the
others wait for marked with its cause; not shown for a run of one process."""

import dataclasses

from torchtui.engine import protocol as p
from torchtui.tui.widgets.rank_strip import RankStrip

from .conftest import until
from .fakes import scripted_run

RUN = "20261122-120000-moons"


def rank_stats(step: int, slow_data: float = 0.012) -> p.RankStats:
    """Two ranks on two nodes, node-b's data loading slow: node-a waits for it in the all-reduce."""
    return p.RankStats(RUN, step, ["node-a", "node-b"], data_wait=[0.0001, slow_data], compute=[0.003, 0.003],
                       comm_wait=[slow_data, 0.0004], samples_per_s=[600.0, 600.0], memory=[300 << 20, 310 << 20],
                       slowest=1, cause="data wait")


async def test_the_slowest_rank_is_marked_with_data_wait_as_its_cause(fake_app):
    started, running = scripted_run()[:2]
    async with fake_app.run_test(size=(140, 44)) as pilot:
        fake_app.fake_host.emit(started, running)  # one process: no strip
        await until(pilot, lambda: fake_app.history.state == p.RUNNING and fake_app.main.query(RankStrip),
                    what="running, the strip mounted")
        strip = fake_app.main.query_one(RankStrip)
        assert not strip.display
        fake_app.fake_host.emit(dataclasses.replace(started, world_size=2, device="cpu ×2 ddp"), running)
        await until(pilot, lambda: strip.display, what="the strip shown for two ranks")
        fake_app.fake_host.emit(*(rank_stats(s, 0.010 + s / 10_000) for s in (10, 20, 30)))
        await until(pilot, lambda: strip.latest is not None and strip.latest.step == 30, what="three flushes")
        lines = str(strip.render()).splitlines()
        slow = next(line for line in lines if line.startswith("node-b:1"))
        fast = next(line for line in lines if line.startswith("node-a:0"))
        assert "◀ slowest: data wait" in slow and "slowest" not in fast
        assert "data 79%" in slow and "comm 81%" in fast  # 13 ms of data wait in its 16.4 ms step; the other waits
        assert len(slow.split()[1]) == 3  # its strip chart: one bar per flush

