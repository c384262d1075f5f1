"""The shared learning-rate schedule and hyperparameter validation."""

from __future__ import annotations

import math

import pytest

from harness.errors import UserError
from harness.submission import TrainingHparams, lr_multiplier
from submissions._hparams import AdamHparams

ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}


def test_warmup_then_cosine_to_final() -> None:
    hp = TrainingHparams(warmup_fraction=0.1, decay="cosine", decay_fraction=1.0, final_lr_fraction=0.1)
    f = lr_multiplier(hp, step_hint=100)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    midpoint = 10 + 45  # half-way through the 90 decay steps
    assert f(midpoint) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(100) == pytest.approx(0.1) and f(1000) == pytest.approx(0.1)


def test_linear_decay_over_a_fraction_of_the_hint() -> None:
    f = lr_multiplier(TrainingHparams(decay="linear", decay_fraction=0.5), step_hint=100)
    assert f(0) == 1.0 and f(25) == pytest.approx(0.5) and f(50) == 0.0 and f(99) == 0.0


def test_constant_schedule() -> None:
    f = lr_multiplier(TrainingHparams(), step_hint=10)
    assert all(f(s) == 1.0 for s in range(0, 50, 7))


def test_from_mapping_coerces_and_validates() -> None:
    hp = AdamHparams.from_mapping({**ADAM, "lr": 1, "batch_size": 64.0})
    assert isinstance(hp.lr, float) and hp.batch_size == 64
    with pytest.raises(UserError, match=r"Invalid hyperparameter lr=-0.1: must be positive"):
        AdamHparams.from_mapping({**ADAM, "lr": -0.1})
    with pytest.raises(UserError, match=r"Unknown hyperparameter.*lrr.*Valid hyperparameters"):
        AdamHparams.from_mapping({**ADAM, "lrr": 1.0}, "adamw")
    with pytest.raises(UserError, match=r"needs hyperparameter.*beta2"):
        AdamHparams.from_mapping({k: v for k, v in ADAM.items() if k != "beta2"}, "adamw")
    with pytest.raises(UserError, match="expected a value of type float"):
        AdamHparams.from_mapping({**ADAM, "lr": "fast"})
    with pytest.raises(UserError, match="decay='step'"):
        AdamHparams.from_mapping({**ADAM, "decay": "step"})
    assert math.isclose(AdamHparams.from_mapping(ADAM).as_dict()["lr"], 1e-3)


def test_a_list_valued_hyperparameter_from_a_config_is_plain_python() -> None:
    """Before, a YAML's list (betas: [0.9, 0.99]) stayed an OmegaConf ListConfig in the hyperparameters,
    and hashing the trial's identity raised 'Object of type ListConfig is not JSON serializable'."""
    import dataclasses
    import json

    from omegaconf import OmegaConf

    @dataclasses.dataclass(kw_only=True)
    class WithBetas(TrainingHparams):
        betas: list
        extra: dict

    config = OmegaConf.create({"betas": [0.9, 0.99], "extra": {"a": [1, 2]}})
    hparams = WithBetas.from_mapping(config)
    assert hparams.betas == [0.9, 0.99] and type(hparams.betas) is list and type(hparams.extra) is dict
    assert json.loads(json.dumps(hparams.as_dict()))["extra"] == {"a": [1, 2]}
