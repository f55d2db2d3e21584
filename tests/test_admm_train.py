"""Training runs with pdADMM-G (mgritlab.graphs.admm_train): staging, resume, records, the
GA-MLP's features and the Adam baseline, on a small synthetic graph."""
import json

import pytest
import torch

from mgritlab.graphs import admm_train, gamlp
from mgritlab.graphs.admm_experiments import byte_savings, format_summary, summary


def _graph(n=60, d=6, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    x = torch.randn(n, d, generator=g) + 1.5 * torch.nn.functional.one_hot(y, d)[:, :d]
    ei = torch.randint(0, n, (2, 150), generator=g)
    xa = gamlp.augment(x, ei, 3)
    perm = torch.randperm(n, generator=g)
    return gamlp.AugmentedGraph(xa, y, perm[:20], perm[20:40], perm[40:], num_classes=C, hops=3,
                                name="toy")


def test_augment_stacks_the_hops_of_the_normalised_adjacency():
    x = torch.arange(12.0).reshape(4, 3)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    ei = torch.cat([ei, ei.flip(0)], 1)
    a = torch.zeros(4, 4)
    a[ei[0], ei[1]] = 1
    a += torch.eye(4)
    dinv = a.sum(1).rsqrt()
    A = dinv[:, None] * a * dinv[None, :]
    got = gamlp.augment(x, ei, 3, dtype=torch.float64)
    want = torch.cat([x, A @ x, A @ A @ x], 1).double()
    assert torch.allclose(got, want, atol=1e-12)
    with pytest.raises(ValueError, match="hops"):
        gamlp.augment(x, ei, 0)


def test_deepen_keeps_the_function():
    graph = _graph()
    w = gamlp.init_weights(gamlp.widths(graph.num_features, 8, 3, 2), 0)
    deep = admm_train.deepen(w, 6)
    assert len(deep) == 6
    assert torch.allclose(gamlp.forward(graph.x, deep), gamlp.forward(graph.x, w), atol=1e-6)


def _cfg(**kw):
    base = dict(dataset="toy", layers=4, hidden=8, stages=(2,), stage_iterations=3,
                iterations=4, dtype="float64")
    base.update(kw)
    return admm_train.ADMMRun(**base)


def test_a_staged_run_records_every_iteration_and_selects_at_the_final_depth(tmp_path):
    graph = _graph()
    rec = admm_train.train_admm(_cfg(), 0, out_dir=tmp_path, graph=graph)
    h = rec["history"]
    assert [r["layers"] for r in h] == [2] * 3 + [4] * 4
    assert rec["finished"] and rec["best"]["epoch"] > 3
    best = max(h[3:], key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert rec["best"]["test_acc"] == best["test_acc"]
    # bytes: 2(L−1) messages of 20 rows × 8 hidden float64 entries at each depth
    assert [r["interface_bytes"] for r in h] == [2 * 1 * 20 * 8 * 8] * 3 + [2 * 3 * 20 * 8 * 8] * 4
    on_disk = json.loads((tmp_path / f"{rec['id']}.json").read_text())
    assert on_disk["best"] == rec["best"]


def test_resume_continues_exactly(tmp_path, monkeypatch):
    graph = _graph()
    cfg = _cfg(method="pdadmm-g-q")
    full = admm_train.train_admm(cfg, 1, graph=graph)
    calls = {"n": 0}
    real = admm_train.admm.iterate

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)
    monkeypatch.setattr(admm_train.admm, "iterate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        admm_train.train_admm(cfg, 1, out_dir=tmp_path, graph=graph, checkpoint_every=2)
    monkeypatch.setattr(admm_train.admm, "iterate", real)
    resumed = admm_train.train_admm(cfg, 1, out_dir=tmp_path, graph=graph, resume=True)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in full["history"]]
    assert resumed["best"] == full["best"]


@pytest.mark.parametrize("kw, match", [
    ({"method": "admm"}, "choose one of"), ({"stages": (4,)}, "increasing depths"),
    ({"stages": (1,)}, "increasing depths"), ({"iterations": 0}, "iterations"),
    ({"layers": 1, "stages": ()}, "at least 2 layers"), ({"rho": 0.0}, "rho=0.0"),
    ({"dtype": "float16"}, "float32 or float64")])
def test_bad_run_configurations_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**kw)


def test_adam_baseline_and_the_summary_table(tmp_path):
    graph = _graph()
    adam = admm_train.train_adam_run("toy", 2, 0, out_dir=tmp_path, graph=graph, epochs=30)
    assert adam["best"]["val_acc"] > 0.5  # the toy task is learnable
    g = admm_train.train_admm(_cfg(layers=2, stages=()), 0, out_dir=tmp_path, graph=graph)
    q = admm_train.train_admm(_cfg(layers=2, stages=(), method="pdadmm-g-q"), 0,
                              out_dir=tmp_path, graph=graph)
    rows = summary([adam, g, q])
    assert [r["method"] for r in rows] == ["adam", "pdadmm-g", "pdadmm-g-q"]
    saving = byte_savings(rows)[0]["saving"]
    assert saving == pytest.approx(1 - 1 / 8)  # float64 floats against one-byte codes
    table = format_summary(rows)
    assert f"{100 * g['best']['test_acc']:.1f} ± 0.0" in table
