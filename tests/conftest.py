import pytest
import torch

from dreamer.models import load_model


@pytest.fixture(scope="session")
def lite0():
    torch.set_num_threads(2)
    return load_model("efficientnet_lite0", "cpu")


@pytest.fixture(autouse=True)
def own_state_folder(tmp_path_factory, monkeypatch):
    """Every `serve` a test starts without --state-dir keeps its queue in a folder of its own,
    never in the user's (~/.local/state/dreamstream)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
