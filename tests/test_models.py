import pytest
import torch

import kdlib
from kdlib.models import build, count_parameters, forward_features


@pytest.mark.parametrize("name, params", [("DeepNN", 1_186_986), ("LightNN", 267_738)])
def test_parameter_counts_match_the_tutorial(name, params):
    assert count_parameters(build(name)) == params


@pytest.mark.parametrize("name, shapes", [
    ("DeepNN", [(64, 16, 16), (32, 8, 8)]),
    ("LightNN", [(16, 16, 16), (16, 8, 8)]),
])
def test_forward_features_gives_logits_and_stage_maps(name, shapes):
    model = build(name, num_classes=7).eval()
    x = torch.randn(3, 3, 32, 32)
    logits, stages = forward_features(model, x)
    assert logits.shape == (3, 7)
    assert [tuple(f.shape[1:]) for f in stages] == shapes
    torch.testing.assert_close(logits, model(x))


def test_state_dict_keeps_the_tutorial_layout():
    keys = list(kdlib.LightNN().state_dict())
    assert keys == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                    "classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias"]


def test_build_with_a_seed_is_repeatable_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build("LightNN", seed=3), build("LightNN", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = build("LightNN", seed=4)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="ResNet"):
        build("ResNet")
