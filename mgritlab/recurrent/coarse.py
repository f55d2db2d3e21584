"""Why the implicit GRU: MGRIT over the sequence with the classic and the implicit coarse step.

On coarse level ℓ the GRU takes Δt = c_f^ℓ; the classic step multiplies its stiff mode by
1 − λΔt (λ = 1 − z ∈ (0, 1)), the implicit one by 1/(1 + λΔt)
(:func:`mgritlab.stability.R_forward_euler`, :func:`~mgritlab.stability.R_backward_euler` at
z = −λΔt). :func:`coarse_residuals` solves the same forward recurrence (the same weights and
inputs) with each scheme to a tolerance and returns the residual histories: the classic
hierarchy diverges once c_f^ℓ λ > 2 on some coarse level, the implicit one converges.
"""
from __future__ import annotations

import math
import re

import torch

from ..mgrit import MGRITDivergenceError
from ..nn.layer_parallel import LayerParallel
from .gru import GRUStack


def coarse_residuals(stack: GRUStack, h0: torch.Tensor, inputs, *, levels: int = 3,
                     cf: int = 4, schemes=("classic", "implicit"), max_iter: int = 20
                     ) -> dict[str, dict]:
    """{scheme: {'residuals': [...], 'diverged': bool, 'message': str}} of an exact forward
    MGRIT solve (F-relaxation on the fine level, FCF below) of ``stack``'s recurrence with
    its weights, every level in ``scheme``."""
    out = {}
    for scheme in schemes:
        s = GRUStack(stack.input_size, stack.hidden_size, stack.depth,
                     num_layers=stack.num_layers, scheme=scheme, dt=stack.dt,
                     dtype=h0.dtype)
        s.load_state_dict(stack.state_dict())
        lp = LayerParallel(s, max_levels=levels, cf=cf, exact=True, exact_max_iter=max_iter,
                           on_divergence="warn", warm_start=False)
        try:
            with torch.no_grad(), _quiet():
                lp(h0, frozen=inputs)
            st = lp.stats["forward"]
            r = st.residuals
            diverged = not st.converged and (not math.isfinite(r[-1]) or r[-1] > r[0])
            out[scheme] = {"residuals": r, "diverged": diverged, "message": ""}
        except MGRITDivergenceError as err:
            out[scheme] = {"residuals": _residuals_from(err), "diverged": True,
                           "message": str(err).splitlines()[0]}
    return out


def _residuals_from(err: Exception) -> list[float]:
    """The last residual a divergence error names ("residual R after iteration k"), as the
    history [nan] * (k − 1) + [R] (empty if it names none)."""
    m = re.search(r"residual (\S+) (?:\(tol [^)]*\) )?after iteration (\d+)", str(err))
    if m is None:
        return []
    return [math.nan] * (int(m.group(2)) - 1) + [float(m.group(1).rstrip(",."))]


class _quiet:
    """Silence the once-per-module RuntimeWarning of on_divergence='warn' (the result says)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def basic_motions_comparison(*, seed: int = 0, batch: int = 8, hidden: int = 32,
                             levels: int = 3, cf: int = 4, max_iter: int = 20) -> dict:
    """:func:`coarse_residuals` for a GRU with the initial weights of ``seed`` on the first
    ``batch`` BasicMotions training sequences (float64): the record kept in results/gru."""
    from .datasets import load_basic_motions
    from .gru import StepInputs

    data = load_basic_motions(dtype=torch.float64)
    stack = GRUStack(data.channels, hidden, data.steps,
                     generator=torch.Generator().manual_seed(seed))
    x = data.x_train[:batch]
    out = coarse_residuals(stack, torch.zeros(batch, hidden, dtype=torch.float64),
                           StepInputs(x.transpose(0, 1)), levels=levels, cf=cf,
                           max_iter=max_iter)
    return {"seed": seed, "batch": batch, "hidden": hidden, "levels": levels, "cf": cf,
            "steps": data.steps, "max_iter": max_iter, "schemes": out}
