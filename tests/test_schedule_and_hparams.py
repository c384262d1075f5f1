"""The shared learning-rate schedule and hyperparameter validation."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import ClassVar, Optional

import pytest

from harness.config.compose import compose_config, to_plain
from harness.errors import UserError
from harness.submission import TrainingHparams, lr_multiplier
from submissions._hparams import AdamHparams
from submissions.muon import MuonHparams

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


@pytest.mark.parametrize(("name", "value"), [("adamw_lr", -1e-3), ("beta2", 1.0)])
def test_muon_names_the_one_invalid_hyperparameter(name: str, value: float) -> None:
    """Muon has two rates and two betas: the error names the one that is wrong and its value
    (it said ``lr=(0.002, -0.001)`` for a negative adamw_lr, and ``beta1/beta2`` for beta2)."""
    defaults = to_plain(compose_config("trial", ["submission=muon"]).submission.hparams)
    with pytest.raises(UserError, match=rf"^Invalid hyperparameter {name}={value!r}: must be"):
        MuonHparams.from_mapping({**defaults, name: value}, "muon")


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


@dataclasses.dataclass(kw_only=True)
class DerivedHparams(TrainingHparams):
    """A value derived in ``__post_init__`` (init=False): computed by the class, not an input."""

    lr: float = 0.05
    one_minus_beta: float = 0.1
    momentum: float = dataclasses.field(init=False)
    dampening: float = dataclasses.field(init=False, default=0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.momentum = 1.0 - self.one_minus_beta
        self.dampening = self.one_minus_beta / 2


def test_a_field_computed_in_post_init_is_not_an_input_but_is_recorded() -> None:
    """Before: 'needs hyperparameter(s) momentum', and setting it gave a TypeError from __init__."""
    hparams = DerivedHparams.from_mapping({"one_minus_beta": 0.2}, "derived")
    assert hparams.momentum == pytest.approx(0.8) and hparams.as_dict()["momentum"] == pytest.approx(0.8)
    assert hparams.as_dict()["dampening"] == pytest.approx(0.1)
    for name in ("momentum", "dampening"):
        with pytest.raises(UserError, match=rf"{name} of submission 'derived' cannot be set: DerivedHparams "
                                            rf"computes it from its other fields"):
            DerivedHparams.from_mapping({"one_minus_beta": 0.2, name: 0.5}, "derived")
    with pytest.raises(UserError, match=r"Valid hyperparameters: batch_size, .*lr, one_minus_beta, warmup_fraction"):
        DerivedHparams.from_mapping({"lrr": 0.1}, "derived")  # the computed ones are no setting to suggest


def test_a_computed_field_is_no_default_of_the_config_nor_a_search_space_entry() -> None:
    from harness.config.plugins import declared_defaults
    from harness.config.search_space import validate_search_space

    class Holder:
        Hparams = DerivedHparams

    assert declared_defaults(Holder) == {**{f.name: f.default for f in dataclasses.fields(TrainingHparams)},
                                         "lr": 0.05, "one_minus_beta": 0.1}
    with pytest.raises(UserError, match=r"'dampening': DerivedHparams computes it from its other fields"):
        validate_search_space({"dampening": {"min": 0.1, "max": 0.5, "scaling": "linear"}}, DerivedHparams, "derived")


def test_an_hparams_class_without_the_dataclass_decorator_is_refused() -> None:
    """Before: its fields were class attributes, silently used; not recorded, and not settable."""

    class NoDCHparams(TrainingHparams):
        lr: float = 0.05
        momentum: float = 0.9
        kind: ClassVar[str] = "sgd"  # a class variable is no field: not named

    with pytest.raises(UserError, match=r"NoDCHparams \(the Hparams of submission 'nodc'\) annotates lr, momentum, "
                                        r"which are not dataclass fields.*@dataclasses\.dataclass\(kw_only=True\)"):
        NoDCHparams.from_mapping({}, "nodc")

    @dataclasses.dataclass(kw_only=True)
    class Decorated(NoDCHparams):  # its own fields are; its undecorated base's are still not
        beta: float = 0.5

    with pytest.raises(UserError, match=r"NoDCHparams, a base of Decorated, annotates lr, momentum, which are not"):
        Decorated.from_mapping({})


@dataclasses.dataclass(kw_only=True)
class TypedHparams(TrainingHparams):
    """Fields of container and optional types (string annotations: this module's __future__ import)."""

    betas: tuple[float, float] = (0.9, 0.99)
    steps: tuple[int, ...] = ()
    layers: list[int] = dataclasses.field(default_factory=list)
    clip: Optional[float] = None  # noqa: UP045  (the typing spelling, resolved from this module)
    cap: int | None = None
    note: str | None = None


def test_tuple_optional_and_list_fields_are_checked_and_coerced() -> None:
    """Before: a tuple arrived as a list, clip=abc was kept as a string, layers=5 as a scalar."""
    from omegaconf import OmegaConf

    config = OmegaConf.create({"betas": [0.9, 1], "steps": [1.0, 2], "layers": [64, 32.0], "clip": 1, "cap": None})
    hparams = TypedHparams.from_mapping(config)
    assert hparams.betas == (0.9, 1.0) and type(hparams.betas) is tuple and type(hparams.betas[1]) is float
    assert hparams.steps == (1, 2) and all(type(s) is int for s in hparams.steps)
    assert hparams.layers == [64, 32] and type(hparams.layers) is list and type(hparams.layers[1]) is int
    assert hparams.clip == 1.0 and type(hparams.clip) is float and hparams.cap is None
    assert TypedHparams.from_mapping({"clip": None}).clip is None
    recorded = json.loads(json.dumps(hparams.as_dict()))  # as a trial's identity and manifest hold them
    assert recorded["betas"] == [0.9, 1.0]
    assert TypedHparams.from_mapping(recorded).as_dict() == hparams.as_dict()  # the same values, the same identity
    for values, says in [
        ({"clip": "abc"}, r"clip='abc': expected a value of type float or None"),
        ({"cap": 1.5}, r"cap=1\.5: expected a value of type int or None"),
        ({"note": 3}, r"note=3: expected a value of type str or None"),
        ({"layers": 5}, r"layers=5: expected a value of type list\[int\] \(a list: \[a, b, \.\.\.\]"),
        ({"layers": [1, "x"]}, r"layers=\[1, 'x'\]: expected a value of type list\[int\]"),
        ({"betas": [0.9]}, r"betas=\[0\.9\]: expected a value of type tuple\[float, float\]"),
        ({"betas": "0.9,0.99"}, r"betas='0\.9,0\.99': expected a value of type tuple\[float, float\]"),
        ({"steps": [1, True]}, r"steps=\[1, True\]: expected a value of type tuple\[int, \.\.\.\]"),
        ({"clip": float("inf")}, r"clip=inf: it must be a finite number"),
    ]:
        with pytest.raises(UserError, match=rf"Invalid hyperparameter {says}"):
            TypedHparams.from_mapping(values)


def test_a_type_hint_that_cannot_be_resolved_leaves_only_its_own_field_unchecked() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Unresolvable(TrainingHparams):
        lr: float = 0.1
        betas: tuple[float, float] = (0.9, 0.99)
        schedule: NotImportedHere = None  # noqa: F821  (a name only a type checker knows)

    hparams = Unresolvable.from_mapping({"lr": 1, "betas": [0.5, 1], "schedule": {"any": "thing"}})
    assert hparams.lr == 1.0 and hparams.betas == (0.5, 1.0) and hparams.schedule == {"any": "thing"}
    with pytest.raises(UserError, match=r"lr='x': expected a value of type float"):
        Unresolvable.from_mapping({"lr": "x"})
