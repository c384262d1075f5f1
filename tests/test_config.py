"""Every config composes; bad overrides become clear UserErrors."""

from __future__ import annotations

import re

import pytest

from harness.config.compose import compose_config, validate_trial_config
from harness.config.names import config_names, submission_names, workload_names
from harness.config.registry import submission_class
from harness.errors import UserError


@pytest.mark.parametrize("workload", workload_names())
@pytest.mark.parametrize("submission", submission_names())
def test_every_workload_size_and_submission_composes(workload: str, submission: str) -> None:
    base = compose_config("trial", [f"workload={workload}", f"submission={submission}"])
    for size in base.workload.sizes:
        cfg = compose_config("trial", [f"workload={workload}", f"submission={submission}", f"workload.size={size}"])
        validate_trial_config(cfg)
        assert cfg.workload.name == workload and cfg.submission.name == submission
        spec = cfg.workload.sizes[size]
        assert spec.max_runtime_s > 0 and spec.step_hint > 0
        assert (spec.eval_every_steps is not None) or (spec.eval_period_s is not None)
        assert spec.calibration, f"{workload}/{size} must say where its numbers came from"
        submission_class(submission).Hparams.from_mapping(cfg.submission.hparams, submission)


def test_suite_config_composes() -> None:
    cfg = compose_config("suite", ["submissions=[adamw,sgd]", "studies=1"])
    assert list(cfg.submissions) == ["adamw", "sgd"] and cfg.studies == 1
    assert cfg.name == "mini" and list(cfg.workloads) == ["fashion_mnist", "gpt", "cifar10"] and cfg.trials == 3
    assert cfg.launcher == "parallel" and list(cfg.trial_settings) == ["threads=1", "isolation=process"]
    cpu = compose_config("suite", ["suite=cpu"])
    assert cpu.size == "cpu" and len(cpu.workloads) == 3 and cpu.launcher == "inline"
    smoke = compose_config("suite", ["suite=smoke"])
    assert smoke.name == "smoke" and smoke.size == "smoke" and "gpt" in smoke.workloads


def test_registries_and_config_groups_agree() -> None:
    assert workload_names() == config_names("workload")
    assert submission_names() == config_names("submission")


def test_schema_types_are_enforced() -> None:
    with pytest.raises(UserError, match="seed"):
        compose_config("trial", ["seed=abc"])


def test_a_true_or_false_setting_takes_only_a_yes_or_a_no() -> None:
    """OmegaConf reads any integer as a bool: strict=2 (a slip for a count, say) ran as strict=true."""
    for primary, override in (("score", "strict=2"), ("trial", "rerun=-1"), ("calibrate", "write=5")):
        key = override.partition("=")[0]
        with pytest.raises(UserError, match=re.escape(f"{override} is not true or false: set {key}=true")):
            compose_config(primary, [override])
    assert compose_config("score", ["strict=yes"]).strict is True
    assert compose_config("score", ["strict=0"]).strict is False


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("workload=nope", "Valid workloads: cifar10, fashion_mnist, gpt, rosenbrock"),
        ("submission=adamx", "Valid submissions: adadelta, adagrad, adam, adamw, lion, momentum, muon, nadamw, "
                             "rmsprop, schedule_free_adamw, sgd, shampoo, soap"),
        ("no_such_key=1", "Unknown setting 'no_such_key'"),
        ("seed=[1,2", "Malformed override"),
        ("=3", "Malformed override"),
        ("results=sc/résults", "results=sc/résults: a value with spaces, non-ASCII letters or characters such as "
                               "()[]{},= is quoted: results='sc/résults'"),
    ],
)
def test_bad_overrides_are_clear(override: str, expected: str) -> None:
    with pytest.raises(UserError, match=re.escape(expected)):
        compose_config("trial", [override])


def test_a_list_of_overrides_unquoted_is_answered_with_its_quoted_form() -> None:
    """docs/tuning.md used to show trial_settings=[threads=1,isolation=process], which Hydra cannot read:
    the user got only Hydra's parser error."""
    with pytest.raises(UserError, match=re.escape(
            "is quoted item by item: trial_settings=['threads=1','isolation=process'] (in a shell, the whole "
            "override in double quotes: \"trial_settings=['threads=1','isolation=process']\")")):
        compose_config("suite", ["trial_settings=[threads=1,isolation=process]"])
    assert list(compose_config("suite", ["trial_settings=['threads=1','isolation=process']"]).trial_settings) == [
        "threads=1", "isolation=process"]


def test_unknown_size_lists_valid_sizes() -> None:
    cfg = compose_config("trial", ["workload.size=huge"])
    with pytest.raises(UserError, match="Valid sizes: cpu, gpu, mini, smoke"):
        validate_trial_config(cfg)


def test_bad_device_is_refused() -> None:
    with pytest.raises(UserError, match="device='tpu'"):
        validate_trial_config(compose_config("trial", ["device=tpu"]))


@pytest.mark.parametrize(("override", "message"), [
    ("+workload.sizes.smoke.options.validation_exmaples=50", "Unknown option(s) validation_exmaples"),
    ("workload.sizes.smoke.options.validation_examples=lots", "validation_examples='lots' of workload"),
    ("workload.sizes.smoke.options.synthetic=1", "synthetic=1 of workload"),  # not a bool
])
def test_a_workload_option_it_does_not_declare_or_of_the_wrong_type_is_refused(override: str, message: str) -> None:
    import torch

    from harness.config.registry import workload_class

    cfg = compose_config("trial", ["workload=fashion_mnist", "workload.size=smoke", override])
    with pytest.raises(UserError) as caught:
        workload_class("fashion_mnist")(cfg.workload, torch.device("cpu"))
    assert message in str(caught.value)
    assert "Valid options: seed, split_seed, synthetic, validation_examples" in str(caught.value) or (
        "should be" in str(caught.value))


def test_every_built_in_submission_takes_its_schedule_from_one_shared_file() -> None:
    from importlib import resources

    for name in submission_names():
        text = (resources.files("configs") / "submission" / f"{name}.yaml").read_text()
        assert "- /schedule@hparams: " in text and "decay_fraction" not in text, name


def test_isolation_takes_two_values() -> None:
    assert compose_config("trial", []).isolation == "inprocess"  # a single trial: in-process
    validate_trial_config(compose_config("trial", ["isolation=process"]))
    with pytest.raises(UserError, match="isolation='sandbox' is not valid"):
        validate_trial_config(compose_config("trial", ["isolation=sandbox"]))


@pytest.mark.parametrize(("override", "said"), [
    ("submission=adamv", "Unknown submission 'adamv' (did you mean adam or adamw?). Valid submissions: adadelta"),
    ("workload=fashion_mnsit", "Unknown workload 'fashion_mnsit' (did you mean fashion_mnist?). Valid workloads:"),
    ("workload=imagenet", "Unknown workload 'imagenet'. Valid workloads:"),  # nothing close: nothing guessed
])
def test_a_misspelt_name_gets_the_names_close_to_it(override: str, said: str) -> None:
    with pytest.raises(UserError, match=re.escape(said)):
        compose_config("trial", [override])
