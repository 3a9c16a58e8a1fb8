"""The Device pane with several devices (issue 16): train.batch_size is per device, the pane says the global batch."""

from torchtui.engine.config import from_dict
from torchtui.tui.panes.device import parallel_line

from .conftest import until


async def test_the_device_pane_says_the_global_batch_of_a_data_parallel_setup(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        pane = fake_app.pane("device")
        assert str(pane.parallel.render()) == ""  # one device: nothing to say
        await pilot.press("4")
        await until(pilot, lambda: fake_app.query("#device-devices"), what="the devices field")
        field = fake_app.query_one("#device-devices")
        field.focus()
        field.value = "2"
        await until(pilot, lambda: fake_app.config.device.devices == "2", what="devices 2 in the config")
        batch = fake_app.config.train.batch_size
        await until(pilot, lambda: f"global batch {2 * batch}" in str(pane.parallel.render()), what="global batch")
        assert f"2 processes × batch {batch}" in str(pane.parallel.render())
        field.value = "three"
        await until(pilot, lambda: "device.devices" in fake_app.problem, what="the field's problem")
        assert "is not a number such as 2" in fake_app.problem


def test_the_line_says_how_the_devices_train_together():
    gpus = [{"kind": "cpu"}, {"kind": "cuda", "name": "cuda:0"}, {"kind": "cuda", "name": "cuda:1"}]
    cpu = from_dict({"device": {"device": "cpu", "devices": 4}}).device
    assert parallel_line(cpu, 32, None) == ("data parallel: 4 processes × batch 32 = global batch 128 "
                                            "(DistributedDataParallel, gloo on the CPU)")
    every = from_dict({"device": {"devices": "all"}}).device
    assert "2 processes × batch 64 = global batch 128 (DistributedDataParallel, NCCL)" in parallel_line(every, 64, gpus)
    assert "every GPU" in parallel_line(every, 64, None)  # before torch has listed them
    assert parallel_line(from_dict({}).device, 64, gpus) == ""


async def test_streamed_data_shows_its_data_wait_and_the_hint_past_a_fifth(fake_app):
    import dataclasses

    from torchtui.engine import protocol as p

    from .fakes import scripted_run

    events = scripted_run()
    stats = [i for i, e in enumerate(events) if isinstance(e, p.StepStats)]
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        events[stats[0]] = dataclasses.replace(events[stats[0]], data_wait=0.08)
        fake_app.fake_host.emit(*events[:stats[0] + 1])
        pane = fake_app.pane("device")
        await until(pilot, lambda: "data wait 8%" in str(pane.memory.render()), what="the data wait line")
        assert "raise data.workers" not in str(pane.memory.render())
        fake_app.fake_host.emit(dataclasses.replace(events[stats[1]], data_wait=0.35))
        await until(pilot, lambda: "data wait 35% (raise data.workers)" in str(pane.memory.render()),
                    what="the hint")
        assert "data wait 35% (raise data.workers)" in str(fake_app.query_one("#status").render())
