"""mgritlab.results: one finder for the kept results."""
import pytest

from mgritlab.results import RESULTS_ENV, results_dir


def test_finds_the_checkout_results_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    found = results_dir("pdegcn")
    assert found is not None and (found / "README.md").exists()


def test_environment_variable_comes_first(tmp_path, monkeypatch):
    (tmp_path / "pdegcn").mkdir()
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    assert results_dir("pdegcn") == tmp_path / "pdegcn"


def test_missing_results_say_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    assert results_dir("no_such_results") is None
    with pytest.raises(FileNotFoundError, match=f"looked in: {tmp_path}.*{RESULTS_ENV}"):
        results_dir("no_such_results", required=True)
    with pytest.raises(ValueError, match="under results/"):
        results_dir("../etc")
