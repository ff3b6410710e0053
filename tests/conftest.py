import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: threads cost more than they give


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A 32-px synthetic dataset with masks, small enough for seconds of training."""
    from agit.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("data"), "tiny", size=32, n_train=8, n_test=6, seed=1)


@pytest.fixture
def ci_cfg(tiny_data):
    from agit import preset

    return preset("ci", data=str(tiny_data))
