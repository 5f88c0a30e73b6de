"""The query-key circuit of every head, read from the processed weights, and edits of W_Q that
rebuild a chosen W_Q^T W_K (science.md 6.2).

* :func:`qk_weights`: W_Q [L, H, d_model, d_head] and W_K [L, H_kv, d_model, d_head] in float64,
  after the model's weight processing, and ``kv_of`` [H]: the key/value head each query head
  reads. Grouped-query models (SmolLM2: 9 query heads share 3 key/value heads) give query head h
  the key matrix of its group, h // (H / H_kv), as the model's ``repeat_kv`` does.
* :func:`w_qk`: the d_head x d_head matrix W_Q^T W_K of every head (the original's object).
* :func:`bilinear_gram`: inner products of the d_model x d_model bilinear forms W_Q W_K^T (what
  attention scores use before position embeddings). They are unchanged by any change of basis of
  a head's query/key space (W_Q -> W_Q A, W_K -> W_K A^-T), so a PCA of them has a meaning that a
  PCA of W_Q^T W_K (which such a change turns into A^T W_Q^T W_K A^-T) lacks (science.md 6.7 i).
* :func:`inject`: the additive edit W_Q' = W_Q + W_K (W_K^T W_K)^-1 (target - W_Q^T W_K)^T,
  solved in float64, which gives W_Q'^T W_K = target and is the identity when the target is
  W_Q^T W_K.
* :class:`QueryWeights`: writes edited W_Q into the live query projection of the Bridge and
  restores the original bytes afterwards (:meth:`QueryWeights.edited`).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .errors import SemphaseError


def kv_groups(lm) -> list[int]:
    """The key/value head that each query head reads (identity without grouped-query attention)."""
    W_K = lm.bridge.blocks[0].attn.W_K
    n_kv = int(W_K.shape[0])
    H = lm.n_heads
    if H % n_kv:
        raise SemphaseError(f"{lm.name} has {H} query heads and {n_kv} key/value heads, which do not divide; "
                            "exp6 needs whole groups of query heads per key/value head.")
    rep = H // n_kv
    return [h // rep for h in range(H)]


def qk_weights(lm) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(W_Q [L, H, d_model, d_head], W_K [L, H_kv, d_model, d_head], kv_of [H]) in float64."""
    blocks = lm.bridge.blocks
    with torch.no_grad():
        W_Q = torch.stack([blocks[l].attn.W_Q.detach().to("cpu", torch.float64) for l in range(lm.n_layers)])
        W_K = torch.stack([blocks[l].attn.W_K.detach().to("cpu", torch.float64) for l in range(lm.n_layers)])
    return W_Q, W_K, kv_groups(lm)


def keys_per_head(W_K: torch.Tensor, kv_of: list[int]) -> torch.Tensor:
    """W_K of each query head's group: [L, H, d_model, d_head]."""
    return W_K[:, kv_of]


def w_qk(W_Q: torch.Tensor, W_K: torch.Tensor, kv_of: list[int]) -> torch.Tensor:
    """W_Q^T W_K per head: [L, H, d_head, d_head]."""
    return W_Q.transpose(-1, -2) @ keys_per_head(W_K, kv_of)


def inject(W_Q: torch.Tensor, W_K_head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """W_Q' with W_Q'^T W_K = ``target`` (per head, batched over leading dimensions), keeping W_K:
    W_Q' = W_Q + W_K (W_K^T W_K)^-1 delta^T, delta = target - W_Q^T W_K, solved in float64."""
    W_Q = W_Q.to(torch.float64)
    W_K_head = W_K_head.to(torch.float64)
    delta = target.to(torch.float64) - W_Q.transpose(-1, -2) @ W_K_head
    gram = W_K_head.transpose(-1, -2) @ W_K_head
    return W_Q + W_K_head @ torch.linalg.solve(gram, delta.transpose(-1, -2))


def bilinear_gram(W_Q: torch.Tensor, W_K: torch.Tensor, kv_of: list[int]) -> np.ndarray:
    """G_ij = <W_Q,i W_K,i^T, W_Q,j W_K,j^T>_F over all heads (layer-major order), computed as
    sum((W_Q,i^T W_Q,j) * (W_K,i^T W_K,j)) without forming the d_model x d_model matrices."""
    L, H, dm, dh = W_Q.shape
    N = L * H
    Q = W_Q.reshape(N, dm, dh)
    n_kv = W_K.shape[1]
    K = W_K.reshape(L * n_kv, dm, dh)
    group = np.array([l * n_kv + kv_of[h] for l in range(L) for h in range(H)])
    Qflat = Q.permute(1, 0, 2).reshape(dm, N * dh)
    Kflat = K.permute(1, 0, 2).reshape(dm, L * n_kv * dh)
    G = np.zeros((N, N))
    for i in range(N):
        qq = (Q[i].T @ Qflat[:, i * dh:]).reshape(dh, N - i, dh)  # [a, j, b] for j >= i
        kk = (K[group[i]].T @ Kflat).reshape(dh, L * n_kv, dh)[:, group[i:], :]
        row = (qq * kk).sum(dim=(0, 2)).numpy()
        G[i, i:] = row
        G[i:, i] = row
    return G


def random_gauge(W_Q: torch.Tensor, W_K: torch.Tensor, kv_of: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same heads in another basis of each key/value group's d_head space: W_Q R, W_K R with
    R a random orthogonal matrix per (layer, group) (query heads that share a key matrix share R).
    Every W_Q W_K^T, hence every attention score without position embeddings, is unchanged."""
    gen = torch.Generator().manual_seed(int(seed))
    L, n_kv, dm, dh = W_K.shape
    R = torch.linalg.qr(torch.randn(L, n_kv, dh, dh, generator=gen, dtype=torch.float64))[0]
    return W_Q @ R[:, kv_of], W_K @ R


class QueryWeights:
    """Live access to each layer's query projection: read the original W_Q, write an edited one,
    restore the original bytes.

    The Bridge keeps one live query weight per layer (``attn.q.weight``; ``attn.W_Q`` is a view
    of it as [H, d_model, d_head]); its layout is [H*d_head, d_model] (nn.Linear) or [d_model,
    H*d_head] (Conv1D) and is found by comparing with ``attn.W_Q``.
    """

    def __init__(self, lm):
        self.lm = lm
        self.params: list[torch.nn.Parameter] = []
        self.layouts: list[str] = []
        self.originals: list[torch.Tensor] = []
        H, dh, dm = lm.n_heads, lm.d_head, lm.d_model
        for l in range(lm.n_layers):
            attn = lm.bridge.blocks[l].attn
            w = attn.q.weight
            view = attn.W_Q.detach()
            layout = None
            if tuple(w.shape) == (H * dh, dm) and torch.equal(w.detach().view(H, dh, dm).transpose(1, 2), view):
                layout = "out-in"
            elif tuple(w.shape) == (dm, H * dh) and torch.equal(w.detach().view(dm, H, dh).permute(1, 0, 2), view):
                layout = "in-out"
            if layout is None:
                raise SemphaseError(f"{lm.name}: the query weight of layer {l} has shape {tuple(w.shape)}, which is not "
                                    "a plain view of W_Q; exp6 cannot edit W_Q in this architecture.")
            self.params.append(w)
            self.layouts.append(layout)
            self.originals.append(w.detach().clone())

    def _to_param(self, layer: int, W_Q: torch.Tensor) -> torch.Tensor:
        H, dm, dh = W_Q.shape
        p = self.params[layer]
        W = W_Q.to(p.dtype)
        if self.layouts[layer] == "out-in":
            return W.transpose(1, 2).reshape(H * dh, dm)
        return W.permute(1, 0, 2).reshape(dm, H * dh)

    def set(self, layer: int, W_Q: torch.Tensor) -> None:
        """Write W_Q [H, d_model, d_head] (any float dtype; stored in the model's dtype) into ``layer``."""
        with torch.no_grad():
            self.params[layer].copy_(self._to_param(layer, W_Q).to(self.params[layer].device))

    def restore(self) -> None:
        with torch.no_grad():
            for p, orig in zip(self.params, self.originals):
                p.copy_(orig)

    def is_original(self) -> bool:
        return all(torch.equal(p.detach(), o) for p, o in zip(self.params, self.originals))

    @contextmanager
    def edited(self, new: dict[int, torch.Tensor]):
        """Layers' W_Q replaced by ``new`` {layer: W_Q [H, d_model, d_head]} inside the block, and
        every layer's original bytes back afterwards (also on an error)."""
        try:
            for layer, W in new.items():
                self.set(layer, W)
            yield
        finally:
            self.restore()
