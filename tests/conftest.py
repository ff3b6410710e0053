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


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory):
    """A randomly initialised Inception-v3 in the release's format: the state dict of the module
    torch-fidelity builds (FeatureExtractorInceptionV3), saved as its weights file is, under its
    name. torch-fidelity's own loader then reads it as it would the real file (95 MB, ~1 s).
    He-initialised convolutions: with torch's default init the pool features shrink to ~1e-8 and
    every KID is 0, which would hide a broken pipeline."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from agit.features import INCEPTION_WEIGHTS

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # keep the random initialisation
            return None

    folder = tmp_path_factory.mktemp("inception")
    torch.save({}, folder / "empty.pth")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(folder / "empty.pth"))
        for conv in (m for m in net.modules() if isinstance(m, torch.nn.Conv2d)):
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")  # features of order 1, as trained ones
    path = folder / INCEPTION_WEIGHTS
    torch.save(net.state_dict(), path)
    return path
