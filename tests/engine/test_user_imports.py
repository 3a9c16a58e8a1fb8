"""A user's model or data file whose own imports fail: the message names the module, the line, and the fixes."""

from __future__ import annotations

import textwrap

import pytest

from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost

from .helpers import of, run_to_end, tiny

MISSING = "torchtui_no_such_package_xyz"


@pytest.fixture
def local(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as h:
        yield h


def first_error(events) -> str:
    errors = of(events, p.Error)
    assert errors, "expected the run to be refused"
    return errors[0].message


def test_a_model_file_with_a_missing_import_names_the_module_the_line_and_the_fixes(local, tmp_path):
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(f'''\
        from torch import nn
        import {MISSING}.models


        class Net(nn.Module):
            def __init__(self, in_features, out_features):
                super().__init__()
                self.fc = nn.Linear(in_features, out_features)

            def forward(self, x):
                return self.fc(x)
        '''))
    config = tiny()
    config["model"] = {"kind": "custom", "module": f"{path}:Net"}
    events, done = run_to_end(local, config)
    assert done is None
    message = first_error(events)
    assert message.startswith(f"model.module: importing {path} failed at line 2 (import {MISSING}.models): ")
    assert f"needs the module '{MISSING}', which is neither installed here nor a file beside net.py" in message
    assert f"pip install {MISSING}" in message
    assert "copy class Net alone (with what it uses) into a file of its own and set model.module to that file" in \
        message


def test_a_data_file_with_a_missing_import_says_the_same(local, tmp_path):
    path = tmp_path / "data.py"
    path.write_text(f"import math\nfrom {MISSING} import datasets\n\n\ndef make():\n    return [], []\n")
    config = tiny()
    config["data"] = {"source": "code", "path": f"{path}:make"}
    events, done = run_to_end(local, config)
    assert done is None
    message = first_error(events)
    assert message.startswith(f"data.path: importing {path} failed at line 2 (from {MISSING} import datasets): ")
    assert f"pip install {MISSING}" in message and "copy function make alone" in message


def test_a_name_missing_from_an_installed_package_is_not_a_missing_package(local, tmp_path):
    path = tmp_path / "net.py"
    path.write_text("from torch.nn import NoSuchLayer\n\n\nclass Net:\n    pass\n")
    config = tiny()
    config["model"] = {"kind": "custom", "module": f"{path}:Net"}
    events, _ = run_to_end(local, config)
    message = first_error(events)
    assert "failed at line 1 (from torch.nn import NoSuchLayer): it raised ImportError: cannot import name" in message
    assert "pip install" not in message and "copy class Net alone" in message
