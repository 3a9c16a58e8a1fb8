"""The Device pane says how many torch threads a run computes with (issue 26 item 3)."""

from torchtui.tui.panes.device import device_line


def test_the_cpu_line_says_the_threads_a_run_uses():
    cpu = {"kind": "cpu", "name": "cpu", "cores": 2, "threads": 2}  # the listing process's own count aside
    assert device_line(cpu) == "cpu: 2 cores, a run uses 1 thread (auto: one per core less one)"
    assert device_line({**cpu, "cores": 16}) == "cpu: 16 cores, a run uses 15 threads (auto: one per core less one)"
    assert device_line(cpu, threads=4) == "cpu: 2 cores, a run uses 4 threads (device.threads)"


async def test_the_device_pane_follows_the_threads_field():
    from textual.widgets import Input

    from torchtui.engine import protocol as p
    from torchtui.tui.panes.device import DevicePane

    from .test_panes import PaneApp, text_of

    app = PaneApp(DevicePane())
    async with app.run_test(size=(80, 40)) as pilot:
        app.pane.show_devices(p.DevicesListed(1, [{"kind": "cpu", "name": "cpu", "cores": 16, "threads": 8}]))
        await pilot.pause()
        assert text_of(app, "#device-list") == "cpu: 16 cores, a run uses 15 threads (auto: one per core less one)"
        app.query_one("#device-threads", Input).value = "4"
        await pilot.pause()
        assert text_of(app, "#device-list") == "cpu: 16 cores, a run uses 4 threads (device.threads)"
