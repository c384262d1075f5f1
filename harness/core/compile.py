"""torch.compile outside the clock: the trial setting ``compile`` (``true | false | auto``).

``auto`` compiles on CUDA for sizes whose budget was measured on a GPU (``device_class: gpu``),
nowhere else (nor in a data-parallel trial, nor under ``isolation=process``). The model is
compiled in place (as ``nn.Module.compile`` does: the same module object, the same parameters and
``state_dict`` keys, so the submission, checkpoints and resume see no difference) and then warmed
up before the clock starts: one forward and backward pass, through
the loss exactly as the trial computes it (its precision included), on the first batch of a
*separate* stream of the trial's seed, then one evaluation of the validation split as the trial's
evaluations run (eval mode, no autograd: a graph of its own). Everything that pass could change is put back afterwards:
the model's parameters and buffers (BatchNorm statistics), the gradients (None again) and every
global RNG (dropout), so the trial starts exactly as an eager one would; the trial's own stream
is never touched. Dynamo keeps the compiled code on the module, and the trial's steps reuse it.
Within one process (an inline sweep), a later trial of the same model finds its code already
compiled and its ``compile_s`` is small; TorchInductor's on-disk cache shortens it across processes.

The warm-up also checks that the model really runs compiled: Dynamo falls back to eager code,
silently, where it skips a file, reaches its recompile limit or suppresses an error, and such a
trial would be recorded as compiled (:func:`check_compiled`).

The warm-up's time is recorded as ``timing.compile_s`` and not charged (``charge_compile=true``
skips the warm-up instead, so the first steps compile under the clock, as AlgoPerf charges it;
its model is checked all the same, traced once without kernels and forgotten).
Why: docs/decisions.md, "torch.compile".
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sysconfig
import time
import warnings
from pathlib import Path
from types import CodeType
from typing import Any

import torch
from torch import nn

from harness.core.checkpoint import capture_rng, restore_rng
from harness.core.evaluation import EvaluationFailed, evaluate
from harness.core.parts import warm_up
from harness.core.team import current_team
from harness.errors import UserError
from harness.workload import Workload

COMPILE_SETTINGS = ("true", "false", "auto")


def compile_setting(value: Any) -> str:
    """The ``compile`` setting as one of :data:`COMPILE_SETTINGS` (Hydra may hand a bool)."""
    setting = str(value).lower()
    if setting not in COMPILE_SETTINGS:
        raise UserError(f"compile={value} is not valid. Valid settings: {', '.join(COMPILE_SETTINGS)} "
                        f"(auto: on for CUDA trials of gpu sizes).")
    return setting


def trial_compile_setting(cfg: Any) -> str:
    """A trial config's ``compile``, checked, with ``auto`` off where the submission runs in a
    trainer process (``isolation=process``, which does not compile: only ``compile=true`` is refused there)."""
    setting = compile_setting(cfg.compile)
    return "false" if setting == "auto" and cfg.isolation == "process" else setting


def compiles(setting: Any, workload: Workload, device: torch.device) -> bool:
    """Whether the trial compiles its model: ``true``, or ``auto`` on CUDA for a gpu size.

    A trial that compiles where torch.compile cannot work is refused (:func:`check_available`).
    """
    chosen = compile_setting(setting)
    alone = current_team().size == 1  # not combined with data-parallel trials (core/distributed.py)
    gpu_size = device.type == "cuda" and workload.spec.device_class == "gpu"
    on = chosen == "true" or (chosen == "auto" and alone and gpu_size)
    if on:
        check_available(device)
    return on


def check_available(device: torch.device) -> None:
    """Refuse compilation where this PyTorch cannot do it, saying why and what to do instead."""
    dynamo = getattr(torch, "_dynamo", None)
    if not hasattr(nn.Module, "compile") or dynamo is None or not dynamo.is_dynamo_supported():
        raise UserError(f"compile=true needs torch.compile, which PyTorch {torch.__version__} does not support here "
                        f"(this Python or platform). Use compile=false.")
    if switched_off := dynamo_switched_off(dynamo):
        raise UserError(f"compile=true (or auto, for a CUDA trial of a gpu size) needs Dynamo, which is switched off "
                        f"here ({switched_off}): the model would run eager in a trial recorded as compiled. Use "
                        f"compile=false, or unset {switched_off.split('=')[0]}.")
    if device.type == "cpu" and not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        raise UserError("compile=true on the CPU needs a C++ compiler (TorchInductor builds C++ kernels), and none "
                        "(c++, g++, clang++) is on the PATH. Install one, or use compile=false.")
    if device.type == "cuda" and (missing := cuda_compile_missing()):
        raise UserError(f"Compiling on CUDA (compile=true, or auto for a gpu size) needs what is missing here: "
                        f"{'; '.join(missing)}. Install it, or use compile=false.")


def dynamo_switched_off(dynamo: Any) -> str:
    """What switches Dynamo off here ("NAME='value'"), or "" where nothing does. torch.compile reads
    ``TORCHDYNAMO_DISABLE`` itself; Dynamo's config reads ``TORCH_COMPILE_DISABLE`` at import."""
    if os.environ.get("TORCHDYNAMO_DISABLE", "") == "1":
        return "TORCHDYNAMO_DISABLE='1'"
    if dynamo.config.disable:
        variable = os.environ.get("TORCH_COMPILE_DISABLE")
        return "torch._dynamo.config.disable=True" if variable is None else f"TORCH_COMPILE_DISABLE={variable!r}"
    return ""


def cuda_compile_missing() -> list[str]:
    """What TorchInductor's GPU kernels need that this machine lacks: Triton, and for the launcher
    Triton builds at the first compiled call, a C compiler and this Python's headers. Without them
    the warm-up fails in the harness, and each rerun of the trial the same way."""
    missing = []
    if importlib.util.find_spec("triton") is None:
        missing.append("Triton (the package `triton`, TorchInductor's GPU kernel compiler)")
    if not (os.environ.get("CC") or any(shutil.which(name) for name in ("gcc", "clang"))):  # Triton's own search
        missing.append("a C compiler on the PATH (gcc or clang; or $CC): Triton builds its launcher with it")
    scheme = sysconfig.get_default_scheme()  # as Triton: Debian's posix_local names /usr/local, not the headers
    scheme = "posix_prefix" if scheme == "posix_local" else scheme
    headers = Path(sysconfig.get_paths(scheme=scheme)["include"]) / "Python.h"
    if not headers.is_file():
        missing.append(f"this Python's headers ({headers}; e.g. Debian's python3-dev): Triton's launcher includes them")
    return missing


def compile_identity(setting: Any, charge: bool, workload: Workload, device: torch.device) -> dict[str, Any]:
    """Compilation's part of a trial's identity: nothing for an eager trial, so old hashes hold."""
    if not compiles(setting, workload, device):
        return {}
    return {"compile": True, **({"charge_compile": True} if charge else {})}


def compile_in_place(model: nn.Module, backend: Any = "inductor") -> None:
    """``model.compile``, with TorchInductor drawing random numbers (dropout's masks) as eager torch does.

    Inductor's own generator is faster but draws other masks from the same seed, so a compiled
    trial with dropout would leave the eager trial's trajectory at its first step
    (``fallback_random``; docs/decisions.md, "torch.compile").

    What ``model.compile`` does, with one frame of ours on top: Dynamo skips code in torch's own
    files, and in some releases (PyTorch 2.11, for one) ``model.compile`` of a module whose ``forward``
    is torch's (``nn.Sequential``: fashion_mnist's and cifar10's models) compiled nothing: eager.

    Dynamo keeps compiled code, and its recompile limit (8), per code object: each architecture gets
    a frame of its own (:func:`_architecture_code`), so a process's models do not share that limit.
    """
    call = model._call_impl  # what Module.__call__ runs: hooks, then forward

    def call_compiled(*args: Any, **kwargs: Any) -> Any:  # a frame outside torch's files: Dynamo traces it
        return call(*args, **kwargs)

    call_compiled.__code__ = _architecture_code(model, call_compiled.__code__)
    model._compiled_call_impl = _compiled(call_compiled, backend)


_architecture_codes: dict[str, CodeType] = {}  # a model's class and structure: its frame's code object


def _architecture_code(model: nn.Module, code: CodeType) -> CodeType:
    """The code object ``model``'s compiled frame runs: one per architecture in this process.

    With one for every model, an inline sweep or suite compiling several architectures (each for
    training and for evaluation, and again for a second batch size) would reach Dynamo's recompile
    limit after four or so, and run the next models eager: refused by the warm-up's check, and their
    evaluations eager unchecked. A model of an architecture already compiled (an inline sweep's next
    trial) finds that architecture's code, and Dynamo reuses what it compiled. The key is the class and
    ``repr`` (modules, shapes, settings); what it misses is left to Dynamo's guards. Where Dynamo
    guards each module's identity (PyTorch before 2.5), no model can reuse another's code: what Dynamo
    kept of earlier models is forgotten, or each would take one of the architecture's 8 entries.
    """
    if not _models_share_compiled_code():
        torch._dynamo.reset()
    architecture = f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}"
    if architecture not in _architecture_codes:
        name = f"{code.co_name}_{len(_architecture_codes)}"  # names the architecture in Dynamo's logs
        _architecture_codes[architecture] = code.replace(co_name=name)
    return _architecture_codes[architecture]


def _models_share_compiled_code() -> bool:
    """Whether Dynamo inlines ``nn.Module`` code with parameters as inputs (always, from PyTorch 2.5 on,
    which deprecates the setting) rather than guarding each module's identity."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "deprecated and does not do anything": always on
        return bool(getattr(torch._dynamo.config, "inline_inbuilt_nn_modules", True))


def _compiled(function: Any, backend: Any) -> Any:
    """``torch.compile(function)`` as the harness compiles: TorchInductor with eager torch's random numbers."""
    options = {"options": {"fallback_random": True}} if backend == "inductor" else {}
    return torch.compile(function, backend=backend, **options)


_compiled_node_types: dict[tuple[Any, str], str | None] = {}  # (backend, device type): what a probe found


def compiled_node_type(backend: Any, device: torch.device) -> str | None:
    """The autograd node a compiled region leaves in a loss's graph with this backend, or None.

    Learnt once per process from a probe (a tiny function compiled here) rather than named, so that
    a PyTorch whose node is called otherwise disables the check instead of refusing every compiled
    trial. TorchInductor's regions go through AOTAutograd, which leaves one node per region; a backend
    that runs Dynamo's graphs as eager code (``eager``, a test's counting one) leaves none: None.
    A probe that ran as it is (Dynamo failed, its errors suppressed) is refused.
    """
    key = (backend, device.type)  # a backend object (a test's) is kept with what it left
    if key in _compiled_node_types:
        return _compiled_node_types[key]

    def probe(tensor: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return (tensor * 2).sum(), torch.compiler.is_compiling()  # True only where Dynamo traced it

    probe.__code__ = probe.__code__.replace()  # a code object of its own: no earlier probe's recompile limit
    with torch.enable_grad():
        eager, _ = probe(torch.ones(2, device=device, requires_grad=True))
        compiled, traced = _compiled(probe, backend)(torch.ones(2, device=device, requires_grad=True))
    if not traced:
        raise UserError(f"torch.compile does not compile here (PyTorch {torch.__version__}, {device.type}): a "
                        f"function compiled as the harness compiles ran as it is (Dynamo's errors are "
                        f"suppressed: torch._dynamo.config.suppress_errors; TORCH_LOGS=dynamo says what failed); "
                        f"a trial recorded as compiled would run eager. Run it with compile=false.")
    node_types = {type(loss.grad_fn).__name__ for loss in (eager, compiled)}
    found = type(compiled.grad_fn).__name__ if len(node_types) == 2 else None
    _compiled_node_types[key] = found
    return found


def check_compiled(loss: torch.Tensor, node_type: str | None, device: torch.device) -> None:
    """Refuse a warm-up whose loss was computed without any compiled region: Dynamo ran the model eagerly.

    It does so silently where it skips a file (PyTorch 2.11 skipped ``nn.Sequential``'s forward), has
    recompiled a frame too often (``torch._dynamo.config.recompile_limit``) or suppresses an error; a
    trial recorded as compiled would then run eager. Looked for in the loss's autograd graph, so a
    model whose code was compiled by an earlier trial of this process is checked like a new one.
    ``node_type`` None (a backend that leaves no trace there): nothing to check.
    """
    if node_type is None:
        return
    seen, waiting = set(), [loss.grad_fn]
    while waiting:
        node = waiting.pop()
        if node is None or node in seen:
            continue
        if type(node).__name__ == node_type:
            return
        seen.add(node)
        waiting.extend(next_node for next_node, _ in node.next_functions)
    raise UserError(f"torch.compile compiled nothing of the model (PyTorch {torch.__version__}, {device.type}): "
                    f"Dynamo ran its forward pass eagerly, and a trial recorded as compiled would run eager. "
                    f"TORCH_LOGS=graph_breaks,recompiles shows Dynamo's reason. Run it with compile=false, or "
                    f"with another PyTorch.")


def compile_before_clock(model: nn.Module, workload: Workload, batch_size: int, seed: int, setting: Any,
                         charge: bool = False, backend: Any = "inductor") -> float:
    """Compile ``model`` in place when the trial does, warmed up and restored; the seconds it took.

    0.0 when the trial does not compile, or when ``charge`` leaves the compilation to the first
    steps (under the clock). ``backend``: torch.compile's (tests pass a counting one).
    """
    if not compiles(setting, workload, workload.device):
        return 0.0
    if charge:  # each trial pays its own compilation, as in a fresh process: Dynamo checks it can trace
        torch._dynamo.reset()  # the model with a backend that compiles nothing (AOTAutograd's eager one:
        compile_in_place(model, "aot_eager")  # no kernels, nothing in inductor's caches), then forgets it
        _checked_warm_up(model, workload, batch_size, seed, "aot_eager", backward=False)
        torch._dynamo.reset()  # (and an inline sweep's earlier trials): the first steps compile from scratch
        compile_in_place(model, backend)
        return 0.0
    compile_in_place(model, backend)
    started = time.perf_counter()
    _checked_warm_up(model, workload, batch_size, seed, backend, backward=True)
    _warm_up_evaluation(model, workload)
    return time.perf_counter() - started


def _warm_up_evaluation(model: nn.Module, workload: Workload) -> None:
    """One evaluation of the validation split, as the trial's evaluations run, so that Dynamo compiles
    the model in eval mode without autograd (a graph of its own) here and not at the trial's first
    evaluation, where it would be counted as evaluation time and, on the first progress line, make
    the wall time per charged second (the ETA) many times too long. The model in eval mode changes
    nothing (no BatchNorm statistics, no dropout); the global RNGs are put back all the same. A
    workload whose evaluation fails is left to the trial's own first evaluation, which records it."""
    rng = capture_rng(workload.device)
    try:
        evaluate(workload, model, "validation")
    except EvaluationFailed:
        pass
    finally:
        restore_rng(rng, workload.device)
    if workload.device.type == "cuda":
        torch.cuda.synchronize(workload.device)



def _checked_warm_up(model: nn.Module, workload: Workload, batch_size: int, seed: int, backend: Any,
                     backward: bool) -> None:
    """The compiled ``model``'s warm-up (:func:`harness.core.parts.warm_up`), checked to have run compiled."""
    node_type = compiled_node_type(backend, workload.device)

    def check(loss: torch.Tensor) -> None:
        try:
            check_compiled(loss, node_type, workload.device)
        except UserError:  # what Dynamo kept of this architecture's frame (run as it is) would refuse
            torch._dynamo.reset()  # every later model of it in this process (an inline sweep's): forgotten
            raise

    warm_up(model, workload, batch_size, seed, check, backward)
