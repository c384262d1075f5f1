"""A record says which examples it was made on (the manifest's ``data_sha256``), and a record made
on other data is neither returned, resumed nor scored with this data's records: data_dir= is not
part of a trial's identity, so another copy of a dataset (re-encoded, edited, another release)
would otherwise find the first copy's records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.config.compose import compose_config
from harness.config.registry import workload_class
from harness.core.records import read_json
from harness.core.runner import _LOADED
from harness.workload import data_sha256

CPU = torch.device("cpu")


def loaded_digest(name: str, *overrides: str) -> str | None:
    cfg = compose_config("trial", [f"workload={name}", "workload.size=smoke", *overrides])
    workload = workload_class(name)(cfg.workload, CPU)
    workload.load()
    return workload.data_digest()


@pytest.mark.parametrize(("name", "seed_option"), [("fashion_mnist", "seed"), ("cifar10", "seed"),
                                                   ("gpt", "synthetic_seed")])
def test_each_dataset_s_digest_is_of_its_examples(name: str, seed_option: str) -> None:
    digest = loaded_digest(name)
    assert isinstance(digest, str) and len(digest) == 64
    assert loaded_digest(name) == digest  # read again: the same examples, the same digest
    assert loaded_digest(name, f"++workload.sizes.smoke.options.{seed_option}=7") != digest  # other examples


def test_the_digest_covers_dtype_shape_values_and_order() -> None:
    a = torch.arange(12, dtype=torch.uint8)
    digests = {data_sha256(a), data_sha256(a.reshape(3, 4)), data_sha256(a.to(torch.int64)),
               data_sha256(a.flip(0)), data_sha256(a, "x"), data_sha256("x", a)}
    assert len(digests) == 6
    assert data_sha256(a.reshape(3, 4).t()) == data_sha256(a.reshape(3, 4).t().contiguous())  # values, not strides
    half = torch.arange(6, dtype=torch.bfloat16)  # numpy has no bfloat16: this raised TypeError
    assert data_sha256(half) != data_sha256(half.float()) and data_sha256(half) == data_sha256(half.clone())


def test_an_array_of_python_objects_is_hashed_by_its_text_the_same_in_every_process() -> None:
    """Its bytes are pointers: a pandas column of text hashed otherwise in each process, so every
    record of such a workload would have been refused as made on other data."""
    import subprocess
    import sys

    script = ("import numpy as np; from harness.workload import data_sha256; "
              "print(data_sha256(np.array(['to be', 'or not'], dtype=object)))")
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
               for _ in range(2)}
    assert len(digests) == 1
    assert data_sha256(np.array(["to be", "or not"], dtype=object)) != data_sha256(np.array(["to be", "or no"],
                                                                                            dtype=object))


def corpus_trial(corpus: Path, results: Path, *extra: str) -> list[str]:
    """gpt's smoke model on a text file of the test's own (its data, which the test then edits)."""
    return ["trial", "workload=gpt", "workload.size=smoke", "workload.sizes.smoke.options.synthetic=false",
            f"++workload.sizes.smoke.options.text_file={corpus}", "progress=false", "device=cpu", "threads=1",
            "max_steps=30", f"results={results}", *extra]


def run(capsys: pytest.CaptureFixture, args: list[str]) -> tuple[int, dict | None, str]:
    """One command, as from a shell: a process of its own, which reads the data afresh (a process
    keeps what it loaded for its next trials: harness.core.runner.loaded)."""
    _LOADED.clear()
    code = main(args)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 200)
    return path


def edit(corpus: Path) -> None:
    corpus.write_text(corpus.read_text().replace("question", "Question", 1))


def test_a_finished_trial_made_on_other_data_is_not_returned(corpus: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    args = corpus_trial(corpus, tmp_path / "results")
    code, first, err = run(capsys, args)
    assert code == 0, err
    manifest = read_json(Path(first["record_dir"]) / "manifest.json")
    assert manifest["data_sha256"] == data_sha256(corpus.read_text())
    code, again, _ = run(capsys, args)
    assert code == 0 and again["cached"]  # the same data: the record is the answer
    edit(corpus)
    code, _, err = run(capsys, args)
    assert code == 2 and "finished with other data" in err and "rerun=true" in err, err
    code, rerun, err = run(capsys, [*args, "rerun=true"])
    assert code == 0 and not rerun.get("cached") and rerun["record_dir"] == first["record_dir"], err
    assert read_json(Path(first["record_dir"]) / "manifest.json")["data_sha256"] == data_sha256(corpus.read_text())


def test_a_checkpoint_made_on_other_data_is_not_resumed(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.core.runner

    args = corpus_trial(corpus, tmp_path / "results", "checkpoint_every_s=0")
    with monkeypatch.context() as patch:
        patch.setattr(harness.core.runner, "remove_checkpoint", lambda folder: None)
        code, first, err = run(capsys, args)
    assert code == 0, err
    record = Path(first["record_dir"])
    manifest = read_json(record / "manifest.json")
    (record / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "summary": None}))
    assert (record / "checkpoint.pt").is_file()  # an interrupted trial: what a rerun resumes
    edit(corpus)
    code, _, err = run(capsys, args)
    assert code == 2 and "was started with other data" in err and "data_sha256" in err, err
    assert (record / "checkpoint.pt").is_file()
    code, _, err = run(capsys, [*args, "rerun=true"])
    assert code == 0, err
    assert read_json(record / "manifest.json")["data_sha256"] == data_sha256(corpus.read_text())


def test_score_refuses_one_workload_s_records_made_on_two_copies_of_its_data(
        corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    code, _, err = run(capsys, corpus_trial(corpus, results, "seed=0"))
    assert code == 0, err
    assert main(["score", f"results={results}", f"out={tmp_path / 'board'}", "bootstrap=0"]) == 0
    capsys.readouterr()
    edit(corpus)
    code, _, err = run(capsys, corpus_trial(corpus, results, "seed=1"))  # another trial: nothing to refuse
    assert code == 0, err
    assert main(["score", f"results={results}", f"out={tmp_path / 'board'}", "bootstrap=0"]) == 2
    err = capsys.readouterr().err
    assert "different data digests" in err and "data_sha256" in err, err


def tune_args(corpus: Path, results: Path) -> list[str]:
    return ["tune", *corpus_trial(corpus, results)[1:], "submission=adamw", "studies=1", "trials=2"]


def test_tune_refuses_a_sweep_made_on_other_data_before_launching(corpus: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """Its finished trials are not launched again, so without this the old data's results came back
    as this data's ("all 2 trials already finished"), and score ranked them."""
    args = tune_args(corpus, tmp_path / "results")
    _LOADED.clear()
    assert main(args) == 0
    capsys.readouterr()
    edit(corpus)
    _LOADED.clear()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "2 of the 2 trials" in err and "other data: data_sha256" in err and "nothing was launched" in err, err


def test_tune_says_so_where_it_cannot_read_the_data_to_compare(corpus: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    """On a SLURM login node the data may live on the compute nodes only: the sweep goes on, saying
    that its records were not compared with the data."""
    args = tune_args(corpus, tmp_path / "results")
    _LOADED.clear()
    assert main(args) == 0
    capsys.readouterr()
    corpus.unlink()
    _LOADED.clear()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "cannot be read here, so its records are not compared" in err and "already finished" in err, err
