"""GPT workload: the model's shape and masking, text loading from files and datasets, windows, errors."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch

import workloads.gpt as gpt
from harness.config.compose import compose_config
from harness.core.trial import run_trial
from harness.errors import UserError
from workloads._text import contiguous_split, evaluation_windows, random_windows

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8, "eval_windows": 4}
TEXT = "to be, or not to be: that is the question.\n" * 20  # 860 characters, 17 distinct


def _real_shakespeare() -> Path | None:
    """tinyshakespeare.txt for the real-data test: $OPTBENCH_TEST_DATA or ../shared/data."""
    path = Path(os.environ.get("OPTBENCH_TEST_DATA", REPO.parent / "shared" / "data")) / "tinyshakespeare.txt"
    return path if path.is_file() else None


def workload(data_dir: Path | None = None, size: str = "cpu", variant: str = "base", **options) -> gpt.CharGPT:
    """A gpt workload of ``size`` with option overrides (the cpu size declares every data option)."""
    overrides = ["workload=gpt", f"workload.size={size}", f"workload.variant={variant}"]
    overrides += [f"++workload.sizes.{size}.options.{k}={_value(v)}" for k, v in options.items()]
    cfg = compose_config("trial", overrides).workload
    return gpt.CharGPT(cfg, CPU, str(data_dir) if data_dir else None)


def _value(value: object) -> str:
    return f"'{value}'" if isinstance(value, (str, Path)) else str(value)


def loaded(data_dir: Path | None = None, **options) -> gpt.CharGPT:
    w = workload(data_dir, **{**TINY_MODEL, **options})
    w.load()
    return w


# ------------------------------------------------------------------------ model
def test_gpu_size_is_nanogpt_shakespeare_char_with_10_7m_parameters() -> None:
    w = workload(size="gpu")
    model = gpt.GPT(gpt.GPTConfig(vocab_size=65, **w.model_settings))
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 10.7e6) / 10.7e6 < 0.01, n
    assert (model.cfg.n_layer, model.cfg.n_head, model.cfg.n_embd, model.cfg.block_size) == (6, 6, 384, 256)
    assert model.cfg.dropout == 0.2


def test_attention_is_causal() -> None:
    torch.manual_seed(0)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16)).eval()
    idx = torch.randint(11, (2, 12))
    changed = idx.clone()
    changed[:, 7] = (idx[:, 7] + 1) % 11
    with torch.no_grad():
        a, b = model(idx), model(changed)  # (B, T, V)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_head_is_tied_to_the_token_embedding() -> None:
    model = gpt.GPT(gpt.GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    assert model.head.weight is model.token_embedding.weight
    names = [name for name, _ in model.named_parameters()]
    assert "token_embedding.weight" in names and "head.weight" not in names  # counted once
    model(torch.zeros(1, 8, dtype=torch.long)).sum().backward()
    assert model.token_embedding.weight.grad is not None


def test_variant_changes_the_activation_and_has_its_own_target() -> None:
    base, relu = workload(size="smoke"), workload(size="smoke", variant="relu")
    assert base.model_settings["activation"] == "gelu" and relu.model_settings["activation"] == "relu"
    assert relu.label == "gpt.relu"
    with torch.random.fork_rng():
        model = gpt.GPT(gpt.GPTConfig(vocab_size=5, **relu.model_settings))
    assert isinstance(model.blocks[0].mlp[1], torch.nn.ReLU)


def test_bad_model_settings_are_clear() -> None:
    with pytest.raises(UserError, match=r"Valid options: .*n_layer"):
        workload(size="smoke", n_layers=3)
    with pytest.raises(UserError, match="divisible by n_head"):
        workload(size="cpu", n_head=3)


# ------------------------------------------------------------------------ windows and splits
def test_training_windows_are_shifted_pairs_deterministic_in_the_seed() -> None:
    tokens = torch.arange(1000)

    def first(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(itertools.islice(random_windows(tokens, 16, 8, seed, chunk=3), 5))

    a, b, c = first(0), first(0), first(1)
    assert all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    for x, y in a:
        assert x.shape == y.shape == (8, 16)
        assert torch.equal(y, x + 1)  # targets are the next tokens of one contiguous window
        assert int(y.max()) <= 999


def test_splits_are_contiguous_and_do_not_overlap() -> None:
    tokens = torch.arange(1000)
    splits = contiguous_split(tokens, 0.05, 0.05)
    assert [s.numel() for s in splits.values()] == [900, 50, 50]
    assert torch.equal(torch.cat(list(splits.values())), tokens)
    windows = evaluation_windows(splits["validation"], block_size=7, max_windows=100)
    assert windows.shape == (6, 8) and int(windows.min()) >= 900 and int(windows.max()) < 950
    assert windows.flatten().unique().numel() == windows.numel()  # tiled without overlap


def test_evaluation_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text(TEXT)
    w = loaded(tmp_path, text_file="corpus.txt", validation_fraction=0.2, test_fraction=0.2)
    model = w.build_model(0).eval()
    first, again = w.evaluate(model, "validation"), w.evaluate(model, "validation")
    assert first == again and set(first) >= {"loss", "perplexity"}
    assert first["perplexity"] == pytest.approx(torch.tensor(first["loss"]).exp().item(), rel=1e-5)


# ------------------------------------------------------------------------ data sources
def test_reads_a_local_text_file(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text(TEXT)
    w = loaded(tmp_path, text_file="corpus.txt")
    assert w.vocab == "".join(sorted(set(TEXT)))
    total = w._train.numel() + sum(int(win.numel()) for win in w._eval.values())
    assert w._train.numel() == 860 - 2 * 43 and total > 0
    assert w.num_train_examples == (860 - 86) // 8
    assert str(tmp_path / "corpus.txt") in w.describe_data() and "vocabulary of 17" in w.describe_data()


def test_finds_nanogpt_input_txt_for_the_default_corpus(tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text(TEXT)
    assert str(tmp_path / "input.txt") in loaded(tmp_path).describe_data()


def test_missing_corpus_names_the_options(tmp_path: Path, without_shipped_data: None) -> None:
    with pytest.raises(UserError) as error:
        loaded(tmp_path)
    message = str(error.value)
    assert "OPTBENCH_OFFLINE" in message and "data_dir=" in message and "hf_dataset" in message
    with pytest.raises(UserError, match="was not found"):
        loaded(tmp_path, text_file="other.txt")


def test_an_empty_data_dir_is_refused_not_replaced_by_the_cache_or_the_shipped_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped corpus (and a cached download) serve only when no data_dir is given."""
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "downloads").mkdir(parents=True)
    (tmp_path / "cache" / "downloads" / gpt.SHAKESPEARE_FILE).write_text(TEXT)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as error:
        loaded(tmp_path / "empty")
    message = str(error.value)
    assert str(tmp_path / "empty") in message and gpt.SHAKESPEARE_FILE in message
    assert "only when no data_dir is given" in message


def test_an_empty_data_dir_is_downloaded_into_where_a_network_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTBENCH_OFFLINE", "0")
    destinations = []

    def fake_download(url: str, destination: Path) -> None:  # no network in tests
        destinations.append(destination)
        destination.write_text(TEXT)

    monkeypatch.setattr(gpt, "download_text", fake_download)
    (tmp_path / "empty").mkdir()
    w = loaded(tmp_path / "empty")
    assert destinations == [tmp_path / "empty" / gpt.SHAKESPEARE_FILE]
    assert str(destinations[0]) in w.describe_data()


def test_downloads_tiny_shakespeare_into_the_cache_where_a_network_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, without_shipped_data: None
) -> None:
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPTBENCH_OFFLINE", "0")
    fetched = []

    def fake_download(url: str, destination: Path) -> None:  # no network in tests
        fetched.append(url)
        destination.parent.mkdir(parents=True)
        destination.write_text(TEXT)

    monkeypatch.setattr(gpt, "download_text", fake_download)
    w = loaded()  # no data_dir: the cache
    assert fetched == [gpt.SHAKESPEARE_URL]
    assert str(tmp_path / "cache" / "downloads" / "tinyshakespeare.txt") in w.describe_data()
    loaded()
    assert len(fetched) == 1  # the second run reads the cached copy

    def failing_download(url: str, destination: Path) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "other-cache"))
    monkeypatch.setattr(gpt, "download_text", failing_download)
    with pytest.raises(UserError, match=r"the download failed \(OSError: Name or service not known\)"):
        loaded()


def test_empty_corpus_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match="is empty"):
        loaded(tmp_path, text_file="empty.txt")


def test_reads_a_saved_hugging_face_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    lines = TEXT.splitlines()
    datasets.Dataset.from_dict({"line": lines, "n": list(range(len(lines)))}).save_to_disk(tmp_path / "ds")
    w = loaded(hf_dataset=tmp_path / "ds", text_column="line")
    assert w.vocab == "".join(sorted(set(TEXT)))
    assert "Hugging Face dataset" in w.describe_data()
    # A DatasetDict: the split is picked by hf_split; a relative name is found in data_dir.
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": lines})}).save_to_disk(tmp_path / "dd")
    assert loaded(tmp_path, hf_dataset="dd").vocab == w.vocab
    with pytest.raises(UserError, match=r"no split 'validation'\. Its splits: train"):
        loaded(tmp_path, hf_dataset="dd", hf_split="validation")


def test_hugging_face_errors_are_clear(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"line": ["abc"], "n": [1]}).save_to_disk(tmp_path / "ds")
    with pytest.raises(UserError, match=r"no column 'text'\. Its columns: line, n"):
        loaded(hf_dataset=tmp_path / "ds")
    with pytest.raises(UserError, match="does not hold strings"):
        loaded(hf_dataset=tmp_path / "ds", text_column="n")
    datasets.Dataset.from_dict({"text": ["", ""]}).save_to_disk(tmp_path / "empty")
    with pytest.raises(UserError, match="is empty"):
        loaded(hf_dataset=tmp_path / "empty")
    with pytest.raises(UserError, match="OPTBENCH_OFFLINE is set"):  # no network is tried
        loaded(hf_dataset="no-such-user/no-such-dataset")


def test_a_null_row_of_a_text_column_is_named(tmp_path: Path) -> None:
    """Before: the first 100 rows were checked and a later null row ended in join's TypeError (exit 1)."""
    datasets = pytest.importorskip("datasets")
    lines = (TEXT.splitlines() * 8)[:150]
    lines[120] = None
    datasets.Dataset.from_dict({"text": lines}).save_to_disk(tmp_path / "holes")
    with pytest.raises(UserError, match=r"holds 1 row\(s\) that are not text \(the first: row 120, None\)"):
        loaded(hf_dataset=tmp_path / "holes")


def test_a_corpus_other_than_the_calibrated_one_is_told_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                     shipped_calibration_digests) -> None:
    """Before, a trial on another text_file ran to tiny Shakespeare's target without a word: its time
    to the target read as a calibrated one. The shipped sizes name the text they were calibrated on."""
    import json

    (shipped,) = shipped_calibration_digests("gpt")  # every size's: tiny Shakespeare, shipped in workloads/data
    corpus = tmp_path / "other.txt"
    corpus.write_text(TEXT * 20)
    for other in (False, True):
        overrides = ["workload=gpt", "workload.size=mini", "device=cpu", "max_steps=2", "threads=1",
                     f"results={tmp_path / 'results'}", *([f"workload.sizes.mini.options.text_file={corpus}"] * other)]
        summary = run_trial(compose_config("trial", overrides))
        manifest = json.loads((Path(summary["record_dir"]) / "manifest.json").read_text())
        assert manifest["target_data_sha256"] == shipped
        assert (manifest["data_sha256"] != shipped) == other, manifest["data_source"]
        assert ("was calibrated on other examples" in capsys.readouterr().err) == other


# ------------------------------------------------------------------------ end to end
def test_smoke_trial_reaches_its_target(smoke_cfg) -> None:
    # Bounded by steps, not seconds, so that a busy machine cannot make it fail.
    summary = run_trial(smoke_cfg("workload=gpt", "max_runtime_s=600", "max_steps=300"))
    assert summary["status"] == "reached", summary
    assert summary["best_validation"] <= summary["target"]


@pytest.mark.realdata
def test_real_tiny_shakespeare() -> None:
    path = _real_shakespeare()
    if path is None:
        pytest.skip("tinyshakespeare.txt not found (set OPTBENCH_TEST_DATA or provide ../shared/data)")
    w = workload(path.parent, size="cpu")
    w.load()
    assert len(w.vocab) == 65 and "1,115,394 characters" in w.describe_data()
    assert w._train.numel() == 1_115_394 - 2 * round(1_115_394 * 0.05)


def test_the_shipped_corpus_is_found_with_no_data_dir_and_no_network() -> None:
    """A fresh machine has only the repository: tiny Shakespeare comes from workloads/data/."""
    w = workload(None, size="cpu")
    w.load()
    assert "workloads/data/tinyshakespeare.txt" in w.describe_data() and "1,115,394 characters" in w.describe_data()
