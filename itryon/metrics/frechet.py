"""Fréchet distance between two Gaussians fitted to feature sets, from streaming float64 sums.

``d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})``. The trace of the matrix
square root is the sum of square roots of the eigenvalues of ``S_1 S_2`` (real and non-negative for
covariance matrices), which avoids an iterative ``sqrtm`` and runs on the metric's device.
"""

from __future__ import annotations

import torch


def mean_and_covariance(
    count: torch.Tensor, total: torch.Tensor, outer: torch.Tensor, unbiased: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and covariance ``(D, D)`` from ``n``, ``sum x`` and ``sum x x^T`` (float64).

    ``unbiased`` divides by ``n - 1`` (sample covariance, ``numpy.cov``), else by ``n``.
    """
    n = count.to(torch.float64)
    mean = total / n
    scatter = outer - n * torch.outer(mean, mean)
    return mean, scatter / (n - 1 if unbiased else n)


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Fréchet distance (a scalar float64 tensor) between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``."""
    mu1, mu2, sigma1, sigma2 = (x.to(torch.float64) for x in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"feature statistics differ in size: means {tuple(mu1.shape)} vs {tuple(mu2.shape)}, covariances {tuple(sigma1.shape)} vs {tuple(sigma2.shape)}"
        )
    diff = (mu1 - mu2).square().sum()
    eig = torch.linalg.eigvals(sigma1 @ sigma2)
    # tiny negative eigenvalues from round-off give imaginary roots; their real part is 0
    trace_sqrt = eig.sqrt().real.sum()
    return diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
