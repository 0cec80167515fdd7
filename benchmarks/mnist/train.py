"""Train K LeNet-300-100 models at once with stacked weights, each with its own seed, init and data order.

Weights are stacked as ``W[k]`` of shape [in, out] (so a layer is ``x @ W``), every layer is a ``bmm`` over
the K models, and the backward pass is written out by hand (``_Backprop``): each model's gradient is that
of its own mean cross-entropy, so training K stacked models equals training them one by one (tested
against ``nn.Sequential`` + autograd + torch.optim). Plain SGD folds the update into the weight-gradient
product; SGD with momentum, Adam and Adadelta are elementwise, so one torch.optim instance over the
stacked tensors keeps exactly the per-model state of K independent optimizers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from benchmarks import progress
from benchmarks.errors import UserError
from benchmarks.mnist.data import SCALINGS
from benchmarks.threads import intra_op_threads

SIZES = (784, 300, 100, 10)
INITS = ("torch-default", "kaiming-uniform", "kaiming-normal", "glorot-normal")
OPTIMIZERS = ("sgd", "adam", "adadelta")
ACTIVATIONS = ("relu", "tanh")
ORDERS = ("own", "shared")


@dataclass(frozen=True)
class Recipe:
    """How the models are trained; every field may be set from a suite's ``recipe``."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    batch_size: int = 60
    epochs: float = 10.0
    init: str = "torch-default"
    input_scaling: str = "normalize"
    activation: str = "relu"
    data_order: str = "own"  # "own": each model its own permutation; "shared": one order for all
    chunk: int = 100  # models trained together in one pass (memory bound; results do not depend on it)
    threads: int = 0  # torch threads for the run; 0 keeps torch's default

    @classmethod
    def from_mapping(cls, data: dict, source: str = "recipe") -> "Recipe":
        """Validate a suite's recipe mapping; unknown keys and values raise a one-line UserError."""
        known = {f.name: f for f in fields(cls)}
        extra = sorted(set(data) - set(known))
        if extra:
            raise UserError(f"{source}: unknown recipe key(s) {', '.join(extra)}; known: {', '.join(known)}")
        values = {}
        for name, value in data.items():
            typ = {"float": float, "int": int, "str": str}[known[name].type]
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, typ) or isinstance(value, bool):
                raise UserError(f"{source}: recipe.{name} must be {typ.__name__}, got {value!r}")
            if typ is float and not math.isfinite(value):  # NaN passes every range check below
                raise UserError(f"{source}: recipe.{name}={value!r} is not a finite number; give a finite value, "
                                f"e.g. --set recipe.{name}={getattr(cls, name, 1)}")
            values[name] = value
        recipe = cls(**values)
        recipe.check(source)
        return recipe

    def check(self, source: str = "recipe") -> None:
        """Raise UserError on a value outside the supported choices."""
        for name, allowed in (("optimizer", OPTIMIZERS), ("init", INITS), ("input_scaling", SCALINGS),
                              ("activation", ACTIVATIONS), ("data_order", ORDERS)):
            if getattr(self, name) not in allowed:
                raise UserError(f"{source}: recipe.{name}={getattr(self, name)!r}; use one of {', '.join(allowed)}")
        if self.lr <= 0 or self.batch_size < 1 or self.epochs <= 0 or self.chunk < 1:
            raise UserError(f"{source}: recipe needs lr > 0, batch_size >= 1, epochs > 0, chunk >= 1")

    def as_dict(self) -> dict:
        """Plain dict (what goes into a cell's config)."""
        return asdict(self)


def _generator(seed: int, stream: int) -> torch.Generator:
    """Independent RNG streams per model: init (0), data order (1), correlated-init factors (2)."""
    return torch.Generator().manual_seed(1_000_003 * int(seed) + stream)


def init_model(seed: int, init: str) -> list[torch.Tensor]:
    """One model's initial [W1, b1, W2, b2, W3, b3] (W as [in, out]) drawn from its own generator."""
    gen = _generator(seed, 0)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        w = torch.empty(fan_out, fan_in)  # drawn in nn.Linear's [out, in] order, then transposed
        if init == "torch-default":  # nn.Linear: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(fan_in)
            w.uniform_(-bound, bound, generator=gen)
        elif init == "kaiming-uniform":  # ReLU gain: U(+-sqrt(6/fan_in))
            bound = math.sqrt(6.0 / fan_in)
            w.uniform_(-bound, bound, generator=gen)
        elif init == "kaiming-normal":
            w.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
        elif init == "glorot-normal":
            w.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=gen)
        else:
            raise UserError(f"unknown init {init!r}; use one of {', '.join(INITS)}")
        b = torch.empty(fan_out).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen)
        if init != "torch-default":
            b.zero_()
        params += [w.t().contiguous(), b]
    return params


def data_order(seed: int, n: int, epoch: int) -> torch.Tensor:
    """The permutation of the ``n`` training examples that model ``seed`` sees in ``epoch``."""
    return torch.randperm(n, generator=_generator(seed + 7919 * epoch, 1))


@dataclass
class Stack:
    """K models' parameters stacked along dim 0 (leaf tensors requiring grad)."""

    params: list[torch.Tensor]
    activation: str = "relu"

    @property
    def k(self) -> int:
        return self.params[0].shape[0]

    def weights(self) -> list[torch.Tensor]:
        """[W1, W2, W3], each [K, in, out]."""
        return self.params[0::2]

    def activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hidden activations h1, h2 and the logits [K, B, 10], for a batch per model [K, B, 784] or one
        batch shared by all [B, 784]. The training step keeps h1 and h2 for its backward pass."""
        w1, b1, w2, b2, w3, b3 = self.params
        if x.dim() == 2:  # shared batch: the first layer is one wide product [B,784] @ [784, K*300]
            h1 = (x @ w1.permute(1, 0, 2).reshape(784, -1)).view(x.shape[0], self.k, -1).transpose(0, 1)
            h1 = h1 + b1[:, None, :]
        else:
            h1 = torch.baddbmm(b1[:, None, :], x, w1)
        h1 = self._act_(h1)
        h2 = self._act_(torch.baddbmm(b2[:, None, :], h1, w2))
        return h1, h2, torch.baddbmm(b3[:, None, :], h2, w3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [K, B, 10] (see ``activations``)."""
        return self.activations(x)[2]

    def _act_(self, h: torch.Tensor) -> torch.Tensor:
        return h.relu_() if self.activation == "relu" else h.tanh_()


def stack_models(models: list[list[torch.Tensor]], activation: str) -> Stack:
    """Stack per-model parameter lists into one Stack."""
    params = [torch.stack([m[i] for m in models]).requires_grad_(True) for i in range(6)]
    return Stack(params, activation)


def make_optimizer(params: list[torch.Tensor], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's torch.optim optimizer over (stacked or single-model) parameters.

    SGD and Adam use torch's fused kernels (one pass per tensor; Adam's foreach path made about ten
    memory-bound passes and was 4x slower on this CPU); Adadelta has no fused kernel and uses foreach.
    """
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, fused=True)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, fused=True)
    return torch.optim.Adadelta(params, lr=recipe.lr, foreach=True)


def steps_per_run(n_train: int, recipe: Recipe) -> int:
    """Number of optimizer steps: full batches over ``epochs`` passes (a fraction counts steps)."""
    per_epoch = n_train // recipe.batch_size
    return max(1, int(round(per_epoch * recipe.epochs)))


class OrderCache:
    """Per-model permutations of the current epoch, computed once per epoch."""

    def __init__(self, seeds: list[int], n: int, recipe: Recipe, device: torch.device | str = "cpu"):
        self.seeds, self.n, self.recipe, self.epoch, self.perms = seeds, n, recipe, -1, None
        self.device = device

    def batch(self, step: int) -> torch.Tensor:
        """Indices [K, B] (own order) or [B] (shared) for ``step``."""
        per_epoch = self.n // self.recipe.batch_size
        epoch, pos = divmod(step, per_epoch)
        if epoch != self.epoch:
            seeds = self.seeds[:1] if self.recipe.data_order == "shared" else self.seeds
            self.perms = torch.stack([data_order(s, self.n, epoch) for s in seeds]).to(self.device)
            self.epoch = epoch
        sl = slice(pos * self.recipe.batch_size, (pos + 1) * self.recipe.batch_size)
        out = self.perms[:, sl]
        return out[0] if self.recipe.data_order == "shared" else out


class _Backprop:
    """Hand-written forward and backward pass for the stacked MLP, into buffers allocated once.

    Autograd allocated fresh [K, 784, 300] gradient tensors every step; on a 2-core CPU those page faults
    and the separate optimizer pass over the gradients cost as much as the matrix products. Here every
    buffer is reused, and plain SGD (no momentum) folds the update into the weight-gradient product
    (``W.baddbmm_(a^T, delta, alpha=-lr)``), so the gradient of W is never stored at all. Other optimizers
    get their gradients in ``p.grad`` buffers and step with torch.optim as before.
    """

    def __init__(self, stack: Stack, recipe: Recipe):
        self.stack, self.recipe = stack, recipe
        self.fused_sgd = recipe.optimizer == "sgd" and recipe.momentum == 0.0
        if not self.fused_sgd:
            for p in stack.params:
                p.grad = torch.zeros_like(p)
        self.opt = None if self.fused_sgd else make_optimizer(stack.params, recipe)

    def _act_grad_(self, delta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """delta * act'(pre-activation), from the activation's output h (relu: 0 where h <= 0, as autograd)."""
        if self.stack.activation == "relu":  # autograd's own fused kernel; masked_fill_ was 15x slower here
            return torch.ops.aten.threshold_backward(delta, h, 0.0)
        return delta.mul_(1.0 - h * h)

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """One optimizer step on batch ``xb`` [K, B, 784] with labels ``yb`` [K, B] (each model's mean CE)."""
        w1, b1, w2, b2, w3, b3 = self.stack.params
        batch = xb.shape[1]
        h1, h2, logits = self.stack.activations(xb)
        # d(mean CE)/d logits = (softmax - onehot) / batch, per model
        d3 = torch.softmax(logits, dim=-1)
        d3.scatter_add_(-1, yb[..., None], torch.full_like(d3[..., :1], -1.0)).div_(batch)
        d2 = self._act_grad_(torch.bmm(d3, w3.transpose(1, 2)), h2)
        d1 = self._act_grad_(torch.bmm(d2, w2.transpose(1, 2)), h1)
        # every delta above used the old weights; now update (or fill the gradients of) all three layers
        for w, b, a, d in ((w3, b3, h2, d3), (w2, b2, h1, d2), (w1, b1, xb, d1)):
            if self.fused_sgd:
                w.baddbmm_(a.transpose(1, 2), d, alpha=-self.recipe.lr)
                b.sub_(d.sum(1), alpha=self.recipe.lr)
            else:
                torch.bmm(a.transpose(1, 2), d, out=w.grad)
                torch.sum(d, 1, out=b.grad)
        if self.opt is not None:
            self.opt.step()


@torch.no_grad()
def train_stack(stack: Stack, order_seeds: list[int], x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                steps: int | None = None, on_step: Callable[[], None] | None = None) -> Stack:
    """Train the stacked models in place; model k draws its batches from permutations of ``order_seeds[k]``
    (``on_step`` is called after every step, e.g. to advance a progress bar)."""
    backprop = _Backprop(stack, recipe)
    orders = OrderCache(order_seeds, x.shape[0], recipe, x.device)
    steps = steps_per_run(x.shape[0], recipe) if steps is None else steps
    k, b = stack.k, recipe.batch_size
    xb = torch.empty(k * b, x.shape[1], dtype=x.dtype, device=x.device)  # the gathered batch, reused every step
    for step in range(steps):
        idx = orders.batch(step)
        if idx.dim() == 1:  # shared order: one batch, seen by every model
            yb = y[idx].expand(k, b)
            batch = x[idx].expand(k, b, x.shape[1])
        else:
            flat = idx.reshape(-1)
            yb = y[flat].view(k, b)
            batch = torch.index_select(x, 0, flat, out=xb).view(k, b, x.shape[1])
        backprop.step(batch, yb)
        if on_step is not None:
            on_step()
    return stack


@torch.no_grad()
def accuracy(stack: Stack, x: torch.Tensor, y: torch.Tensor, chunk: int = 2000) -> torch.Tensor:
    """Test accuracy of each model, [K] float64."""
    correct = torch.zeros(stack.k, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        logits = stack.forward(x[start:start + chunk])
        correct += (logits.argmax(-1) == y[start:start + chunk]).sum(1).double()
    return correct / x.shape[0]


def train_models(seeds: list[int], x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                 steps: int | None = None, init_params: list[list[torch.Tensor]] | None = None,
                 order_seeds: list[int] | None = None) -> list[list[torch.Tensor]]:
    """Train one model per seed (in chunks of ``recipe.chunk``) on ``x``'s device; return each model's final
    parameters (on the CPU)."""
    out: list[list[torch.Tensor]] = []
    order_seeds = seeds if order_seeds is None else order_seeds
    steps = steps_per_run(x.shape[0], recipe) if steps is None else steps
    chunks = math.ceil(len(seeds) / recipe.chunk)
    with _training_settings(recipe.threads), progress.steps(steps * chunks, f"{len(seeds)} models") as advance:
        for start in range(0, len(seeds), recipe.chunk):
            part = slice(start, start + recipe.chunk)
            inits = init_params[part] if init_params is not None else [init_model(s, recipe.init) for s in seeds[part]]
            stack = stack_models([[p.to(x.device) for p in m] for m in inits], recipe.activation)
            train_stack(stack, order_seeds[part], x, y, recipe, steps, on_step=advance)
            out += [[p[k].detach().cpu().clone() for p in stack.params] for k in range(stack.k)]
    return out


@contextlib.contextmanager
def _training_settings(threads: int) -> Iterator[None]:
    """Train with ``threads`` torch threads (0 = leave as is) and denormals flushed to zero.

    Flushing matters for Adam: a dead ReLU's moment estimates decay geometrically into the denormal range,
    where x86 arithmetic is many times slower (Adam recipes ran 2x faster with it); values below 1.2e-38 do
    not change any weight. Both trainers run under it, so they stay comparable.
    """
    with intra_op_threads(threads):
        torch.set_flush_denormal(True)
        try:
            yield
        finally:
            torch.set_flush_denormal(False)  # torch's default; it offers no way to read the previous setting


def train_one_reference(seed: int, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, steps: int,
                        init_params: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Train a single model the ordinary way (nn.Sequential + its own optimizer): the batched trainer's baseline."""
    with _training_settings(recipe.threads):
        return _train_one(seed, x, y, recipe, steps, init_params)


def _train_one(seed: int, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, steps: int,
               init_params: list[torch.Tensor] | None) -> list[torch.Tensor]:
    params = init_params or init_model(seed, recipe.init)
    act = torch.nn.ReLU() if recipe.activation == "relu" else torch.nn.Tanh()
    layers = [torch.nn.Linear(i, o, dtype=params[0].dtype, device=x.device) for i, o in zip(SIZES[:-1], SIZES[1:])]
    with torch.no_grad():
        for layer, w, b in zip(layers, params[0::2], params[1::2]):
            layer.weight.copy_(w.t())
            layer.bias.copy_(b)
    model = torch.nn.Sequential(layers[0], act, layers[1], act, layers[2])
    opt = make_optimizer(list(model.parameters()), recipe)
    orders = OrderCache([seed], x.shape[0], recipe, x.device)
    for step in range(steps):
        idx = orders.batch(step).reshape(-1)  # [1, B] (own order) or [B] (shared): this model's batch
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out = []
    for layer in layers:
        out += [layer.weight.detach().t().contiguous().cpu(), layer.bias.detach().cpu().clone()]
    return out
