import pytest
import torch

import kdlib
from kdlib.models import build, count_parameters, forward_features


@pytest.mark.parametrize("name, params", [
    ("DeepNN", 1_186_986), ("LightNN", 267_738),  # the PyTorch tutorial's
    ("ReferenceDeepNN", 1_185_674),               # the reference notebook's, exactly
    ("ReferenceLightNN", 268_091 - 1),            # its 268,091 hold an unused scalar (raw_weight)
])
def test_parameter_counts_match_their_sources(name, params):
    assert count_parameters(build(name)) == params


@pytest.mark.parametrize("name, shapes", [
    ("DeepNN", [(64, 16, 16), (32, 8, 8)]),
    ("LightNN", [(16, 16, 16), (16, 8, 8)]),
    ("ReferenceDeepNN", [(256, 16, 16), (128, 8, 8), (64, 4, 4), (32, 2, 2)]),
    ("ReferenceLightNN", [(16, 16, 16), (16, 8, 8)]),
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


def test_families_name_their_teacher_and_student():
    from kdlib.models import student_architecture, teacher_architecture
    assert (teacher_architecture(), student_architecture()) == ("DeepNN", "LightNN")
    assert (teacher_architecture("reference"), student_architecture("reference")) == \
        ("ReferenceDeepNN", "ReferenceLightNN")
    with pytest.raises(ValueError, match="Unknown model family 'resnet'"):
        teacher_architecture("resnet")


@pytest.mark.parametrize("method", ["act_at", "grad_at"])
def test_a_reference_student_learns_from_a_teacher_with_more_stages(method, synthetic, tmp_cache):
    # The reference teacher has four stages, its student two: each student stage is matched
    # with the teacher stage of its own size (16x16, 8x8), and the attention term is there.
    cfg = kdlib.Config(epochs=1, batch_size=100, views=1, family="reference", progress=False)
    teacher = build("ReferenceDeepNN", seed=1)
    run = kdlib.fit(build("ReferenceLightNN", seed=0), synthetic.subset(200, 100), method, teacher, cfg)
    assert run.history[0]["loss_at"] > 0


def test_a_reference_checkpoint_round_trips(tmp_path):
    model = build("ReferenceLightNN", seed=0)
    loaded = kdlib.load_checkpoint(kdlib.save_checkpoint(model, tmp_path / "m.pt"), "ReferenceLightNN")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


def test_the_teacher_of_another_family_is_refused(synthetic, tmp_path):
    cfg = kdlib.Config(epochs=1, batch_size=100, family="reference", progress=False)
    small = synthetic.subset(100, 50)
    kdlib.experiment.train_teacher(small, cfg, checkpoint_dir=tmp_path)
    with pytest.raises(kdlib.CheckpointError, match="holds a ReferenceDeepNN, not the DeepNN"):
        kdlib.experiment.load_teacher(tmp_path, small, "tutorial")
    assert type(kdlib.experiment.load_teacher(tmp_path, small, "reference")).__name__ == "ReferenceDeepNN"


def test_the_code_version_ignores_comments_and_docstrings_but_not_code(tmp_path):
    from kdlib.files import source_digest
    path = tmp_path / "m.py"
    path.write_text('"""Module."""\ndef f(x):\n    """Doc."""\n    return x + 1  # one\n')
    before = source_digest(path)
    path.write_text('"""Another."""\n\ndef f(x):\n    # a comment\n    """Other doc."""\n    return x + 1\n')
    assert source_digest(path) == before
    path.write_text('def f(x):\n    return x + 2\n')
    assert source_digest(path) != before
