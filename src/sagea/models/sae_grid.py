"""Several SAEs of a grid trained together in one process, as one stack of models.

Grid variants that see the same batches — same input embeddings (one ELSA run), training users,
seed, batch size and epochs — are trained as a stack: their parameters are stacked along a
leading model axis (variants of smaller width are padded with latents that stay exactly zero),
and every step is one batched computation over the model axis instead of one pass per model.
Per step the cost of launching operations is paid once for the stack, which is where a small
model's time goes.

What each variant may choose on its own: ``width``, ``k``, ``variant`` (``topk`` or ``basic``),
``reconstruction_loss``, ``l1_coef``, ``aux_coef``, ``contrastive_coef``, ``normalize``, ``lr``,
``patience`` and ``early_stop_unit``. Everything else (:func:`stack_key`) must agree. BatchTopK
is not stacked: its threshold is a running statistic of a batch-wide top-k, so it trains alone
(:func:`sagea.models.sae.fit`).

Two ways to compute a step:

- the fast path (:meth:`_Stack.fast_gradients`), taken when every model of the stack is TopK,
  none normalises its code and none has a contrastive term — the paper's grid: a hand-written
  forward and backward pass in a latent-major layout (``[models, latents, batch]``, so that
  reductions over latents and over the input dimension run along contiguous batch rows). The
  top-k is exact and needs no sort (:meth:`_Stack.top_k`: ``k`` vectorised ``amax`` passes over
  float64 keys that carry each latent's index; ``torch.topk`` above k 8 or off the CPU); the
  gradient reaches only the kept latents; only the terms a model weights get a backward pass
  (L2 or Cosine, L1 when some model weights it, the auxiliary loss while latents are dead, on
  the dead latents only); every logged term is still computed. The parameters of all models
  live in one ``[models, P]`` tensor, so Adam is a handful of operations over it, with one
  learning rate per model. With precomputed embeddings (:class:`PreparedData`) every input is
  standardised once for the whole run, not in every step, and the validation losses of all
  models come from one stacked pass (:meth:`_Stack.evaluate`);
- otherwise autograd over the stacked loss (:meth:`_Stack.losses`): basic SAEs, ``normalize``,
  contrastive views.

Equivalence with one-at-a-time training (:func:`sagea.models.sae.fit`): the batches come from
the same ``(seed, epoch)`` stream (shared by construction: the variants of a stack have one seed
and the draws do not depend on the model), each variant starts from its own initialisation,
the loss terms, the dead-latent rule, the decoder constraint and Adam follow the same formulas
in the same order, and each variant validates, stops early and restores its best weights on its
own (a stopped variant leaves the stack). Only the order of floating-point summation differs,
so the weights agree to float tolerance, not bit for bit. The fast path computes the
pre-activations with the same standardisation and products as a model alone (bit for bit with
the BLAS we test on), because the decisions taken on them — which latents the top-k keeps, the
sign at the ReLU, which latents are dead — are discontinuous: decided differently by rounding,
one of them moves a rarely-updated weight by about the learning rate (Adam normalises its
step). Later steps see weights that differ by rounding, so such a flip can still happen, rarely.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from sagea.io import NonFiniteError
from sagea.models.sae import LOSS_TERMS, NON_FINITE_HINT, SAE, validation_row
from sagea.models.sae_data import EmbeddingData, TrainData, epoch_batches
from sagea.models.training import EARLY_STOP_UNITS, EarlyStopping, FitResult
from sagea.runtime import progress

log = logging.getLogger(__name__)

#: Variants that can join a stack.
STACKABLE_VARIANTS = ("topk", "basic")
#: Largest k for which _Stack.top_k finds the top k by k passes of ``amax`` on a CPU (batches of 1024,
#: one thread: 3x faster than ``torch.topk`` at width 64 and k 8; about even at k 16, slower at width 256).
AMAX_TOP_K_MAX = 8
#: Bytes of float64 keys _Stack.top_k works on at a time on a CPU (at batch 1024; to stay in the cache).
TOP_K_BLOCK_BYTES = 1 << 20
#: The ``eps`` of ``F.cosine_similarity`` (its lower bound on each norm).
COSINE_EPS = 1e-8
#: Model hyperparameters every member of a stack shares.
SHARED_MODEL_KEYS = ("input_dim", "dead_after", "aux_k", "dead_rule")


def stack_key(model: SAE) -> tuple | None:
    """What a model must share with the others of its stack (None: it cannot be stacked)."""
    if model.variant not in STACKABLE_VARIANTS:
        return None
    return tuple(model.hparams[key] for key in SHARED_MODEL_KEYS)


class Inputs(NamedTuple):
    """A batch as the fast path reads it, in the latent-major layout: ``x`` and its standardisation
    (:meth:`SAE.standardize`) transposed to ``[d, B]``, and its per-input mean and std ``[1, B]``."""

    x_t: torch.Tensor
    xs_t: torch.Tensor
    mean_t: torch.Tensor
    std_t: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor) -> "Inputs":
        """The inputs of the batch ``x`` ``[B, d]``."""
        xs, mean, std = SAE.standardize(x)
        return cls(x.t().contiguous(), xs.t().contiguous(), mean.t().contiguous(), std.t().contiguous())

    def columns(self, index: torch.Tensor, out: "Inputs | None" = None) -> "Inputs":
        """The inputs of the rows ``index`` (a batch of the data these inputs were prepared from), into ``out``."""
        if out is None:
            return Inputs(*(t.index_select(-1, index) for t in self))
        return Inputs(*(torch.index_select(t, -1, index, out=o) for t, o in zip(self, out)))


class PreparedData:
    """Every training input prepared once (:meth:`Inputs.of`) instead of batch by batch: the
    standardisation is per input, so a batch's columns are bit for bit what
    :meth:`Inputs.of` gives on the batch alone (tests/test_sae_grid.py)."""

    def __init__(self, embeddings: torch.Tensor, device: torch.device) -> None:
        self.inputs = Inputs.of(embeddings.to(device))
        self.device = device
        self._out: dict[int, Inputs] = {}  # per batch size

    def __len__(self) -> int:
        return self.inputs.x_t.shape[1]

    def batch(self, index: np.ndarray) -> Inputs:
        """The batch of rows ``index``, in tensors kept from call to call (fresh large allocations cost page
        faults on a CPU): valid until the next call with a batch of the same size."""
        out = self._out.get(len(index))
        if out is None:
            out = self._out[len(index)] = Inputs(*(t.new_empty((*t.shape[:-1], len(index))) for t in self.inputs))
        return self.inputs.columns(torch.from_numpy(index).to(self.device), out)


class _Stack:
    """The stacked parameters, Adam moments, training buffers and per-model settings of a stack."""

    def __init__(self, models: list[SAE], lrs: list[float], device: torch.device) -> None:
        d = models[0].hparams["input_dim"]
        self.width = max(m.hparams["width"] for m in models)
        n, h = len(models), self.width
        self.device = device
        # the four parameters of every model as views of one [models, P] tensor (model-major), so that the
        # optimiser runs as a handful of operations over one tensor instead of a handful per parameter
        shapes = [(d, h), (h,), (h, d), (d,)]  # encoder_w, encoder_b, decoder_w, decoder_b
        ends = list(itertools.accumulate(math.prod(s) for s in shapes))
        self.layout = [(end - math.prod(s), end, s) for end, s in zip(ends, shapes)]  # columns of flat per parameter
        self.flat = torch.zeros(n, ends[-1], device=device)
        self.inactive = torch.zeros(n, h, dtype=torch.long, device=device)
        self.real = torch.zeros(n, h, dtype=torch.bool, device=device)  # False: padding latents
        with torch.no_grad():
            for i, model in enumerate(models):
                w = model.hparams["width"]
                self.encoder_w[i, :, :w] = model.encoder_w
                self.encoder_b[i, :w] = model.encoder_b
                self.decoder_w[i, :w] = model.decoder_w
                self.decoder_b[i] = model.decoder_b
                self.inactive[i, :w] = model.inactive_batches
                self.real[i, :w] = True
        self.flat.requires_grad_(True)  # autograd path (losses): gradients in flat.grad
        self.grad = torch.zeros_like(self.flat)  # fast path: fast_gradients writes here
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)

        def column(values, dtype=torch.float32):
            return torch.tensor(values, dtype=dtype, device=device)

        hp = [m.hparams for m in models]
        self.k = column([m.k if m.variant == "topk" else 0 for m in models], torch.long)
        self.topk = column([m.variant == "topk" for m in models], torch.bool)
        self.normalize = column([m.normalize for m in models], torch.bool)
        self.l2 = column([p["reconstruction_loss"] == "l2" for p in hp], torch.bool)
        self.rec_coef = column([m.rec_coef for m in models])
        self.l1_coef = column([p["l1_coef"] for p in hp])
        self.aux_coef = column([p["aux_coef"] for p in hp])
        self.con_coef = column([p["contrastive_coef"] for p in hp])
        self.lr = lrs
        self._summarise()
        self.dead_after, self.aux_k = hp[0]["dead_after"], hp[0]["aux_k"]
        self.more_than = hp[0]["dead_rule"] == "more_than"

    def _summarise(self) -> None:
        """Per-stack facts read on every step, kept on the host (no device sync per step)."""
        self._buffers: dict[tuple, torch.Tensor] = {}  # work tensors (their shapes follow the stack's)
        self._dead_plan: tuple | None = None  # fast_auxiliary's, for the current dead latents
        self._weights = self.views(self.flat.detach())  # the parameters outside autograd (same storage)
        self._grads = self.views(self.grad)
        self._top_k_plans: dict[tuple, list] = {}
        self._scales: dict[tuple, tuple] = {}
        self.k_max = int(self.k.max())
        self.all_topk = bool(self.topk.all())
        self.one_k = self.all_topk and int(self.k.min()) == self.k_max  # every model TopK with one k
        self.any_normalize = bool(self.normalize.any())
        self.all_normalize = bool(self.normalize.all())
        self.any_contrastive = bool((self.con_coef > 0).any())
        self.any_l2 = bool(self.l2.any())
        self.any_cosine = not bool(self.l2.all())
        self.any_l1 = bool((self.l1_coef != 0).any())
        # Loss = term_coefs · (L2, Cosine, L1, L0, Auxiliary, Contrastive) per model
        l2_rec = torch.where(self.l2, self.rec_coef, 0.0)
        self.term_coefs = torch.stack([l2_rec, self.rec_coef - l2_rec, self.l1_coef, torch.zeros_like(self.l1_coef),
                                       self.aux_coef, self.con_coef])  # fmt: skip
        # top_k's blocks of models: [start, stop, number of models with k > j for j = 0, 1, ...] (a prefix
        # of the block when k descends); on a CPU at most TOP_K_BLOCK_BYTES of float64 keys each at batch
        # 1024 (off the CPU one block: no cache to fit); models with k above AMAX_TOP_K_MAX in blocks of
        # their own
        on_cpu = self.device.type == "cpu"
        ks = self.k.tolist()
        per_block = max(1, TOP_K_BLOCK_BYTES // (8 * self.width * 1024)) if on_cpu else len(ks)
        self.k_blocks = []
        for i, k in enumerate(ks):
            block = self.k_blocks[-1] if self.k_blocks else None
            if (block is None or i - block[0] >= per_block or k > ks[i - 1]
                    or (k > AMAX_TOP_K_MAX) != (ks[i - 1] > AMAX_TOP_K_MAX)):  # fmt: skip
                self.k_blocks.append([i, i + 1, [1] * k])
            else:
                block[1] = i + 1
                for j in range(k):
                    block[2][j] += 1

    def buffer(self, name: str, shape: tuple, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A work tensor kept from step to step: fresh large allocations cost page faults on a CPU (the
        allocator may hand such blocks back to the system when freed; then every step faults them in)."""
        key = (name, tuple(shape), dtype)  # one per batch size (an epoch's last batch may be smaller)
        held = self._buffers.get(key)
        if held is None:
            held = self._buffers[key] = torch.empty(key[1], dtype=dtype, device=self.device)
        return held

    def scratch(self, name: str, shape: tuple, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A work tensor whose shape changes from step to step (with the number of dead latents): a view
        of one kept tensor, grown to the largest shape asked so far."""
        size = math.prod(shape)
        held = self._buffers.get((name, dtype))
        if held is None or held.numel() < size:
            held = self._buffers[(name, dtype)] = torch.empty(size, dtype=dtype, device=self.device)
        return held[:size].view(shape)

    def scales(self, b: int, d: int) -> tuple[torch.Tensor, ...]:
        """Per-model factors of the hand-written gradients for a batch of ``b`` (kept per batch size):
        d Loss/d out of L2 per (out - x), of Cosine per its unit term, of L1 per kept latent, and of
        the auxiliary loss per residual."""
        held = self._scales.get((b, d))
        if held is None:
            l2_coef = torch.where(self.l2, self.rec_coef, 0.0)
            held = self._scales[(b, d)] = (
                (l2_coef * (2.0 / (b * d)))[:, None, None], ((self.rec_coef - l2_coef) / b)[:, None, None],
                (self.l1_coef / b)[:, None, None], self.aux_coef * (-2.0 / (b * d)),
            )  # fmt: skip
        return held

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``flat`` ``[models, P]`` as the four stacked parameters (encoder_w, encoder_b, decoder_w, decoder_b)."""
        return [self.view(flat, i) for i in range(len(self.layout))]

    def view(self, flat: torch.Tensor, i: int) -> torch.Tensor:
        """Parameter ``i`` (:meth:`views` order) of ``flat``."""
        start, stop, shape = self.layout[i]
        return flat[:, start:stop].view(flat.shape[0], *shape)

    def params(self) -> list[torch.Tensor]:
        return self.views(self.flat)

    @property
    def encoder_w(self) -> torch.Tensor:  # [M, d, h]
        return self.view(self.flat, 0)

    @property
    def encoder_b(self) -> torch.Tensor:  # [M, h]
        return self.view(self.flat, 1)

    @property
    def decoder_w(self) -> torch.Tensor:  # [M, h, d]
        return self.view(self.flat, 2)

    @property
    def decoder_b(self) -> torch.Tensor:  # [M, d]
        return self.view(self.flat, 3)

    def keep(self, rows: list[int]) -> None:
        """Drop every model but ``rows`` (stopped variants leave the stack)."""
        index = torch.tensor(rows, device=self.device)
        self.flat = self.flat.detach().index_select(0, index).requires_grad_(True)
        for name in ("grad", "exp_avg", "exp_avg_sq", "inactive", "real", "k", "topk", "normalize", "l2", "rec_coef",
                     "l1_coef", "aux_coef", "con_coef"):  # fmt: skip
            setattr(self, name, getattr(self, name).index_select(0, index))
        self.lr = [self.lr[i] for i in rows]
        self._summarise()

    def write_back(self, i: int, model: SAE) -> None:
        """Copy model ``i`` of the stack into ``model`` (weights and dead-latent counters)."""
        w = model.hparams["width"]
        with torch.no_grad():
            model.encoder_w.copy_(self.encoder_w[i, :, :w])
            model.encoder_b.copy_(self.encoder_b[i, :w])
            model.decoder_w.copy_(self.decoder_w[i, :w])
            model.decoder_b.copy_(self.decoder_b[i])
            model.inactive_batches.copy_(self.inactive[i, :w])

    # ------------------------------------------------------------------ forward (SAE.losses, stacked)
    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """TopK (each model its own k, up to the largest) or plain ReLU, then the optional L2 norm."""
        k_max = self.k_max
        code = pre
        if k_max > 0:
            top = torch.topk(pre, k_max, dim=-1)
            values = top.values
            if not self.one_k:  # models with a smaller k keep only their first k of the k_max largest
                values = torch.where(torch.arange(k_max, device=pre.device) < self.k[:, None, None], values, 0.0)
            code = torch.zeros_like(pre).scatter(-1, top.indices, values)
            if not self.all_topk:  # basic models keep every activation
                code = torch.where(self.topk[:, None, None], code, pre)
        if self.all_normalize:
            code = F.normalize(code, dim=-1)
        elif self.any_normalize:
            code = torch.where(self.normalize[:, None, None], F.normalize(code, dim=-1), code)
        return code

    def losses(self, x: torch.Tensor, x_positive: torch.Tensor | None, track: bool) -> dict[str, torch.Tensor]:
        """Every loss term per model ``[M]`` (research names) and the weighted total ``Loss``."""
        xs, mean, std = SAE.standardize(x)
        pre = F.relu((xs - self.decoder_b[:, None]) @ self.encoder_w + self.encoder_b[:, None])
        code = self.activate(pre)
        nonzero = code != 0
        if track:
            self.inactive.add_(1).masked_fill_(nonzero.any(dim=1), 0)
        out = SAE.destandardize(code @ self.decoder_w + self.decoder_b[:, None], mean, std)
        zero = x.new_zeros(len(self.k))
        terms = {
            "L2": (out - x).pow(2).mean(dim=(1, 2)),
            "Cosine": (1 - F.cosine_similarity(x, out, dim=-1)).mean(-1),
            "L1": code.abs().sum(-1).mean(-1),
            "L0": nonzero.float().sum(-1).mean(-1).detach(),
            "Auxiliary": self.auxiliary_loss(xs, pre, code, zero),
            "Contrastive": zero,
        }
        if x_positive is not None and self.any_contrastive:
            xs_pos, _, _ = SAE.standardize(x_positive)
            pre_pos = F.relu((xs_pos - self.decoder_b[:, None]) @ self.encoder_w + self.encoder_b[:, None])
            con = self.contrastive_loss(code, self.activate(pre_pos))
            terms["Contrastive"] = torch.where(self.con_coef > 0, con, zero)
        rec = torch.where(self.l2, terms["L2"], terms["Cosine"])
        terms["Loss"] = (self.rec_coef * rec + self.l1_coef * terms["L1"] + self.aux_coef * terms["Auxiliary"]
                         + self.con_coef * terms["Contrastive"])  # fmt: skip
        return terms

    def dead(self) -> torch.Tensor:
        dead = self.inactive > self.dead_after if self.more_than else self.inactive >= self.dead_after
        return dead & self.real

    def auxiliary_loss(self, xs, pre, code, zero) -> torch.Tensor:
        """:meth:`SAE.auxiliary_loss` per model: the ``aux_k`` largest pre-activations of its dead latents."""
        dead = self.dead()
        n_dead = dead.sum(-1)
        fewest, most = n_dead.aminmax()
        fewest, most = int(fewest), int(most)  # one host sync per step, as SAE.auxiliary_loss has
        if most == 0:
            return zero
        candidates = torch.where(dead[:, None, :], pre, -1.0)  # pre >= 0: the dead latents come first
        top = torch.topk(candidates, min(self.aux_k, most), dim=-1)
        values = top.values
        if fewest < min(self.aux_k, most):  # some model has fewer dead latents: drop its live picks
            values = torch.where(torch.gather(dead[:, None, :].expand_as(pre), -1, top.indices), values, 0.0)
        aux = torch.zeros_like(pre).scatter(-1, top.indices, values)
        recon = code @ self.decoder_w + aux @ self.decoder_w + self.decoder_b[:, None]
        return torch.where(n_dead > 0, (xs - recon).pow(2).mean(dim=(1, 2)), zero)

    @staticmethod
    def contrastive_loss(code: torch.Tensor, code_positive: torch.Tensor) -> torch.Tensor:
        a, b = F.normalize(code, dim=-1), F.normalize(code_positive, dim=-1)
        logits = a @ b.transpose(1, 2)
        n_models, batch = logits.shape[:2]
        targets = torch.arange(batch, device=a.device).repeat(n_models)

        def cross_entropy(z):
            return F.cross_entropy(z.reshape(n_models * batch, batch), targets, reduction="none").view(n_models, batch).mean(-1)

        return (cross_entropy(logits) + cross_entropy(logits.transpose(1, 2))) / 2

    # ------------------------------------------------------------------ fast path: hand-written step
    @property
    def fast(self) -> bool:
        """Whether :meth:`fast_gradients` applies: every model TopK, none normalised, no contrastive term."""
        return self.all_topk and not self.any_normalize and not self.any_contrastive

    def top_k(self, pre_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each model's ``k`` largest pre-activations per input, in the latent-major layout ``[M, h, B]``.

        Returns values and latent indices ``[M, K, B]`` (``K`` the largest ``k``; slot ``j`` holds
        the ``j+1``-th largest, and 0 in slots ``j >= k`` of a model) of ``relu(pre_t)``, given
        ``pre_t`` before the ReLU. Exact, as ``torch.topk``: each float32 value is widened to
        float64, whose 29 extra mantissa bits carry the latent's index (negative values stay below
        every other and come back as 0), so one ``amax`` over the latents (a vectorised reduction
        in this layout, where ``torch.topk`` sorts row by row) yields value and index of the
        largest; that one is struck out and the next found, ``k`` times. Equal values go to the
        higher index. The models are done a cache-sized block at a time; in a block ordered by ``k``
        descending (as :func:`fit_stack` orders the stack) the ``j``-th pass runs over the models
        with ``k > j`` only. With a ``k`` above :data:`AMAX_TOP_K_MAX`, or off the CPU, it is
        ``torch.topk`` (sorted).
        """
        key = (pre_t.shape, pre_t.data_ptr())  # fast_gradients passes one buffer per batch size
        plan = self._top_k_plans.get(key)
        if plan is None:
            if len(self._top_k_plans) >= 4:  # a plan holds its input alive: keep few (fast_gradients needs two)
                self._top_k_plans.clear()
            plan = self._top_k_plans[key] = self._top_k_plan(pre_t)
        values, index, blocks, latent, low = plan
        for k, pre_block, keys, passes, top, out_values, out_index, keep in blocks:
            if keys is None:  # torch.topk, sorted: slot j holds the (j+1)-th largest
                top_values, top_index = torch.topk(pre_block, k, dim=1)
                out_values.copy_(top_values.clamp_min_(0.0).mul_(keep))
                out_index.copy_(top_index)
                continue
            keys.copy_(pre_block)
            keys.view(torch.int64).bitwise_or_(latent)
            for j, (keys_j, top_j, top_j_bits, index_j, strike) in enumerate(passes):
                torch.amax(keys_j, dim=1, keepdim=True, out=top_j)
                torch.bitwise_and(top_j_bits, low, out=index_j)
                if j + 1 < k:
                    keys_j.scatter_(1, index_j, strike)  # -inf (from a tensor: faster than a scalar)
            out_values.copy_(top).clamp_min_(0.0)
        return values, index

    def _top_k_plan(self, pre_t: torch.Tensor) -> tuple:
        """The views :meth:`top_k` works on for pre-activations shaped like ``pre_t`` (made once per shape:
        slots a model never fills stay 0)."""
        n, h, b = pre_t.shape
        device = pre_t.device
        values = self.buffer("top_values", (n, self.k_max, b)).zero_()  # unused slots: latent 0, value 0
        index = self.buffer("top_index", (n, self.k_max, b), torch.int64).zero_()
        blocks = []
        for start, stop, rows in self.k_blocks:
            k = len(rows)  # the block's largest k
            pre_block, out_values, out_index = pre_t[start:stop], values[start:stop, :k], index[start:stop, :k]
            if device.type != "cpu" or k > AMAX_TOP_K_MAX:  # torch.topk is the faster there
                keep = (torch.arange(k, device=device)[None, :, None] < self.k[start:stop, None, None]).float()
                blocks.append((k, pre_block, None, None, None, out_values, out_index, keep))
                continue
            keys = torch.empty(stop - start, h, b, dtype=torch.float64, device=device)
            top = torch.zeros(stop - start, k, b, dtype=torch.float64, device=device)
            # pass j: the (j+1)-th largest of the first r models of the block (those with k > j)
            strike = torch.full((stop - start, 1, b), -math.inf, dtype=torch.float64, device=device)
            passes = [(keys[:r], top[:r, j : j + 1], top[:r, j : j + 1].view(torch.int64), out_index[:r, j : j + 1],
                       strike[:r]) for j, r in enumerate(rows)]  # fmt: skip
            blocks.append((k, pre_block, keys, passes, top, out_values, out_index, None))
        latent = torch.arange(h, dtype=torch.int64, device=device).view(1, h, 1)
        low = torch.tensor((1 << max(1, (h - 1).bit_length())) - 1, device=device)  # the index bits of a key
        return values, index, blocks, latent, low

    def fast_gradients(self, x: torch.Tensor | Inputs, track: bool,
                       backward: bool = True) -> tuple[torch.Tensor, list[torch.Tensor] | None]:  # fmt: skip
        """:meth:`losses` and the gradients of ``Loss.sum()`` by a hand-written backward pass.

        Returns the loss terms ``[len(LOSS_TERMS), M]`` (LOSS_TERMS order) and the gradients, as
        :meth:`params` (views of ``grad``, overwritten by the next call; None without ``backward``).
        ``x``: the batch, or the batch already prepared (:class:`Inputs`).

        The TopK gradient flows only through the kept latents (gather/scatter over the ``k``
        slots); only the terms a model weights get gradients (L2 or Cosine, L1, the auxiliary
        loss while latents are dead). Every logged term's value is computed as :meth:`losses` does.
        Layout: latent-major ``[M, h, B]`` / ``[M, d, B]``, so the reductions over latents and over
        the input dimension run along contiguous batch rows.
        """
        # the pre-activations as each model alone computes them — the same standardisation (Inputs), and the
        # same products (bit for bit with the BLAS here, tests/test_sae_grid.py) — so that the discrete decisions
        # made on them (top-k, ReLU, dead latents) are the same too: a flip would be amplified by Adam
        x_t, xs_t, mean_t, std_t = Inputs.of(x) if isinstance(x, torch.Tensor) else x
        n, (d, b) = len(self.k), x_t.shape
        enc_w, enc_b, dec_w, dec_b = self._weights
        buf, small = self.buffer, (n, d, b)  # the [M, d, B] work tensors: z, y, out, diff, square
        z_t = torch.sub(xs_t, dec_b[:, :, None], out=buf("z", small))
        shape = (n, self.width, b)
        # before the ReLU: top_k ranks negative values last and returns them as 0
        pre_t = torch.baddbmm(enc_b[:, :, None], enc_w.transpose(1, 2), z_t, out=buf("pre", shape))
        values, index = self.top_k(pre_t)
        code_t = buf("code", shape).zero_().scatter_add_(1, index, values)
        kept = torch.sign(values, out=buf("kept", values.shape))  # 1 where a kept value is positive (values >= 0)
        if track:  # a latent is active if some input keeps it with a positive value (code >= 0)
            self.inactive.add_(1).masked_fill_(code_t.amax(dim=2) > 0, 0)
        y_t = torch.baddbmm(dec_b[:, :, None], dec_w.transpose(1, 2), code_t, out=buf("y", small))  # standardised
        out_t = torch.addcmul(mean_t, y_t, std_t, out=buf("out", small))
        diff = torch.sub(out_t, x_t, out=buf("diff", small))
        square = buf("square", small)
        # F.cosine_similarity's formula (norms clamped at 1e-8), with the sums over d along batch rows
        norm_x = (x_t * x_t).sum(0).sqrt_().clamp_min_(COSINE_EPS)  # [B]
        norm_out = torch.mul(out_t, out_t, out=square).sum(1, keepdim=True).sqrt_().clamp_min_(COSINE_EPS)  # [M, 1, B]
        cos = torch.mul(x_t, out_t, out=square).sum(1) / (norm_x * norm_out[:, 0])  # [M, B]
        # the terms in LOSS_TERMS order: Loss (below), then one row per term
        table = torch.empty(len(LOSS_TERMS), n, device=x_t.device)
        torch.mean(torch.mul(diff, diff, out=square), dim=(1, 2), out=table[1])
        torch.mean(1 - cos, dim=-1, out=table[2])
        torch.sum(values, dim=(1, 2), out=table[3]).div_(b)
        torch.sum(kept, dim=(1, 2), out=table[4]).div_(b)
        table[5:].zero_()  # Auxiliary (set while latents are dead) and Contrastive (not on this path)
        # d Loss / d y = std · d Loss / d out, for the reconstruction term each model weights:
        # L2: 2 (out - x) / (B d); Cosine: d(1 - cos)/d out = cos · out / |out|² - x / (|x| |out|), over B
        l2_scale, cos_scale, l1_grad, aux_scale = self.scales(b, d)
        aux = self.fast_auxiliary(xs_t, pre_t, y_t, dec_w, table[5], aux_scale)
        torch.sum(self.term_coefs * table[1:], 0, out=table[0])  # Loss: the weighted sum of losses()
        if not backward:
            return table, None
        grad_y = diff.mul_(l2_scale * std_t)  # [M, d, B]
        if self.any_cosine:
            scale = cos_scale * std_t / norm_out  # [M, 1, B]
            grad_y.addcmul_(out_t, scale * cos[:, None, :] / norm_out)
            grad_y.addcmul_(x_t, scale / -norm_x)
        if aux is not None:
            grad_y += aux[3]
        g_enc_w, g_enc_b, g_dec_w, g_dec_b = grads = self._grads
        # decoder: y = dec_w^T code + dec_b (and the auxiliary reconstruction through the dead latents)
        grad_dec_w = torch.bmm(code_t, grad_y.transpose(1, 2), out=buf("grad_dec_w", g_dec_w.shape))
        torch.sum(grad_y, -1, out=g_dec_b)
        grad_code = torch.bmm(dec_w, grad_y, out=buf("grad_code", shape))  # [M, h, B]
        if self.any_l1:
            grad_code += l1_grad  # d|code|/d code = 1 where code > 0
        # ReLU and TopK: the gradient reaches only the kept latents, those with code > 0 (in place: a third
        # large buffer costs more than the pass)
        grad_pre = torch.ops.aten.threshold_backward.grad_input(grad_code, code_t, 0.0, grad_input=grad_code)
        if aux is not None:  # through the dead latents' decoder rows and pre-activations
            rows, aux_d, dec_dead, grad_r = aux  # rows: of the [M·h, ·] views, model by model
            grad_dec_w.view(-1, d).index_add_(0, rows, torch.bmm(aux_d, grad_r.transpose(1, 2)).view(-1, d))
            grad_aux = torch.bmm(dec_dead, grad_r, out=self.scratch("grad_aux", aux_d.shape))
            grad_aux = torch.ops.aten.threshold_backward.grad_input(grad_aux, aux_d, 0.0, grad_input=grad_aux)
            grad_pre.view(-1, b).index_add_(0, rows, grad_aux.view(-1, b))  # where aux_d > 0
        g_dec_w.copy_(grad_dec_w)
        # encoder: pre = relu(enc_w^T (xs - dec_b) + enc_b)
        grad_enc_w = torch.bmm(grad_pre, z_t.transpose(1, 2), out=buf("grad_enc_w", (n, self.width, d)))
        g_enc_w.copy_(grad_enc_w.transpose(1, 2))
        torch.sum(grad_pre, -1, out=g_enc_b)
        g_dec_b -= torch.bmm(enc_w, g_enc_b[:, :, None])[:, :, 0]  # sum over B of enc_w @ grad_pre
        return table, grads

    def fast_auxiliary(self, xs_t, pre_t, y_t, dec_w, out, aux_scale) -> tuple | None:
        """The auxiliary loss (into ``out`` ``[M]``) and what its backward pass needs, on the dead latents only:
        ``(rows, aux_d, dec_dead, grad_r)`` — each model's dead latents (``D`` of them, the most any
        model has; a model with fewer repeats live latents there, with code 0) as rows of the
        latent-major tensors viewed as ``[M·h, ·]`` (``[M·D]``, model by model), their auxiliary codes
        ``[M, D, B]`` and decoder rows ``[M, D, d]``, and d Loss / d recon for
        ``recon = y + dec_dead^T aux_d``; None while no model has dead latents.
        """
        dead = self.dead()
        plan = self._dead_plan  # what follows from the dead latents, kept while they stay the same
        if plan is None or not torch.equal(plan[0], dead):  # one host sync per step, as SAE.auxiliary_loss has
            plan = self._dead_plan = self._plan_dead(dead)
        _, fewest, most, dead_index, is_dead, keep, rows = plan
        if most == 0:
            return None
        n, b = pre_t.shape[0], pre_t.shape[2]
        pre_d = torch.index_select(pre_t.view(-1, b), 0, rows, out=self.scratch("pre_d", (n * most, b)))
        pre_d = pre_d.view(n, most, b).clamp_min_(0.0)  # the ReLU
        if self.aux_k >= most:  # every dead latent is kept
            aux_d = pre_d.mul_(keep)
        else:
            candidates = torch.where(is_dead[:, :, None], pre_d, -1.0)
            top = torch.topk(candidates, self.aux_k, dim=1)
            values = top.values
            if fewest < self.aux_k:  # some model has fewer dead latents: drop its live picks
                values = torch.where(torch.gather(is_dead[:, :, None].expand(n, most, b), 1, top.indices), values, 0.0)
            aux_d = self.scratch("aux_d", pre_d.shape).zero_().scatter_(1, top.indices, values)
        dec_dead = torch.gather(dec_w, 1, dead_index[:, :, None].expand(n, most, dec_w.shape[2]))
        residual = torch.baddbmm(y_t, dec_dead.transpose(1, 2), aux_d, out=self.buffer("residual", y_t.shape))
        residual = torch.sub(xs_t, residual, out=residual)
        square = torch.mul(residual, residual, out=self.buffer("square", y_t.shape))
        some = is_dead[:, 0]  # the models with dead latents (the others' term and gradient are 0)
        out.copy_(torch.where(some, square.mean(dim=(1, 2)), 0.0))
        return rows, aux_d, dec_dead, residual.mul_(torch.where(some, aux_scale, 0.0)[:, None, None])

    def _plan_dead(self, dead: torch.Tensor) -> tuple:
        """For the dead latents ``dead`` ``[M, h]``: ``(dead, fewest, most, dead_index, is_dead, keep, rows)`` —
        the fewest and most dead latents of a model, each model's dead latents first in latent order (as
        SAE.auxiliary_loss's ``pre[:, dead]``) ``[M, most]``, which of those slots hold a dead latent (bool,
        and as a float factor ``[M, most, 1]``), and the slots as rows of the ``[M·h, ·]`` views (``index_select`` copies rows: far faster than a gather
        along latents)."""
        n_dead = dead.sum(-1)
        fewest, most = (int(v) for v in n_dead.aminmax())
        dead_index = torch.sort(dead.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :most]
        is_dead = torch.arange(most, device=dead.device) < n_dead[:, None]  # [M, D]: False where padding
        h = dead.shape[1]
        rows = (dead_index + torch.arange(0, len(dead) * h, h, device=dead.device)[:, None]).view(-1)
        return dead.clone(), fewest, most, dead_index, is_dead, is_dead.to(torch.float32)[:, :, None], rows

    @torch.no_grad()
    def evaluate(self, data: PreparedData, batch_size: int) -> torch.Tensor:
        """Every model's loss terms over ``data`` ``[len(LOSS_TERMS), M]`` (float64), as ``sae._evaluate_loss``
        computes them for each model alone (eval mode, batches in order, size-weighted sums in float64):
        on the fast path (a TopK model's eval-mode activation is its training one) without tracking."""
        n = len(data)
        totals = torch.zeros(len(LOSS_TERMS), len(self.k), dtype=torch.float64, device=self.device)
        for start in range(0, n, batch_size):
            index = np.arange(start, min(n, start + batch_size))
            table = self.fast_gradients(data.batch(index), track=False, backward=False)[0]
            totals += table.to(torch.float64) * len(index)
        return totals / max(n, 1)

    # ------------------------------------------------------------------ step (SAE.train_step + Adam, stacked)
    @torch.no_grad()
    def project_decoder_grad(self, grad: torch.Tensor) -> None:
        g, w = self._grads[2] if grad is self.grad else self.view(grad, 2), self._weights[2]
        g -= (g * w).sum(-1, keepdim=True) * w

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        w = self._weights[2]  # in place, as F.normalize: w / max(|w|, 1e-12)
        w.div_(w.norm(dim=-1, keepdim=True).clamp_min_(1e-12))

    @torch.no_grad()
    def adam(self, grad: torch.Tensor, step: int, beta1: float, beta2: float, eps: float = 1e-8) -> None:
        """``torch.optim.Adam``'s update (single-tensor form, same operation order), one lr per model."""
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        neg_step = torch.tensor([[-(lr / bias_correction1)] for lr in self.lr], device=self.device)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = torch.sqrt(self.exp_avg_sq, out=self.buffer("denom", grad.shape))
        denom.div_(bias_correction2_sqrt).add_(eps)
        update = torch.div(self.exp_avg, denom, out=self.buffer("update", grad.shape))
        self.flat.add_(update.mul_(neg_step))  # param += -step_size * (exp_avg / denom), as addcdiv_

    def train_step(self, x, x_positive, step: int, beta1: float, beta2: float,
                   research_step_order: bool, inputs: Inputs | None = None) -> torch.Tensor:  # fmt: skip
        """One Adam step of every model; returns the loss terms ``[len(LOSS_TERMS), M]`` (LOSS_TERMS order).

        ``inputs``: the batch ``x`` already in the fast path's layout (:class:`PreparedData`), if it is taken."""
        if self.fast:
            table = self.fast_gradients(x if inputs is None else inputs, track=True)[0]
            grad = self.grad
        else:
            self.flat.grad = None
            terms = self.losses(x, x_positive, track=True)
            terms["Loss"].sum().backward()
            table, grad = torch.stack([terms[name].detach() for name in LOSS_TERMS]), self.flat.grad
        if research_step_order:
            self.normalize_decoder()
            self.project_decoder_grad(grad)
            self.adam(grad, step, beta1, beta2)
        else:
            self.project_decoder_grad(grad)
            self.adam(grad, step, beta1, beta2)
            self.normalize_decoder()
        return table


def fit_stack(
    models: list[SAE],
    train: TrainData,
    valid: TrainData,
    *,
    lrs: list[float],
    patiences: list[int],
    early_stop_units: list[str],
    beta1: float = 0.9,
    beta2: float = 0.99,
    batch_size: int = 1024,
    epochs: int = 4000,
    validate_every: int = 10,
    seed: int = 42,
    device: str | torch.device = "cpu",
    on_validation: list[Callable[[SAE, int], dict[str, float]] | None] | None = None,
    research_step_order: bool = False,
    names: list[str] | None = None,
) -> list[FitResult]:
    """Train ``models`` as one stack, each as :func:`sagea.models.sae.fit` would with its own ``lr``,
    ``patience`` and ``early_stop_unit`` (the other settings are shared); one result per model.

    Each model ends with its best validation weights restored, in eval mode, like ``fit``.
    ``on_validation[i](model, epoch)`` adds metrics to model ``i``'s history rows.
    """
    keys = {stack_key(m) for m in models}
    if None in keys or len(keys) != 1:
        raise ValueError(f"these SAEs cannot share a stack: variants must be {STACKABLE_VARIANTS} and agree on "
                         f"{SHARED_MODEL_KEYS}, got {sorted(map(str, keys))}")  # fmt: skip
    for unit in early_stop_units:
        if unit not in EARLY_STOP_UNITS:
            raise ValueError(f"sae early_stop_unit {unit!r}: expected 'validations' or 'epochs'")
    device = torch.device(device)
    names = names or [f"model {i}" for i in range(len(models))]
    on_validation = on_validation or [None] * len(models)
    for model in models:
        model.to(device).train()
    n = len(train)
    if n == 0:
        raise ValueError("no training users for the SAE (empty train split)")
    # the models still in the stack, in stack order: by k descending (what _Stack.top_k runs fastest on)
    live = sorted(range(len(models)), key=lambda i: -models[i].k if models[i].variant == "topk" else 0)
    stack = _Stack([models[i] for i in live], [lrs[i] for i in live], device)
    # precomputed embeddings for a stack on the fast path (it stays there as models leave): the inputs'
    # standardisation once for every user, not in every step
    prepared = PreparedData(train.embeddings, device) if stack.fast and isinstance(train, EmbeddingData) else None
    # and the validation losses of every model at once (sae._evaluate_loss's batches and sums)
    stacked_valid = prepared is not None and isinstance(valid, EmbeddingData) and len(valid) > 0
    prepared_valid = PreparedData(valid.embeddings, device) if stacked_valid else None
    stopping = [EarlyStopping(p, unit, "min") for p, unit in zip(patiences, early_stop_units)]
    results = [FitResult() for _ in models]
    started = time.perf_counter()
    step = 0
    bar = progress(range(1, epochs + 1), desc=f"SAE stack of {len(models)}", unit="epoch", total=epochs)
    for epoch in bar:
        if not live:
            break
        sums = None  # [len(LOSS_TERMS), models]: each term summed over the epoch's users
        for index, x, x_pos in epoch_batches(train, batch_size, seed, epoch, device, load=prepared is None):
            step += 1
            inputs = None if prepared is None else prepared.batch(index)
            weighted = stack.train_step(x, x_pos, step, beta1, beta2, research_step_order, inputs) * len(index)
            sums = weighted if sums is None else sums + weighted
        per_model = dict(zip(LOSS_TERMS, (sums / n).tolist()))
        for row, i in enumerate(live):
            results[i].epochs_run = epoch
            if not math.isfinite(per_model["Loss"][row]):
                raise NonFiniteError(
                    f"SAE {names[i]}: training loss became non-finite in epoch {epoch}; check the input "
                    "embeddings or lower sae.base.lr. " + NON_FINITE_HINT
                )
        if epoch % validate_every and epoch != epochs:
            continue
        leaving = []
        valid_table = None if prepared_valid is None else stack.evaluate(prepared_valid, batch_size).tolist()
        for row, i in enumerate(live):
            model = models[i]
            stack.write_back(row, model)
            epoch_terms = {name: float(sums[t, row]) / n for t, name in enumerate(LOSS_TERMS)}
            valid_terms = None if valid_table is None else dict(zip(LOSS_TERMS, (v[row] for v in valid_table)))
            score, history_row = validation_row(model, valid, epoch, epoch_terms, batch_size, seed, device,
                                                on_validation[i], started, valid_terms)  # fmt: skip
            model.train()
            results[i].history.append(history_row)
            if stopping[i].update(score, epoch, model):
                results[i].best_valid = {k: history_row[f"{k}_valid"] for k in LOSS_TERMS}
            results[i].best_epoch, results[i].best_score = stopping[i].best_epoch, float(stopping[i].best_score)
            results[i].stopped_early = stopping[i].stopped
            if stopping[i].stopped:
                log.info("SAE %s: early stop at epoch %d (best epoch %d)", names[i], epoch, stopping[i].best_epoch)
                leaving.append(i)
        if leaving:
            rows = [row for row, i in enumerate(live) if i not in leaving]
            live = [live[row] for row in rows]
            if live:
                stack.keep(rows)
        bar.set_postfix(models=len(live))
    bar.close()
    for model, stop in zip(models, stopping):
        stop.restore(model)
        model.eval()
    return results
