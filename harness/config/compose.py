"""Composing configs with Hydra's compose API, and turning Hydra's errors into clear ones."""

from __future__ import annotations

import difflib
import math
import re
import warnings
from collections.abc import Sequence

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config.names import config_names, submission_names, workload_names
from harness.config.schema import DEVICES, ISOLATION, register_schemas
from harness.errors import NoSuchSize, OptbenchWarning, UserError
from harness.identity import digest


def _valid_options(error: MissingConfigException) -> str:
    """The options Hydra lists for a config group a missing option was asked of (``suite=smok``), as
    one sentence (Hydra's own message spreads them over lines, after its first)."""
    lines = str(error).splitlines()
    head = next((i for i, line in enumerate(lines) if line.startswith("Available options in ")), None)
    if head is None:
        return ""
    group = lines[head].removeprefix("Available options in ").strip("':")
    options = [line.strip() for line in lines[head + 1:] if line.startswith("\t")]
    options = options[: next((i for i, o in enumerate(options) if "=" in o), len(options))]  # not the search path
    return f" Valid {group} options: {', '.join(options)}." if options else ""


def compose_config(primary: str, overrides: Sequence[str]) -> DictConfig:
    """Compose ``configs/<primary>.yaml`` with ``key=value`` overrides into a typed config.

    ``submission=`` may also name an external submission (a module, a ``.py`` file or an
    installed entry point; :mod:`harness.config.plugins`), with ``submission_config=PATH`` for its
    config. Raises UserError with one readable paragraph for unknown groups/options/keys,
    malformed overrides and type errors.
    """
    overrides = _resolve_choices(list(overrides))
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="configs", version_base="1.3"):
            cfg = compose(config_name=primary, overrides=list(overrides))
    except (OverrideParseException, ValueError) as error:
        raise UserError(_malformed_message(error, overrides)) from None
    except MissingConfigException as error:
        raise UserError(f"{_first_line(error)}.{_valid_options(error)}") from None
    except (ConfigCompositionException, OmegaConfBaseException) as error:
        raise UserError(_composition_message(error)) from None
    finally:
        GlobalHydra.instance().clear()
    _check_booleans(cfg, overrides)
    if "results" in cfg and isinstance(cfg.results, str) and not cfg.results.strip():
        raise UserError("results= is empty: it would mean the current folder, read or written as a results folder. "
                        "Name the folder (results=DIR; the default is results).")
    return cfg


#: how a yes or no may be written (OmegaConf reads any integer as one: strict=2 was taken as true)
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})


def _check_booleans(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse an override of a true/false setting with anything but a yes or a no (:data:`BOOLEAN_WORDS`)."""
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if not sep or "/" in key or "@" in key or "${" in value:  # a group, or an interpolation: resolved
            continue
        node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if isinstance(node, bool) and unquoted(value).strip().lower() not in BOOLEAN_WORDS:
            raise UserError(f"{key}={value} is not true or false: set {key}=true or {key}=false.")


EXTERNAL = "external-"  # prefix of the config-store entries made for external submissions


def _resolve_choices(overrides: list[str]) -> list[str]:
    """Check ``workload=`` and ``submission=`` picks, naming the valid options for an unknown one;
    an external plugin's config is stored under a generated name and the override points at it
    (``submission_config=`` and ``workload_config=`` are consumed here); ``submission.hparams.X=``
    adds X if need be."""
    # A hyperparameter is set as submission.hparams.X=v whether or not the config lists X (the
    # submission's Hparams class checks the name); Hydra's own syntax would need +X for a new key.
    overrides = [f"++{item.lstrip('+')}" if item.lstrip("+").startswith("submission.hparams.") else item
                 for item in overrides]
    config_files: dict[str, str | None] = {}
    for kind in PLUGIN_KINDS:
        given = [item for item in overrides if item.partition("=")[0].lstrip("+") == f"{kind}_config"]
        overrides = [item for item in overrides if item not in given]
        config_files[kind] = unquoted(given[-1].partition("=")[2]) if given else None
    split = [item.partition("=") for item in overrides]
    picks = [(i, key.lstrip("+~"), unquoted(value)) for i, (key, sep, value) in enumerate(split)
             if sep and key.lstrip("+~") in PLUGIN_KINDS]
    external = set()
    for position, kind, value in picks:
        from harness.config import plugins

        if value in config_names(kind):
            plugins.warn_if_shadowed(kind, value)
            continue
        overrides[position] = f"{kind}={_store_external(kind, value, config_files[kind])}"
        external.add(kind)
    for kind, config_file in config_files.items():
        if config_file is not None and kind not in external:
            raise UserError(f"{kind}_config= gives the config of an external {kind} ({kind}=package.module:Class or "
                            f"a .py file); a built-in {kind}'s config is configs/{kind}/<name>.yaml.")
    return overrides


PLUGIN_KINDS = ("workload", "submission")


def unquoted(value: str) -> str:
    """A value without the quotes a user put around it, as Hydra reads a quoted value
    (``submission='/home/me/my opt.py'``): these keys are resolved here, before Hydra sees them."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0])
    return value


def _store_external(kind: str, text: str, config_file: str | None) -> str:
    """Resolve ``<kind>=text`` to an external plugin, store its config; the stored name."""
    from harness.config import plugins
    from harness.config.described import stand_in_for
    from harness.workload import Workload

    names = {"submission": submission_names, "workload": workload_names}[kind]()
    if not (plugins.looks_external(text) or text in plugins.entry_points(kind)
            or text in plugins.ambiguous_entry_points(kind)):
        installed = sorted(plugins.entry_points(kind))
        close = difflib.get_close_matches(text, [*names, *installed], n=2, cutoff=0.75)
        raise UserError(f"Unknown {kind} '{text}'" + (f" (did you mean {' or '.join(close)}?)" if close else "")
                        + f". Valid {kind}s: {', '.join(names)}"
                        + (f"; installed: {', '.join(installed)}" if installed else "")
                        + ". An external one is named by its module (package.module:Class) or its .py file.")
    source = plugins.resolve(text, kind)
    if kind == "submission":
        cls = stand_in_for(source)  # its module is imported in a child, not here
        node = plugins.submission_config(source, cls, config_file, taken=set(names))
    else:
        cls = plugins.load_class(source, Workload)
        node = plugins.workload_config(source, cls, config_file, taken=set(names))
    check_safe_name(kind, node["name"])
    if text in plugins.entry_points(kind) and node["name"] != text:
        warnings.warn(f"{kind}={text} (an installed entry point) is recorded and ranked as '{node['name']}', "
                      f"its config's or class's name (docs/writing-a-submission.md): give it `name: {text}` in its "
                      f"YAML (or the class `name = \"{text}\"`) to have them agree.", OptbenchWarning, stacklevel=2)
    name = EXTERNAL + digest(node)
    ConfigStore.instance().store(group=kind, name=name, node=node)
    return name


def _malformed_message(error: BaseException, overrides: Sequence[str]) -> str:
    """Hydra's refusal of an override in words a user can act on: the override it could not read
    and, where quoting its value would make it readable (a non-ASCII letter, as in a path like
    ``results=sc/résults``), the quoted form."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        key, sep, value = override.partition("=")
        if not (sep and key and value) or "'" in value or value[0] == "{" or (value[0] == "[") != (value[-1] == "]"):
            continue  # a mapping, or an unclosed list: no quoting mends it
        try:
            parser.parse_overrides([override])
        except OverrideParseException:
            quoted = _quoted_value(value)
            try:
                parser.parse_overrides([f"{key}={quoted}"])
            except OverrideParseException:
                continue
            return (f"Malformed override: {override}: a value with spaces, non-ASCII letters or characters such "
                    f"as ()[]{{}},= is quoted{' item by item' if value[0] == '[' else ''}: {key}={quoted} "
                    f"(in a shell, the whole override in double quotes: \"{key}={quoted}\").")
    return (f"Malformed override: {_first_line(error)}. Overrides are key=value pairs, for example "
            f"submission.hparams.lr=3e-3 or workload.size=smoke (lists: key=[a,b]).")


def _quoted_value(value: str) -> str:
    """``value`` with quotes Hydra reads: a path as one quoted string, a list (of trial overrides such
    as ``[threads=1,isolation=process]``) item by item."""
    if value[0] == "[" and value[-1] == "]":
        return "[" + ",".join(f"'{item.strip()}'" for item in value[1:-1].split(",") if item.strip()) + "]"
    return f"'{value}'"


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0].rstrip(".")


def _composition_message(error: BaseException) -> str:
    cause = error.__cause__ or error
    text = str(cause).strip()
    key = re.search(r"Key '([^']+)' not in '([^']*)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    full_key = getattr(cause, "full_key", None)
    if key:
        named = full_key or key.group(1)
        if str(named).startswith("hparams."):  # optbench trajectories' per-submission mapping
            return (f"Unknown setting '{named}': a new entry of hparams takes a leading +: +{named}=... (the "
                    f"submission's Hparams then says whether it has that hyperparameter).")
        if str(named).startswith("submission.search_space."):  # a mapping that takes new entries with a +
            return (f"Unknown setting '{named}': the search space has no '{key.group(1)}' yet. Add a dimension with "
                    f"a leading +: +{named}=... (e.g. '+submission.search_space.batch_size="
                    f"{{feasible_points:[64,128]}}').")
        return (
            f"Unknown setting '{named}' in the overrides. See `optbench --help` for the settings, "
            f"or submission.hparams.<name>=... for a hyperparameter (a new entry of a mapping takes a leading +)."
        )
    summary = text.splitlines()[0]
    where = f" (setting '{full_key}')" if full_key else ""
    return f"Invalid configuration{where}: {summary}."


def split_overrides(overrides: Sequence[str], schema: type) -> tuple[list[str], list[str]]:
    """Split a command's overrides into its own keys (fields of ``schema``) and trial settings."""
    own_keys = set(schema.__dataclass_fields__)
    own, rest = [], []
    for item in overrides:
        key = item.partition("=")[0].lstrip("+~").split(".")[0]
        (own if key in own_keys else rest).append(item)
    return own, rest


def validate_trial_config(cfg: DictConfig) -> None:
    """Checks the schema cannot express: choices and ranges of top-level trial settings."""
    device = str(cfg.device)
    if device.split(":")[0] not in DEVICES:
        raise UserError(f"device='{device}' is not valid. Use one of: auto, cpu, cuda, cuda:<index>.")
    if cfg.isolation not in ISOLATION:
        raise UserError(f"isolation='{cfg.isolation}' is not valid. Use inprocess (the submission in the harness's "
                        f"process) or process (in a trainer process of its own; docs/decisions.md).")
    if cfg.max_runtime_s is not None and cfg.max_runtime_s <= 0:
        raise UserError(f"max_runtime_s={cfg.max_runtime_s} must be positive.")
    if not 0 <= cfg.seed < SEEDS:  # the data order and the initial weights are drawn from 32-bit seeds:
        raise UserError(f"seed={cfg.seed} must be in [0, 2^32): larger seeds repeat smaller ones "  # 2^32 + 1 ran as 1
                        f"(the same trial, counted as another study).")
    if cfg.threads is not None and cfg.threads <= 0:
        raise UserError(f"threads={cfg.threads} must be a positive number of CPU threads.")
    if cfg.max_steps is not None and cfg.max_steps <= 0:
        raise UserError(f"max_steps={cfg.max_steps} must be positive.")
    every = cfg.get("checkpoint_every_s")
    if every is not None and not (math.isfinite(every) and every >= 0):
        raise UserError(f"checkpoint_every_s={every} must be a number of wall seconds >= 0 (0: a checkpoint at "
                        f"every evaluation; null: none).")
    if cfg.max_runtime_s is not None and not math.isfinite(cfg.max_runtime_s):
        raise UserError(f"max_runtime_s={cfg.max_runtime_s} must be a finite number of seconds.")
    if cfg.data_dir is not None and not str(cfg.data_dir).strip():
        raise UserError("data_dir is empty. Leave it out to use the built-in search (the cache, the copy "
                        "shipped in workloads/data/, system packages), or set it to the folder holding the data.")
    for setting, name in (("workload", cfg.workload.name), ("workload.size", cfg.workload.size),
                          ("workload.variant", cfg.workload.variant), ("submission", cfg.submission.name)):
        check_safe_name(setting, str(name))
    if cfg.workload.size not in cfg.workload.sizes:
        raise NoSuchSize(
            f"Workload '{cfg.workload.name}' has no size '{cfg.workload.size}'. "
            f"Valid sizes: {', '.join(sorted(cfg.workload.sizes))} (workload.size= picks one; a workload's "
            f"YAML names its default in size:).", sorted(cfg.workload.sizes))


SEEDS = 2**32  # seeds are in [0, SEEDS)


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*(\.[A-Za-z0-9_+-]+)*")


def check_safe_name(setting: str, name: str) -> None:
    """Names become folder names of records: letters, digits, ``_ + - .``; no path separators or ``..``."""
    if not SAFE_NAME.fullmatch(name):
        raise UserError(f"{setting}={name!r} is not a usable name: it becomes a folder name in the records, so it "
                        f"may hold only letters, digits and _ + - ., starting with a letter or digit (no '..' or '/').")


def to_plain(cfg: DictConfig) -> dict:
    """A resolved, plain-Python copy of a config (for manifests)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
