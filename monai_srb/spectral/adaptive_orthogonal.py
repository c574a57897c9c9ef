"""The SRB_A local-to-global transform: the paper's adaptive orthogonal matrices (AOM)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.utils import look_up_option
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal

from monai_srb.spectral.cosine import dct_matrix
from monai_srb.spectral.matrix_transform import SeparableMatrixTransform

__all__ = ["AdaptiveOrthogonalTransform", "retract_orthogonal_", "orthogonal_qr"]


def orthogonal_qr(matrix: torch.Tensor) -> torch.Tensor:
    """
    The orthogonal factor ``Q`` of ``matrix = Q R``, with the signs fixed so that ``diag(R) > 0``.

    The sign fix makes the map continuous and the identity on orthogonal matrices, so a retraction
    after a small gradient step moves the matrix by a small amount instead of flipping columns.
    Computed in float64 because the retraction is applied thousands of times during training.
    """
    q, r = torch.linalg.qr(matrix.double())
    signs = torch.sign(torch.diagonal(r))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs.unsqueeze(0)).to(matrix.dtype)


class AdaptiveOrthogonalTransform(SeparableMatrixTransform):
    """
    The paper's adaptive orthogonal matrices (AOM): ``f(X_c) = P X_c Q`` with real orthogonal ``P``
    (H x H) and ``Q`` (W x W), and a third matrix along depth in 3D, learned with the network.

    Two ways to keep the matrices orthogonal while learning:

    - ``mode="qr"`` (the paper): plain parameters, updated by the optimiser and pulled back onto the
      orthogonal group by :func:`retract_orthogonal_` after every optimiser step (the bundles' Ignite
      handler does this). The forward pass is a plain matmul and the module is TorchScript-scriptable;
      between a step and its retraction the matrices are off by at most about one learning-rate step.
    - ``mode="parametrization"``: ``torch.nn.utils.parametrizations.orthogonal``, which maps an
      unconstrained parameter to an orthogonal matrix (matrix exponential / Cayley) inside every forward
      pass. Orthogonal to machine precision at every step and no retraction hook to forget, but each
      forward pays an O(n^3) map per axis, the optimiser's moments live in the unconstrained space, and
      parametrised modules cannot be scripted with TorchScript (``torch.jit.trace`` still works).

    Args:
        spatial_size: the input's spatial size, 2 or 3 entries; inputs of another size are rejected.
        learnable: learn the matrices (``False`` freezes them, e.g. a fixed random orthogonal basis).
        init: ``"random"`` (Haar-distributed orthogonal, QR of a Gaussian matrix) or ``"dct"`` (start
            from the orthonormal DCT-II).
        mode: ``"qr"`` or ``"parametrization"``, see above.

    Raises:
        ValueError: on a bad ``spatial_size``, ``init`` or ``mode``, and in ``forward`` when the input's
            spatial size is not ``spatial_size``.
    """

    needs_spatial_size: bool = True

    def __init__(
        self, spatial_size: Sequence[int], learnable: bool = True, init: str = "random", mode: str = "qr"
    ) -> None:
        super().__init__(spatial_size)
        init = look_up_option(init, ("random", "dct"))
        self.mode = look_up_option(mode, ("qr", "parametrization"))
        inits = [orthogonal_qr(torch.randn(n, n)) if init == "random" else dct_matrix(n) for n in self.spatial_size]
        self.orthogonal_matrices = nn.ParameterList([nn.Parameter(m, requires_grad=learnable) for m in inits])
        if self.mode == "parametrization":
            for i in range(len(inits)):
                orthogonal(self.orthogonal_matrices, str(i))

    def matrices(self, spatial_size: list[int]) -> list[torch.Tensor]:
        if spatial_size != self.spatial_size:
            raise ValueError(
                f"AdaptiveOrthogonalTransform was built for spatial size {self.spatial_size}, "
                f"got an input of spatial size {spatial_size}."
            )
        return [m for m in self.orthogonal_matrices]


@torch.no_grad()
def retract_orthogonal_(module: nn.Module) -> int:
    """
    Re-orthogonalise, in place, every AOM matrix in ``module`` by sign-fixed QR (the paper's step after
    each optimiser update). Matrices in ``mode="parametrization"`` are orthogonal by construction and
    frozen ones do not move, so neither is touched.

    Args:
        module: any module; every :class:`AdaptiveOrthogonalTransform` inside it is retracted.

    Returns:
        how many matrices were re-orthogonalised.
    """
    touched = 0
    for m in module.modules():
        if not isinstance(m, AdaptiveOrthogonalTransform) or parametrize.is_parametrized(m.orthogonal_matrices):
            continue
        for p in m.orthogonal_matrices:
            if p.requires_grad:
                p.copy_(orthogonal_qr(p))
                touched += 1
    return touched
