"""Principal components, computed one way for every experiment (exp6's weights, exp7's residual
updates).

Every PCA here is centred (the mean over samples is removed) and works in float64. The explained
variance ratio of component k is its variance over the total; the cumulative variance after K
components is the sum of the first K ratios; the threshold K(t) is the smallest K whose
cumulative variance reaches t (:func:`components_for`, the original's ``searchsorted(cumvar, t)
+ 1``). One function computes K(t) and every report and claim reads it, so a table and its
thresholds cannot disagree (the original's exp6 report did: science.md 6.5).

Three routes give the same spectrum and are tested against each other: the SVD of the centred
data (:func:`pca`), the eigenvalues of the centred Gram matrix of the samples (:func:`pca_gram`,
for samples known only through their inner products) and the eigenvalues of the covariance
(:func:`spectrum_from_cov`, from summed moments, which is what the chunk bootstrap resamples:
:class:`Moments`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

LEVELS = (0.5, 0.8, 0.9, 0.95)


def components_for(cumvar: np.ndarray, t: float) -> int:
    """The smallest K with cumulative variance >= t (K counts from 1)."""
    cumvar = np.asarray(cumvar, dtype=float)
    k = int(np.searchsorted(cumvar, t, side="left")) + 1
    return min(k, cumvar.size)


def thresholds(ratio: np.ndarray, levels=LEVELS) -> dict[str, int]:
    """K(t) for each level, keyed as the original's JSON ("0.5", "0.8", "0.9", "0.95")."""
    cum = np.cumsum(np.asarray(ratio, dtype=float))
    return {_key(t): components_for(cum, t) for t in levels}


def _key(t: float) -> str:
    return f"{t:g}"


def ratio_from_variances(var: np.ndarray) -> np.ndarray:
    """Variances sorted descending (negative rounding noise clipped to 0), as fractions of the total."""
    v = np.clip(np.sort(np.asarray(var, dtype=np.float64))[::-1], 0.0, None)
    total = v.sum()
    return v / total if total > 0 else np.zeros_like(v)


@dataclass
class PCA:
    """A centred PCA of n samples [n, d]: ``mean`` [d], orthonormal ``components`` [k, d] (rows),
    ``variance`` [k] (ddof 1), ``ratio`` [k] and the samples' ``scores`` [n, k]; k = min(n, d)."""

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray
    ratio: np.ndarray
    scores: np.ndarray

    @property
    def cumvar(self) -> np.ndarray:
        return np.cumsum(self.ratio)

    def thresholds(self, levels=LEVELS) -> dict[str, int]:
        return thresholds(self.ratio, levels)

    def reconstruct(self, k: int) -> np.ndarray:
        """The samples rebuilt from their first ``k`` coefficients (the rest set to 0) plus the mean."""
        return self.scores[:, :k] @ self.components[:k] + self.mean

    def project(self, basis: np.ndarray) -> np.ndarray:
        """The samples rebuilt from their projection on the rows of ``basis`` (orthonormal) plus
        the mean: the same as :meth:`reconstruct` for any subspace, e.g. a random one."""
        centred = self.scores @ self.components
        return centred @ basis.T @ basis + self.mean


def pca(X: np.ndarray) -> PCA:
    """Centred PCA of the rows of ``X`` by the SVD of the centred data, in float64."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    mean = X.mean(axis=0)
    U, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    # a sign convention, so that two runs give the same components: largest loading positive
    signs = np.sign(Vt[np.arange(Vt.shape[0]), np.abs(Vt).argmax(axis=1)])
    signs[signs == 0] = 1
    Vt = Vt * signs[:, None]
    U = U * signs[None, :]
    var = s ** 2 / max(n - 1, 1)
    total = var.sum()
    return PCA(mean, Vt, var, var / total if total > 0 else np.zeros_like(var), U * s)


def centred_gram(G: np.ndarray) -> np.ndarray:
    """The Gram matrix of the centred samples from the Gram matrix of the samples: H G H."""
    G = np.asarray(G, dtype=np.float64)
    n = G.shape[0]
    H = np.eye(n) - np.full((n, n), 1.0 / n)
    return H @ G @ H


def pca_gram(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(explained variance ratio, scores [n, n]) of samples known through their Gram matrix
    G_ij = <x_i, x_j>: the eigen-decomposition of the centred Gram matrix (the samples' own
    PCA without forming them)."""
    Gc = centred_gram(G)
    lam, U = np.linalg.eigh((Gc + Gc.T) / 2)
    order = np.argsort(lam)[::-1]
    lam, U = np.clip(lam[order], 0.0, None), U[:, order]
    return ratio_from_variances(lam), U * np.sqrt(lam)


def spectrum_from_cov(cov: np.ndarray | torch.Tensor) -> np.ndarray:
    """Explained variance ratios from a covariance matrix (its eigenvalues, descending)."""
    c = torch.as_tensor(cov, dtype=torch.float64)
    lam = torch.linalg.eigvalsh((c + c.T) / 2).numpy()
    return ratio_from_variances(lam)


# -- moments per resampling unit (exp7's chunk bootstrap) -------------------------------------------

@dataclass
class Moments:
    """Sums per unit (a chunk): counts ``n`` [U], first moments ``s1`` [U, d], second moments
    ``s2`` [U, d, d] (float64). A weighted sum over units is a bootstrap replicate's covariance."""

    n: np.ndarray
    s1: np.ndarray
    s2: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray | torch.Tensor, units: np.ndarray) -> "Moments":
        """Moments of the rows of ``X`` [m, d], grouped by ``units`` [m] (integers 0..U-1)."""
        X = torch.as_tensor(X).to(torch.float64)
        units = np.asarray(units)
        U = int(units.max()) + 1 if units.size else 0
        d = X.shape[1]
        n = np.zeros(U)
        s1 = np.zeros((U, d))
        s2 = np.zeros((U, d, d))
        for u in range(U):
            rows = X[torch.as_tensor(units == u)]
            n[u] = rows.shape[0]
            s1[u] = rows.sum(0).numpy()
            s2[u] = (rows.T @ rows).numpy()
        return cls(n, s1, s2)

    def plus(self, other: "Moments") -> "Moments":
        """Both sets of samples, unit by unit (e.g. position 0 added back to each chunk)."""
        return Moments(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2)

    def cov(self, w: np.ndarray | None = None) -> np.ndarray:
        """The covariance (ddof 1) of the samples, each unit counted ``w[u]`` times (default once)."""
        w = np.ones(self.n.size) if w is None else np.asarray(w, dtype=np.float64)
        n = float(w @ self.n)
        s1 = w @ self.s1
        s2 = np.tensordot(w, self.s2, axes=1)
        return (s2 - np.outer(s1, s1) / n) / max(n - 1.0, 1.0)

    def ratio(self, w: np.ndarray | None = None) -> np.ndarray:
        return spectrum_from_cov(self.cov(w))

    def threshold_replicates(self, weights: np.ndarray, levels=LEVELS) -> np.ndarray:
        """K(t) for each bootstrap replicate (a row of unit weights): [n_boot, len(levels)]."""
        out = np.zeros((weights.shape[0], len(levels)), dtype=np.int64)
        for b, w in enumerate(weights):
            cum = np.cumsum(self.ratio(w))
            out[b] = [components_for(cum, t) for t in levels]
        return out
