"""A user's submission as the harness's own process knows it: described by a throwaway process.

Importing a module runs its code. Run in the process that keeps the clock, evaluates and writes the
records, a submission module's top level could replace ``time.perf_counter`` or the evaluation,
for its own trials and for every trial run later in that process (another submission's, in an
inline sweep or suite), and ``isolation=process`` would guard nothing. So the harness never
imports an external submission's module (a file, a module or an entry point of the user's) to plan,
identify or record its trials: a child forked from the trainers' forkserver (a fresh interpreter,
no data; :mod:`harness.config.child_process`) imports it, answers in JSON what the harness needs,
and is killed with everything it started. The harness builds a stand-in class from that answer:
the class's name, module and file (its code's sha256 and the source audit read the files, not the
module), ``name``, ``revision``, ``special_component``, ``search_space``, and a ``Hparams``
dataclass with the same fields, types and defaults, whose ``from_mapping`` asks the child to check
the values with the submission's own ``Hparams`` (its ``__post_init__`` rules included) and holds
the values that class made of them (the fields it computes, ``init=False``, too).

The module is imported for real only where the submission runs: a trainer process, an
``isolation=inprocess`` trial (which shares the harness's process by choice: docs/decisions.md),
the ranks of a data-parallel trial, and the tools that run a submission (check, info).
Built-in submissions (``submissions/``) are part of the harness and are imported as they are.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import signal
import traceback
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from harness import seccomp
from harness.config.child_process import bare_start, context
from harness.config.plugins import Source, import_command, load_class, mark_described, module_file, module_origin
from harness.config.registry import submission_class
from harness.errors import UserError
from harness.scratch import confine_writes, scratch_folder, use_scratch
from harness.submission import (
    Submission,
    TrainingHparams,
    computed_fields,
    contract_mismatches,
    plain_value,
    require_declared_fields,
)
from harness.untraceable import give_up_tracing

#: set to false, the child that describes a submission may write files (its module's top level runs there):
#: an environment variable, as describing comes before a trial's settings (sandbox=) are read
SANDBOX_VARIABLE = "OPTBENCH_SANDBOX"
#: the longest an external submission's module may take to import (and its values to be checked)
DESCRIBE_TIMEOUT_S = 300.0
#: the environment variable of :func:`handed_down`
HANDED_DOWN = "OPTBENCH_DESCRIPTIONS"


def described_submission(name: str, source: str | None) -> type:
    """The submission ``name`` as the harness plans and records it: the built-in class itself, or for
    an external one (``source``: a trial config's ``submission.source``) the stand-in of this
    module's docstring. Its module is not imported in this process."""
    if not source:
        return submission_class(name)
    return stand_in_for(Source.from_text(source, "submission"))


def stand_in_for(source: Source) -> type:
    """The stand-in of the external submission at ``source`` (its module imported in a child)."""
    return _Description.of(source).stand_in


def check_hparams(hparams_cls: type[TrainingHparams], mappings: Sequence[Mapping[str, Any]],
                  submission: str = "", config: str | None = None) -> None:
    """Check many values at once with a stand-in's submission (one child for all of them; a
    sweep's trials), so that its ``from_mapping`` of each finds the answer; nothing to do for a
    class that is not a stand-in (it checks its values itself)."""
    description = getattr(hparams_cls, "_description", None)
    if description is not None:
        description.check([_plain(values) for values in mappings], submission, config)


class _Description:
    """What a child process said of one external submission; the values it checked, with its answers."""

    _known: dict[tuple[str, tuple[int, int] | None], _Description] = {}

    def __init__(self, source: Source, facts: dict[str, Any], answers: dict[str, dict[str, Any]] | None = None):
        self.source = source
        self.facts = facts
        #: values asked (JSON) -> the child's answer: {"error": message} or {"values": the real Hparams' as_dict()}
        self.answers: dict[str, dict[str, Any]] = dict(answers or {})
        self.stand_in = _stand_in(facts, self)

    @classmethod
    def of(cls, source: Source) -> _Description:
        """The description of ``source`` (asked again when its module file changed since): one this
        process was handed (:func:`handed_down`) or a child's."""
        key = (source.text(), _file_state(source))
        if key not in cls._known:
            given = _handed_to_us().get(key)
            if given is not None:
                cls._known[key] = cls(source, given["facts"], given["answers"])
            else:
                reply = _ask(source, [], "", None)
                cls._known[key] = cls(source, reply["facts"])
        return cls._known[key]

    def check(self, values: list[dict[str, Any]], submission: str, config: str | None) -> None:
        """Have the child check the values not checked yet (with these words for its messages)."""
        keys = [_key(v, submission, config) for v in values]
        todo = {key: v for key, v in zip(keys, values, strict=True) if key not in self.answers}
        if todo:
            reply = _ask(self.source, list(todo.values()), submission, config)
            self.answers.update(zip(todo, reply["checks"], strict=True))

    def answer(self, values: dict[str, Any], submission: str, config: str | None) -> dict[str, Any]:
        self.check([values], submission, config)
        return self.answers[_key(values, submission, config)]


def handed_down(trial: Any) -> dict[str, str]:
    """The environment variable that hands this process's description of ``trial``'s submission (a
    trial config), with its answer to the trial's values, to the processes it starts for that trial
    (the ranks of a data-parallel trial, which plan and record it as this process did): they ask no
    child again (~5 s of CPU: the forkserver's imports). It goes with the module file's size and
    modification time, so a rank describes a file changed since anew. Nothing for a built-in."""
    source_text = trial.submission.get("source")
    if not source_text:
        return {}
    source = Source.from_text(source_text, "submission")
    key = (source.text(), _file_state(source))
    description = _Description._known.get(key)
    if description is None:
        return {}
    asked = _key(_plain(trial.submission.hparams), trial.submission.name, trial.submission.get("config_from"))
    answers = {asked: description.answers[asked]} if asked in description.answers else {}
    return {HANDED_DOWN: json.dumps([{"source": key[0], "file_state": key[1], "facts": description.facts,
                                      "answers": answers}])}


def _handed_to_us() -> dict[tuple[str, tuple[int, int] | None], dict[str, Any]]:
    """The descriptions the process that started this one handed down, by their keys."""
    given = json.loads(os.environ.get(HANDED_DOWN) or "[]")
    return {(entry["source"], tuple(entry["file_state"]) if entry["file_state"] else None): entry for entry in given}


def _key(values: dict[str, Any], submission: str, config: str | None) -> str:
    return json.dumps([values, submission, config], sort_keys=True, default=repr)


def _file_state(source: Source) -> tuple[int, int] | None:
    """The module file's size and modification time (found without importing it): an edit is seen."""
    path = source.module if source.is_file else module_origin(source)
    try:
        status = os.stat(path) if path else None
    except OSError:
        return None
    return (status.st_size, status.st_mtime_ns) if status else None


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameter values (a config's or a dict) as plain Python, as the child is sent them."""
    return {key: plain_value(value) for key, value in values.items()}


def _stand_in(facts: dict[str, Any], description: _Description) -> type:
    """A class with the attributes of the described one that the harness reads (no code of the user's)."""
    fields = []
    for field in facts["hparams"]:
        if field.get("computed"):  # the class computes it (init=False): from_mapping sets the child's value
            spec = dataclasses.field(init=False, default=None)
        elif "default" not in field:
            spec = dataclasses.field()
        elif isinstance(field["default"], (list, dict)):
            spec = dataclasses.field(default_factory=lambda value=field["default"]: copy.deepcopy(value))
        else:
            spec = dataclasses.field(default=field["default"])
        fields.append((field["name"], field["type"], spec))

    def from_mapping(cls: type[TrainingHparams], values: Mapping[str, Any], submission: str = "",
                     config: str | None = None) -> TrainingHparams:
        """The values the submission's own ``Hparams`` made of ``values`` (its ``__post_init__`` may
        normalise them), or its refusal: what the trial's identity and manifest are made of."""
        answer = description.answer(_plain(values), submission, config)
        if "error" in answer:
            raise UserError(answer["error"])
        computed = set(computed_fields(cls))
        made = cls(**{name: value for name, value in answer["values"].items() if name not in computed})
        for name in computed & set(answer["values"]):  # as the real class's __post_init__ made them
            setattr(made, name, answer["values"][name])
        return made

    def post_init(self: TrainingHparams) -> None:
        """Nothing: the values were checked by the submission's own class, in the child."""

    hparams = dataclasses.make_dataclass(
        facts["hparams_class"], fields, bases=(TrainingHparams,), kw_only=True,
        namespace={"from_mapping": classmethod(from_mapping), "__post_init__": post_init,
                   "_description": description})
    hparams.__module__ = facts["module"]  # set after: dataclasses looks the module up while it makes the class
    attributes: dict[str, Any] = {
        "__module__": facts["module"], "__qualname__": facts["qualname"], "__doc__": facts["doc"],
        "Hparams": hparams, "revision": facts["revision"], "special_component": facts["special_component"],
    }
    if facts["search_space"] is not None:
        attributes["search_space"] = facts["search_space"]
    if facts["name"] is not None:
        attributes["name"] = facts["name"]
    stand_in = type(facts["class_name"], (), attributes)
    mark_described(stand_in, Path(facts["file"]) if facts["file"] else None)
    return stand_in


def _ask(source: Source, checks: list[dict[str, Any]], submission: str, config: str | None) -> dict[str, Any]:
    """Run :func:`_answer` in a child; its reply, or the UserError it says (a failed import, bad values)."""
    ctx = context()
    mine, theirs = ctx.Pipe(duplex=False)
    scratch = scratch_folder("describe")  # the one folder it may write to (harness/scratch.py)
    confined = os.environ.get(SANDBOX_VARIABLE, "auto").lower() != "false"
    child = ctx.Process(target=_answer, args=(theirs, source.text(), checks, submission, config, scratch, confined),
                        name="optbench-describe")
    with bare_start("optbench-describe"):
        child.start()
    theirs.close()
    try:
        if not mine.poll(DESCRIBE_TIMEOUT_S):
            raise UserError(f"Importing the submission {source.module} gave no answer within {DESCRIBE_TIMEOUT_S:.0f} s"
                            f"{'' if child.is_alive() else f' (its process ended with exit code {child.exitcode})'}. "
                            f"Check what its module does when imported ({import_command(source)}).")
        try:
            reply = json.loads(mine.recv_bytes())
        except EOFError:
            child.join(5)
            raise UserError(f"Importing the submission {source.module} ended its process (exit code "
                            f"{child.exitcode}) before it answered. Check what its module does when "
                            f"imported.") from None
    finally:
        _end(child)
        mine.close()
        shutil.rmtree(scratch, ignore_errors=True)
    if "error" in reply:
        raise UserError(reply["error"])
    return reply


def _end(child: Any) -> None:
    """Kill the child and whatever it started (threads, processes: its own process group)."""
    if child.pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
            os.killpg(child.pid, signal.SIGKILL)
    child.join(10)


def _answer(conn: Connection, source_text: str, checks: list[dict[str, Any]], submission: str,
            config: str | None, scratch: str, confined: bool) -> None:
    """The child's work: import the class, describe it and check the values; one JSON reply."""
    os.setpgid(0, 0)  # its own process group: killed with everything it starts
    give_up_tracing()  # importing the module runs its code: it may not reach into the harness's memory
    use_scratch(scratch)  # and it may write nothing its trainer could read later (harness/scratch.py)
    if confined and confine_writes(scratch) and seccomp.supported()[0]:
        seccomp.install()  # no UDP either: what it fetched could reach the trainer as an Hparams default
    try:
        cls = load_class(Source.from_text(source_text, "submission"), Submission)
        reply: dict[str, Any] = {"facts": _facts(cls), "checks": [_check(cls, v, submission, config) for v in checks]}
        text = json.dumps(reply)
    except UserError as error:
        said = str(error)
        if confined and "PermissionError" in said:  # a write its confinement refused (harness/scratch.py)
            said += (f" Its module was imported in a process that may write only temporary files (tempfile's "
                     f"folder), as its trainer may: write there, or set {SANDBOX_VARIABLE}=false in the "
                     f"environment (and sandbox=false) to let it write elsewhere (docs/decisions.md, \"Its sandbox\").")
        text = json.dumps({"error": said})
    except BaseException:
        text = json.dumps({"error": f"Describing the submission {source_text} failed:\n{traceback.format_exc()}"})
    conn.send_bytes(text.encode())
    conn.close()


def _check(cls: type[Submission], values: dict[str, Any], submission: str, config: str | None) -> dict[str, Any]:
    """What the submission's ``Hparams`` makes of ``values``: ``{"values": its as_dict()}``, or
    ``{"error": why}`` when it refuses them."""
    try:
        made = cls.Hparams.from_mapping(values, submission=submission, config=config).as_dict()
    except UserError as error:
        own = set(values) - {field.name for field in dataclasses.fields(TrainingHparams)}
        if cls.Hparams is TrainingHparams and own:  # the class forgot ``Hparams = ...``: say so
            return {"error": f"{error} {cls.__name__} has no Hparams of its own, so it takes only the batch size "
                             f"and schedule: declare {', '.join(sorted(own))} in a dataclass subclass of "
                             f"TrainingHparams and set it as the class's Hparams (Hparams = MyHparams; "
                             f"docs/writing-a-submission.md)."}
        return {"error": str(error)}
    except Exception as error:  # its own __post_init__ rules may raise anything
        return {"error": f"The hyperparameters of submission '{submission or cls.__name__}' were refused by its "
                         f"Hparams ({config or 'its YAML'}): {type(error).__name__}: {error}"}
    try:
        json.dumps(made)
    except (TypeError, ValueError):
        return {"error": f"The hyperparameters of submission '{submission or cls.__name__}' are {made!r}: each must "
                         f"be a plain value (a number, string, bool, list or mapping), as a trial's identity is JSON."}
    return {"values": made}


def _facts(cls: type[Submission]) -> dict[str, Any]:
    """What the harness reads of the class, as JSON."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    hparams = cls.Hparams
    if not (isinstance(hparams, type) and issubclass(hparams, TrainingHparams) and dataclasses.is_dataclass(hparams)):
        raise UserError(f"{where}.Hparams is {hparams!r}, not a dataclass subclassing harness.submission."
                        f"TrainingHparams (see docs/writing-a-submission.md).")
    require_declared_fields(hparams, cls.__name__)
    if mismatches := contract_mismatches(cls):
        raise UserError(f"{where} cannot run as a submission: {'; '.join(mismatches)}. The methods and what the "
                        f"harness passes them: docs/writing-a-submission.md.")
    fields = []
    for field in dataclasses.fields(hparams):
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        entry: dict[str, Any] = {"name": field.name, "type": kind}
        if not field.init:  # computed by the class: no default to offer as a setting
            entry["computed"] = True
        elif field.default is not dataclasses.MISSING:
            entry["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            entry["default"] = field.default_factory()
        if "default" in entry:
            _require_json(entry["default"], f"{where}.Hparams.{field.name}'s default")
        fields.append(entry)
    revision = getattr(cls, "revision", 1)
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise UserError(f"{where}.revision is {revision!r}: it must be an integer.")
    special = getattr(cls, "special_component", None)
    space = getattr(cls, "search_space", None)
    if space is not None:
        _require_json(space, f"{where}.search_space")
    name = getattr(cls, "name", None)
    file = module_file(cls)
    return {"class_name": cls.__name__, "qualname": cls.__qualname__, "module": cls.__module__,
            "doc": cls.__doc__ if isinstance(cls.__doc__, str) else None,
            "file": str(file) if file else None, "hparams_class": hparams.__name__, "hparams": fields,
            "revision": revision, "special_component": special if isinstance(special, str) else None,
            "search_space": space, "name": name if isinstance(name, str) else None}


def _require_json(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} is {value!r}: give it a plain value (a number, string, bool, list or mapping), "
                        f"as its YAML would.") from None
