"""The trainer's sandbox (harness/core/sandbox.py): under isolation=process a submission cannot read
the dataset's files or the records, write a file a later trial could read, or open a TCP
connection; the same probe does all of these with sandbox=false. Skipped, with the kernel's
reason, where Landlock is missing."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import socket
import tempfile
from pathlib import Path

import pytest
from test_integrity import HEADER as SGD_HEADER  # the probes' plain SGD (class Base)

from harness import seccomp
from harness.cli import main
from harness.core import sandbox
from harness.landlock import abi_version

ABI, WHY = abi_version()
needs_landlock = pytest.mark.skipif(ABI < 4, reason=f"needs Landlock ABI >= 4 (TCP rules); this kernel: "
                                                    f"{ABI or WHY}")
needs_any_landlock = pytest.mark.skipif(ABI < 1, reason=f"needs Landlock; this kernel: {WHY}")
HEADER = SGD_HEADER.replace("{", "{{").replace("}", "}}")  # the probes' sources are .format()ed
REPO = Path(__file__).resolve().parent.parent
SHIPPED_TEXT = REPO / "workloads" / "data" / "tinyshakespeare.txt"  # gpt's data, inside the code's folder
GPT = ["workload=gpt", "workload.size=mini", "progress=false", "device=cpu", "threads=1", "max_steps=5",
       "rerun=true", "isolation=process"]

PROBE = HEADER + '''
import ctypes, socket, tempfile
from pathlib import Path

READS, WRITES, PORT, UDP_PORT = {reads!r}, {writes!r}, {port!r}, {udp_port!r}


class Probe(Base):
    """Tries, in __init__, what a confined trainer may not do; fails the trial naming what worked."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        reached = []
        for path in READS:
            try:
                reached.append(f"read {{len(Path(path).read_bytes())}} bytes of {{path}}")
            except OSError:
                pass
        for path in WRITES:
            try:
                Path(path).write_bytes(b"trained weights")
                reached.append(f"wrote {{path}}")
            except OSError:
                pass
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=5).close()
            reached.append("connected")
        except OSError:
            pass
        try:  # UDP (QUIC, DNS): Landlock does not govern it, the seccomp filter does
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"weights?", ("127.0.0.1", UDP_PORT))
            reached.append("sent a datagram")
        except OSError:
            pass
        if ctypes.CDLL(None).prctl(36, 0, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER: a double fork would escape
            reached.append("cleared the subreaper flag")
        with tempfile.TemporaryFile() as scratch:  # its own temporary files keep working
            scratch.write(b"ok")
        if reached:
            raise RuntimeError("reached: " + "; ".join(reached))
'''


def probe_trial(tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[dict, list[str]]:
    """A gpt trial of the probe; its summary and the files it was to write."""
    earlier = tmp_path / "results" / "earlier" / "manifest.json"  # a record of an earlier trial
    earlier.parent.mkdir(parents=True, exist_ok=True)
    earlier.write_text("{}")
    writes = [str(tmp_path / "weights.pt"), str(Path.home() / f".optbench-probe-{os.getpid()}"),
              str(Path(tempfile.gettempdir()) / f"optbench-probe-{os.getpid()}")]
    with socket.socket() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagrams:
        server.bind(("127.0.0.1", 0))
        server.listen()
        datagrams.bind(("127.0.0.1", 0))
        source = PROBE.format(reads=[str(SHIPPED_TEXT), str(earlier)], writes=writes, port=server.getsockname()[1],
                              udp_port=datagrams.getsockname()[1])
        (tmp_path / "probe.py").write_text(source)
        status = main(["trial", f"submission={tmp_path / 'probe.py'}:Probe", *GPT, f"results={tmp_path / 'results'}",
                       *extra])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status in (0, 3), summary
    return summary, writes


@needs_landlock
def test_a_confined_trainer_reaches_neither_data_records_files_nor_network(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    summary, writes = probe_trial(tmp_path, capsys)
    assert summary["status"] != "failed", summary.get("error_message")
    assert summary["steps"] == 5
    assert not [w for w in writes if os.path.exists(w)]
    manifest = json.loads((Path(summary["record_dir"]) / "manifest.json").read_text())
    assert manifest["sandbox"] == {"confined": True, "landlock_abi": ABI, "seccomp": seccomp.supported()[0] or
                                   seccomp.supported()[1]}


@needs_landlock
def test_the_same_probe_reaches_all_of_them_unconfined(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    summary, writes = probe_trial(tmp_path, capsys, "sandbox=false")
    try:
        assert summary["status"] == "failed" and summary["error_in"] == "submission.__init__"
        message = summary["error_message"]
        assert f"of {SHIPPED_TEXT}" in message and "earlier/manifest.json" in message and "connected" in message
        assert "sent a datagram" in message and "cleared the subreaper flag" in message
        assert all(f"wrote {w}" in message for w in writes)
        manifest = json.loads((Path(summary["record_dir"]) / "manifest.json").read_text())
        assert manifest["sandbox"] == {"confined": False, "why": "sandbox=false"}
    finally:
        for w in writes:
            Path(w).unlink(missing_ok=True)


ESCAPE = HEADER + '''
import multiprocessing, time
import multiprocessing.forkserver as forkserver

ADDRESS = {address!r}


class Escape(Base):
    """Has the harness's forkserver fork it a process: one outside the trainer, so not confined."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        forkserver._forkserver._forkserver_address = ADDRESS
        forkserver._forkserver.ensure_running = lambda: None
        try:
            child = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(1,))
            child.start()
        except OSError:
            return
        raise RuntimeError(f"escaped: the harness's forkserver forked {{child.pid}}")
'''


@pytest.mark.skipif(ABI < 6, reason=f"needs Landlock ABI >= 6 (scopes); this kernel: {ABI or WHY}")
def test_a_confined_trainer_cannot_have_the_harness_s_forkserver_fork_it_an_unconfined_process(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Landlock does not govern connecting to a socket file: the server listened on one, and a
    trainer that found it in /proc/net/unix (here: handed it) got a process outside the sandbox."""
    from multiprocessing import forkserver

    from harness.config.child_process import start_server

    start_server()
    address = forkserver._forkserver._forkserver_address
    assert address.startswith("\0")
    (tmp_path / "escape.py").write_text(ESCAPE.format(address=address))
    main(["trial", f"submission={tmp_path / 'escape.py'}:Escape", *GPT, f"results={tmp_path / 'results'}"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] != "failed" and summary["steps"] == 5, summary.get("error_message")


def test_sandbox_true_without_landlock_and_a_bad_setting_are_refused_before_any_record(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "abi_version", lambda: (0, "the kernel has no Landlock"))
    for setting, said in (("sandbox=true", "the kernel has no Landlock"), ("sandbox=maybe", "'maybe' is not valid")):
        assert main(["trial", "submission=adamw", *GPT, f"results={tmp_path}", setting]) == 2
        assert said in capsys.readouterr().err
    assert not list(tmp_path.rglob("manifest.json"))


def test_a_sweep_with_a_bad_sandbox_setting_is_refused_before_it_is_planned(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tune", "submission=adamw", "workload=gpt", "workload.size=smoke", "isolation=process",
                 "sandbox=maybe", "studies=1", "trials=1", "launcher=inline", f"results={tmp_path}"]) == 2
    assert "sandbox='maybe' is not valid" in capsys.readouterr().err
    assert not list(tmp_path.rglob("sweep.json"))


def test_auto_without_landlock_trains_and_the_manifest_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "abi_version", lambda: (0, "the kernel has no Landlock"))
    for isolation, entry in (("process", {"confined": False, "why": "the kernel has no Landlock"}),
                             ("inprocess", None)):  # no trainer process to confine
        assert main(["trial", "submission=adamw", *GPT, f"results={tmp_path}", f"isolation={isolation}"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["steps"] == 5
        assert json.loads((Path(summary["record_dir"]) / "manifest.json").read_text())["sandbox"] == entry


@needs_any_landlock
def test_sandbox_true_does_not_take_an_unconfined_record_as_its_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A finished record whose trainer was not confined was returned to ``sandbox=true`` as if it had
    been; ``sandbox=auto`` still returns it (the leaderboard notes it), a sweep refuses it too."""
    once = [arg for arg in GPT if arg != "rerun=true"]
    assert main(["trial", "submission=adamw", *once, f"results={tmp_path}", "sandbox=false"]) == 0
    record = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["record_dir"])
    assert main(["trial", "submission=adamw", *once, f"results={tmp_path}", "sandbox=true"]) == 2
    said = capsys.readouterr().err
    assert "a trainer not confined then (sandbox=false), sandbox=true now" in said and "rerun=true" in said
    assert main(["trial", "submission=adamw", *once, f"results={tmp_path}"]) == 0  # sandbox=auto
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cached"] is True
    manifest = json.loads((record / "manifest.json").read_text())
    del manifest["sandbox"]  # a record made before the sandbox
    (record / "manifest.json").write_text(json.dumps(manifest))
    assert main(["trial", "submission=adamw", *once, f"results={tmp_path}", "sandbox=true"]) == 2
    assert "made before trainers were sandboxed" in capsys.readouterr().err
    assert main(["trial", "submission=adamw", *once, f"results={tmp_path}", "sandbox=true", "rerun=true"]) == 0
    capsys.readouterr()
    assert json.loads((record / "manifest.json").read_text())["sandbox"]["confined"] is True
    tune = ["tune", "submission=adamw", "workload=gpt", "workload.size=smoke", "isolation=process", "threads=1",
            "studies=1", "trials=1", "launcher=inline", "progress=false", f"results={tmp_path / 'sweep'}"]
    assert main([*tune, "sandbox=false"]) == 0
    assert main([*tune, "sandbox=true"]) == 2
    assert "made with other settings: a trainer not confined then (sandbox=false)" in capsys.readouterr().err


def test_files_a_workload_opens_while_loading_are_denied_and_code_is_not(tmp_path: Path) -> None:
    data, code = tmp_path / "images.bin", tmp_path / "helper.py"
    data.write_bytes(b"x")
    code.write_text("")
    with sandbox.data_reads():
        data.read_bytes()
        code.read_text()
    (tmp_path / "later.bin").write_bytes(b"y")  # opened outside the watch: not data of a workload
    (tmp_path / "later.bin").read_bytes()
    denied = sandbox.denied_paths(str(tmp_path / "results"), None)
    assert str(data.resolve()) in denied and str((tmp_path / "results").resolve()) in denied
    assert str(code.resolve()) not in denied and str((tmp_path / "later.bin").resolve()) not in denied


def confined(read: list[Path], deny: list[Path], attempts: dict) -> dict:
    """What each of ``attempts`` ({name: function}) returned, or "refused: ..." where it raised an
    OSError, in a child confined to ``read`` less ``deny`` (the rules are for good: only a child can be)."""
    scratch = tempfile.mkdtemp()
    out, into = os.pipe()
    pid = os.fork()
    if pid == 0:
        seen = {}
        try:
            sandbox.confine({"confined": True, "scratch": scratch, "read": [str(p) for p in read],
                             "deny": [str(p) for p in deny]})
            for name, attempt in attempts.items():
                try:
                    seen[name] = attempt()
                except OSError as error:
                    seen[name] = f"refused: {error.strerror}"
            seen["scratch"] = Path(tempfile.mkstemp()[1]).parent.name == Path(scratch).name
        finally:
            os.write(into, json.dumps(seen).encode())
            os._exit(0)
    os.close(into)
    with os.fdopen(out) as pipe:
        seen = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    return seen


REFUSED = "refused: Permission denied"


@needs_any_landlock
def test_a_folder_holding_a_denied_file_keeps_its_other_entries_readable(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "data").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "data" / "train.bin").write_bytes(b"held out")
    seen = confined([tmp_path], [tmp_path / "pkg" / "data" / "train.bin"], {
        "module": lambda: (tmp_path / "pkg" / "mod.py").read_text(),
        "listing": lambda: sorted(os.listdir(tmp_path / "pkg" / "data")),
        "data": lambda: (tmp_path / "pkg" / "data" / "train.bin").read_bytes().decode(),
        "write": lambda: (tmp_path / "pkg" / "new.py").write_text("")})
    assert seen == {"module": "X = 1\n", "listing": ["train.bin"], "data": REFUSED, "write": REFUSED,
                    "scratch": True}


@needs_any_landlock
def test_a_results_or_data_folder_that_holds_the_code_denies_all_but_the_code(tmp_path: Path) -> None:
    """results=. in a project folder, data_dir=~ above a virtual environment: before, the whole folder
    was denied, and with it the code the trainer imports."""
    project = tmp_path / "project"
    for folder in ("pkg", "venv/lib", "gpt-mini/adamw/seed0", "data"):
        (project / folder).mkdir(parents=True)
    (project / "pkg" / "mod.py").write_text("X = 1\n")
    (project / "venv" / "pyvenv.cfg").write_text("")
    (project / "venv" / "lib" / "site.txt").write_text("library")
    (project / "gpt-mini" / "adamw" / "seed0" / "manifest.json").write_text("{}")
    (project / "data" / "train.bin").write_bytes(b"held out")
    seen = confined([project], [project], {
        "module": lambda: (project / "pkg" / "mod.py").read_text(),
        "environment": lambda: (project / "venv" / "lib" / "site.txt").read_text(),
        "record": lambda: (project / "gpt-mini" / "adamw" / "seed0" / "manifest.json").read_text(),
        "data": lambda: (project / "data" / "train.bin").read_text()})
    assert seen == {"module": "X = 1\n", "environment": "library", "record": REFUSED, "data": REFUSED,
                    "scratch": True}


LEAKS = HEADER + '''
import socket
from pathlib import Path

try:  # at import, in whichever process imports it: the shipped text, beside the module, for its trainer
    Path(__file__).with_name("leaked.txt").write_text(Path({text!r}).read_text()[:1000])
except OSError:
    pass
try:  # or sent out (and trained weights fetched back) over UDP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"leaked", ("127.0.0.1", {port!r}))
except OSError:
    pass


class Leaks(Base):
    pass
'''


@needs_any_landlock
@pytest.mark.parametrize("variable", ["auto", "false"])
def test_the_child_that_describes_a_submission_writes_no_file_its_trainer_could_read(
        variable: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module's top level runs in the child that imports it to describe its class, before any trial:
    a file it wrote beside itself could be read by its trainer (which reads its own source folder)."""
    monkeypatch.setenv("OPTBENCH_SANDBOX", variable)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        (tmp_path / "leaks.py").write_text(LEAKS.format(text=str(SHIPPED_TEXT), port=server.getsockname()[1]))
        assert main(["trial", f"submission={tmp_path / 'leaks.py'}:Leaks", *GPT,
                     f"results={tmp_path / 'results'}"]) == 0
        try:
            sent = server.recv(100) == b"leaked"  # the trainer (confined: sandbox=auto) sent none
        except BlockingIOError:
            sent = False
    assert (tmp_path / "leaked.txt").exists() == (variable == "false") == sent


def test_a_package_an_import_hook_finds_is_readable_by_its_trainer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable install maps its project through a finder on sys.meta_path, on no sys.path entry:
    before, a confined trainer could not read the package its submission's module is in."""
    import importlib.abc
    import importlib.util
    import sys

    package = tmp_path / "project" / "hookpkg"
    (package / "inner").mkdir(parents=True)
    for init in (package / "__init__.py", package / "inner" / "__init__.py"):
        init.write_text("")
    (package / "inner" / "opt.py").write_text("")

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hookpkg":
                return importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                              submodule_search_locations=[str(package)])
            return None

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert sandbox.source_folders("hookpkg.inner.opt:SUBMISSION", None) == [str(package)]
    assert sandbox.source_folders(f"{package / 'inner' / 'opt.py'}:SUBMISSION") == [str(package / "inner")]


@needs_any_landlock
def test_a_module_whose_import_writes_beside_itself_is_told_how_to_let_it(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Before, its import failed with "Fix its code" alone, and sandbox=false did not reach the
    describing child: the way to let it write was nowhere said."""
    source = HEADER + "\nfrom pathlib import Path\nPath(__file__).with_name('log.txt').write_text('imported')\n"
    (tmp_path / "writes.py").write_text(source.replace("{{", "{").replace("}}", "}"))
    assert main(["trial", f"submission={tmp_path / 'writes.py'}:Base", *GPT, f"results={tmp_path / 'results'}"]) == 2
    err = capsys.readouterr().err
    assert "PermissionError" in err and "OPTBENCH_SANDBOX=false" in err and "sandbox=false" in err
    assert not (tmp_path / "log.txt").exists()


def _socket(family: int, kind: int) -> str:
    socket.socket(family, kind).close()
    return "made"


def _call(number: int, *args: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(number), *map(ctypes.c_long, args))
    return f"refused: {os.strerror(ctypes.get_errno())}" if result < 0 else "made"


@needs_any_landlock
@pytest.mark.skipif(not seccomp.supported()[0], reason=f"no seccomp filter here: {seccomp.supported()[1]}")
def test_the_seccomp_filter_refuses_ip_sockets_io_uring_and_clearing_the_subreaper_flag_alone() -> None:
    machine = platform.machine()
    _, sys_socket, sys_prctl, sys_io_uring_setup = seccomp.ARCHITECTURES[machine]
    attempts = {
        "udp": lambda: _socket(socket.AF_INET, socket.SOCK_DGRAM),
        "udp6": lambda: _socket(socket.AF_INET6, socket.SOCK_DGRAM),
        "tcp": lambda: _socket(socket.AF_INET, socket.SOCK_STREAM),
        "packet": lambda: _call(sys_socket, 17, socket.SOCK_DGRAM, 0),  # AF_PACKET
        "io_uring": lambda: _call(sys_io_uring_setup, 4, 0),  # refused before its (bad) arguments are read
        "clear subreaper": lambda: _call(sys_prctl, seccomp.PR_SET_CHILD_SUBREAPER, 0),
        # what a trainer needs keeps working
        "unix": lambda: _socket(socket.AF_UNIX, socket.SOCK_STREAM),
        "socketpair": lambda: str(len(socket.socketpair())),
        "netlink": lambda: _socket(socket.AF_NETLINK, socket.SOCK_RAW),
        "parent death signal": lambda: _call(sys_prctl, 1, 9),  # PR_SET_PDEATHSIG (a DataLoader's workers)
    }
    if machine == "x86_64":  # the x32 ABI's socket(): the same call under another number
        attempts["x32 udp"] = lambda: _call(sys_socket | seccomp.X32_BIT, socket.AF_INET, socket.SOCK_DGRAM, 0)
    seen = confined([], [], attempts)
    refused = "refused: Operation not permitted"
    assert {name: seen[name] for name in attempts} == {
        "udp": refused, "udp6": refused, "tcp": refused, "packet": refused, "io_uring": refused,
        "clear subreaper": refused, "unix": "made", "socketpair": "2", "netlink": "made", "parent death signal": "made",
        **({"x32 udp": refused} if machine == "x86_64" else {})}
