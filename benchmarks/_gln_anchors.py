"""Runners for the third-party GLN implementations that galu's GLNs are measured against.

Nothing here is part of galu, and none of the anchors' code is copied in: the anchors are
installed into a separate benchmark environment (see ``/work/shared/anchors/README.md``) and only
*called* from here. Every runner trains one online pass over the training set in the given order,
then measures test accuracy, and returns the same dict::

    dict(samples=..., seconds=..., samples_per_s=..., accuracy=..., ...)

``samples`` is how many training examples were learned from (fewer than ``len(X_train)`` when
``max_seconds`` stopped the pass early; ``complete`` says which), ``seconds`` the wall time of the
training pass only, ``accuracy`` the test accuracy (a fraction in [0, 1]) of the model as it stands
after the samples seen, and ``online_accuracy`` the prequential (test-then-train) accuracy over the
samples seen.

Layer sizes follow pygln's convention in both runners: ``layer_sizes`` lists the *hidden* layers,
and the single output neuron per class is appended implicitly. galu's / the issue's ``[16, 16, 1]``
is ``layer_sizes=[16, 16]`` here.

Environment (CPU only; recreate with)::

    python3.11 -m venv /tmp/glnbench
    /tmp/glnbench/bin/pip install torch==2.13.0 numpy scipy scikit-learn pandas
    /tmp/glnbench/bin/pip install --no-deps /work/shared/anchors/pygln
    /tmp/glnbench/bin/pip install -e /work/main --no-deps
    # DeepMind's code (optional). rlax -> distrax pulls tfp-nightly, which provides
    # ``tensorflow_probability``; do not also install the tensorflow-probability release: 0.25.0
    # shares its files and its JAX substrate fails on jax 0.10 (``xla.pytype_aval_mappings``).
    /tmp/glnbench/bin/pip install jax==0.10.2 jaxlib==0.10.2 dm-haiku==0.0.17 chex==0.1.92 \
        rlax==0.1.9 tfp-nightly==0.26.0.dev20261027
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

DEEPMIND_ROOT = os.environ.get(
    "GLN_DEEPMIND_ROOT", "/work/shared/anchors/deepmind_gated_linear_networks"
)


# ----------------------------------------------------------------------------------------------
# pygln
# ----------------------------------------------------------------------------------------------


def _alias_numpy_int() -> None:
    """pygln's NumPy backend calls ``.astype(np.int)``; NumPy >= 1.24 removed that alias."""
    if "int" not in np.__dict__:
        np.int = int  # type: ignore[attr-defined]


def pygln_available() -> str | None:
    """``None`` if pygln imports, else why not."""
    try:
        import pygln  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the environment
        return f"pygln does not import: {exc!r}"
    return None


def _seed_global(seed: int) -> None:
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(seed)


def pygln_online(
    backend: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    layer_sizes: Sequence[int],
    context_map_size: int,
    learning_rate: float,
    num_classes: int,
    seed: int,
    batch_size: int = 1,
    max_seconds: float | None = None,
    eval_batch_size: int = 64,
    gln_kwargs: dict[str, Any] | None = None,
    torch_threads: int | None = None,
) -> dict[str, Any]:
    """One online pass of ``pygln.GLN(backend=backend, ...)`` over ``X_train`` in order, then
    test accuracy.

    ``backend``: ``"numpy"`` or ``"pytorch"``. ``layer_sizes``: pygln's hidden layers (pygln
    appends the 1-neuron output layer itself; ``[16, 16]`` builds ``[16, 16, 1]``). Inputs should
    be in [0, 1] (they are both pygln's base predictions after its rescaling and the side
    information). ``gln_kwargs`` go to ``pygln.GLN`` (``bias``, ``context_bias``,
    ``pred_clipping``, ``weight_clipping``, ``base_predictor``). ``max_seconds`` stops the pass
    after the first batch that ends past it; ``samples`` then says how many were learned from.
    ``eval_batch_size``: test-time batch (pygln's batched forward builds a ``B × B`` product and
    keeps its diagonal, so large batches cost quadratic memory; predictions do not depend on it).
    ``torch_threads``: if given, ``torch.set_num_threads`` (process-wide) before building; at
    batch 1 the tensors are tiny and one thread is fastest — more threads than free cores makes
    the PyTorch backend an order of magnitude slower.

    What pygln (aiwabdn/pygln @ 9aeb81a) computes, as read from its NumPy and PyTorch backends:

    * **One-vs-all.** ``num_classes > 2`` builds ``num_classes`` independent binary GLNs
      (vectorised along a class axis); ``predict`` returns the argmax of the output logits
      (``return_probs=True``: their sigmoids, one per class). ``num_classes == 2`` is one binary
      GLN.
    * **Base predictions.** Default ``base_predictor``: each row is min-max rescaled by its *own*
      min and max, ``(x - min x) / (max x - min x)`` (a constant row gives NaN), clipped into
      ``[p, 1 - p]`` (``pred_clipping`` ``p``, default 1e-3) and turned into logits. The side
      information that picks contexts is the raw input ``x``, not the rescaled one.
    * **Bias.** With ``bias=True`` (default) the bias does *not* add an input: the first base
      logit (feature 0) is *overwritten* by a constant drawn once ``U(logit p, logit(1 - p))``;
      and every layer of size ``k > 1`` has ``k - 1`` learned neurons plus one constant output
      logit, drawn once per class from the same uniform, prepended to the layer's outputs and
      never learned. The final 1-neuron layer has no bias. So ``[16, 16]`` means 15 learned
      neurons + 1 constant per hidden layer, then 1 output neuron.
    * **Contexts.** Each neuron has ``context_map_size`` hyperplanes with ``N(0, I)`` normals on
      the raw input; with ``context_bias=False`` (default) they are neither normalised nor offset
      (threshold 0); ``context_bias=True`` normalises them and draws ``N(0, 1)`` thresholds.
      Bit ``i`` is ``normal_i · x > threshold_i``; the context index is ``Σ 2^i bit_i``.
    * **Init.** Every weight is ``1 / n_in`` (a neuron starts as the geometric mean of its
      inputs), for all ``2^C`` contexts.
    * **Forward / clipping.** A neuron's output logit is ``w_c · ℓ`` clipped into
      ``[logit p, logit(1 - p)]``; the next layer takes these logits directly.
    * **Update.** When ``target`` is given, each neuron's active weights move by
      ``- lr · (σ(clipped logit) - y) · ℓ`` — the log-loss gradient of the *clipped* output, so
      saturated neurons still update (no skip rule) — then all weights are clipped into
      ``[-weight_clipping, weight_clipping]`` (default 5). Outputs of a layer are computed before
      its update, so ``predict(x, target=y)`` returns the *pre-update* (prequential) class
      predictions. Batches: NumPy sums the batch's updates (all from the same weights, via
      ``np.add.at``); PyTorch assigns ``selected - update`` by index, so examples of a batch that
      share a context overwrite rather than add. At batch size 1 the two agree.
    * **Learning rate.** A float becomes a constant. The backends' ``PaperLearningRate`` is
      ``min(100 / t, 0.01)`` where the step counter ``t`` is incremented every time the rate is
      *read*, which is once per layer per training call: ``t`` advances by the number of layers
      (here 3) per batch, not once per example. (Not used here; ``learning_rate`` is a float.)
    * **Seeding.** All randomness comes from NumPy's and (PyTorch backend) torch's global RNGs,
      seeded here from ``seed``. The PyTorch backend moves to CUDA when it is available and
      computes in float32; NumPy computes in float64.
    """
    import pygln

    _alias_numpy_int()
    X_train = np.asarray(X_train)
    X_test = np.asarray(X_test)
    y_train = np.asarray(y_train).astype(np.int64)
    y_test = np.asarray(y_test).astype(np.int64)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if torch_threads is not None:
        import torch

        torch.set_num_threads(int(torch_threads))
    _seed_global(seed)
    model = pygln.GLN(
        backend=backend,
        layer_sizes=list(layer_sizes),
        input_size=X_train.shape[1],
        num_classes=num_classes,
        context_map_size=context_map_size,
        learning_rate=float(learning_rate),
        **(gln_kwargs or {}),
    )

    n = len(X_train)
    seen = 0
    online_correct = 0
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        xb = X_train[start : start + batch_size]
        yb = y_train[start : start + batch_size]
        pred = np.asarray(model.predict(xb, target=yb)).reshape(-1)
        online_correct += int((pred == yb).sum())
        seen += len(yb)
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
    seconds = time.perf_counter() - t0

    preds = [
        np.asarray(model.predict(X_test[s : s + eval_batch_size])).reshape(-1)
        for s in range(0, len(X_test), eval_batch_size)
    ]
    accuracy = float((np.concatenate(preds) == y_test).mean()) if len(X_test) else float("nan")
    out = dict(
        samples=seen,
        seconds=seconds,
        samples_per_s=seen / seconds if seconds > 0 else float("inf"),
        accuracy=accuracy,
        online_accuracy=online_correct / max(seen, 1),
        complete=seen == n,
        implementation=f"pygln-{backend}",
        batch_size=batch_size,
    )
    if backend in ("pytorch", "torch"):
        import torch

        out["torch_threads"] = torch.get_num_threads()
    return out


# ----------------------------------------------------------------------------------------------
# DeepMind (google-deepmind/deepmind-research, gated_linear_networks)
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _tfp_experimental_substrates_alias():
    """DeepMind's files do ``import tensorflow_probability as tfp`` and then read
    ``tfp.experimental.substrates.jax``; current TFP names it ``tfp.substrates.jax``, and touching
    ``tfp.experimental`` imports TensorFlow. While their modules import, ``sys.modules`` maps
    ``tensorflow_probability`` (and the ``experimental.substrates[.jax]`` names) to a shim whose
    ``experimental.substrates.jax`` is the real ``tfp.substrates.jax``; afterwards the real
    entries are restored (their modules keep the JAX substrate they bound)."""
    import tensorflow_probability as real_tfp
    import tensorflow_probability.substrates.jax as tfp_jax

    substrates = types.ModuleType("tensorflow_probability.experimental.substrates")
    substrates.jax = tfp_jax
    experimental = types.ModuleType("tensorflow_probability.experimental")
    experimental.substrates = substrates
    shim = types.ModuleType("tensorflow_probability")
    shim.__dict__.update({k: v for k, v in vars(real_tfp).items() if k != "experimental"})
    shim.experimental = experimental
    shim.substrates = real_tfp.substrates

    names = {
        "tensorflow_probability": shim,
        "tensorflow_probability.experimental": experimental,
        "tensorflow_probability.experimental.substrates": substrates,
        "tensorflow_probability.experimental.substrates.jax": tfp_jax,
    }
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update(names)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _import_deepmind_bernoulli():
    if DEEPMIND_ROOT not in sys.path:
        sys.path.insert(0, DEEPMIND_ROOT)
    if "gated_linear_networks.bernoulli" in sys.modules:
        return sys.modules["gated_linear_networks.bernoulli"]
    with _tfp_experimental_substrates_alias():
        from gated_linear_networks import bernoulli
    return bernoulli


def deepmind_available() -> str | None:
    """``None`` if DeepMind's Bernoulli GLN imports (jax, dm-haiku, chex, rlax and a TFP with a
    working ``substrates.jax``), else why not."""
    if not os.path.isdir(os.path.join(DEEPMIND_ROOT, "gated_linear_networks")):
        return f"DeepMind's gated_linear_networks not found under {DEEPMIND_ROOT}"
    try:
        _import_deepmind_bernoulli()
    except Exception as exc:  # pragma: no cover - depends on the environment
        return f"DeepMind's GLN does not import: {type(exc).__name__}: {exc}"
    return None


def deepmind_online(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    layer_sizes: Sequence[int],
    context_map_size: int,
    learning_rate: float | Callable[[Any], Any],
    num_classes: int,
    seed: int,
    batch_size: int = 1,
    max_seconds: float | None = None,
    loop: str = "python",
    scan_chunk: int = 256,
    side_info: str = "inputs",
) -> dict[str, Any]:
    """One online pass of DeepMind's Bernoulli GLN (``bernoulli.GatedLinearNetwork`` under
    ``bernoulli.LastNeuronAggregator``), one-vs-all over ``num_classes`` (``jax.vmap`` over
    classes, as their MNIST example), example by example, then test accuracy.

    ``layer_sizes``: hidden layers, pygln's convention (``[16, 16]`` builds their
    ``output_sizes=[16, 16, 1]``). The inputs ``X`` (in [0, 1]) are the base predictions *and*
    the side information (their example instead standardises MNIST with a running mean/std and
    feeds its sigmoid). ``learning_rate``: a constant, or ``f(step)`` with ``step`` counted from
    1 per example (their example: ``min(0.003, 1 / (1 + 0.1 t))``). Only ``batch_size=1``: their
    update is per example. ``loop``: ``"python"`` (one jitted call per example, params donated:
    dispatch included) or ``"scan"`` (``lax.scan`` over chunks of ``scan_chunk`` examples, the
    same arithmetic without per-example dispatch; ``max_seconds`` is checked between chunks). The
    jit compile is done before the clock starts and reported as ``compile_seconds``.

    DeepMind's semantics, as read from ``base.py`` / ``bernoulli.py``: before every layer a
    constant probability ``σ(1)`` is appended to the inputs (a learned bias weight, not a
    constant neuron); inputs are clipped into ``[0.01, 0.99]`` and turned into logits; weights
    start at 0 (every neuron predicts 1/2); hyperplanes are unit-norm Gaussian with
    ``N(0, 0.05²)`` offsets; a neuron's update is the gradient of the log loss of its output
    clipped into ``[0.01, 0.99]`` — zero when the output lies outside, so saturated neurons do
    not learn — and weights are clipped into ``[-200, 200]``.
    """
    import haiku as hk
    import jax
    import jax.numpy as jnp

    if batch_size != 1:
        raise ValueError("deepmind_online supports batch_size=1 only (their update is per example)")
    if loop not in ("python", "scan"):
        raise ValueError("loop must be 'python' or 'scan'")
    if side_info != "inputs":
        raise ValueError("only side_info='inputs' is implemented")
    bernoulli = _import_deepmind_bernoulli()

    output_sizes = [int(s) for s in layer_sizes] + [1]

    def network():
        return bernoulli.LastNeuronAggregator(
            lambda: bernoulli.GatedLinearNetwork(
                output_sizes=output_sizes, context_dim=int(context_map_size)
            )
        )

    def inference_fn(x):
        return network().inference(x, x)

    def update_fn(x, target, lr):
        return network().update(x, x, target, lr)

    init_, inference_ = hk.without_apply_rng(hk.transform_with_state(inference_fn))
    _, update_ = hk.without_apply_rng(hk.transform_with_state(update_fn))

    lr_fn = learning_rate if callable(learning_rate) else (lambda step: learning_rate)

    def init(x0, key):
        keys = jax.random.split(key, num_classes)
        xs = jnp.stack([x0] * num_classes, axis=0)
        return jax.vmap(init_, in_axes=(0, 0))(keys, xs)

    def predict_one(params, state, x):
        probs, _ = jax.vmap(inference_, in_axes=(0, 0, None))(params, state, x)
        return jnp.argmax(probs)

    def step_one(params, state, step, x, label):
        targets = jax.nn.one_hot(label, num_classes)
        lr = jnp.asarray(lr_fn(step), jnp.float32)
        (new_params, preds, _loss), state = jax.vmap(update_, in_axes=(0, 0, None, 0, None))(
            params, state, x, targets, lr
        )
        return new_params, state, jnp.argmax(preds) == label

    X_train = jnp.asarray(np.asarray(X_train, np.float32))
    X_test_j = jnp.asarray(np.asarray(X_test, np.float32))
    y_train = jnp.asarray(np.asarray(y_train, np.int32))
    y_test = np.asarray(y_test)
    n = int(X_train.shape[0])

    params, state = jax.jit(init)(X_train[0], jax.random.PRNGKey(seed))

    if loop == "python":
        X_rows = [X_train[i] for i in range(n)]  # per-row device arrays, made before the clock
        y_rows = [y_train[i] for i in range(n)]
        jax.block_until_ready((X_rows, y_rows))
        c0 = time.perf_counter()
        # Ahead-of-time compile; params/state are donated so XLA updates the tables in place
        # (without donation every step copies the whole weight table).
        step_jit = (
            jax.jit(step_one, donate_argnums=(0, 1))
            .lower(params, state, 1, X_rows[0], y_rows[0])
            .compile()
        )
        compile_seconds = time.perf_counter() - c0
        correct = []
        t0 = time.perf_counter()
        for i in range(n):
            params, state, ok = step_jit(params, state, i + 1, X_rows[i], y_rows[i])
            correct.append(ok)
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
        jax.block_until_ready(params)
        seconds = time.perf_counter() - t0
        seen = len(correct)
        online_correct = int(np.sum(np.asarray(jnp.stack(correct))))
    else:

        def chunk(carry, inp):
            params, state = carry
            step, x, label = inp
            params, state, ok = step_one(params, state, step, x, label)
            return (params, state), ok

        @jax.jit
        def run_chunk(params, state, steps, xs, labels):  # not donated: compiled on a copy
            (params, state), oks = jax.lax.scan(chunk, (params, state), (steps, xs, labels))
            return params, state, oks.sum()

        def pieces():
            for s in range(0, n, scan_chunk):
                e = min(s + scan_chunk, n)
                yield s, e

        shapes = {e - s for s, e in pieces()}
        c0 = time.perf_counter()
        for size in shapes:  # compile every chunk length used
            jax.block_until_ready(
                run_chunk(params, state, jnp.arange(1, size + 1), X_train[:size], y_train[:size])
            )
        compile_seconds = time.perf_counter() - c0
        seen = 0
        online_correct = 0
        t0 = time.perf_counter()
        for s, e in pieces():
            params, state, ok = run_chunk(
                params, state, jnp.arange(s + 1, e + 1), X_train[s:e], y_train[s:e]
            )
            online_correct += int(ok)  # syncs: the clock check below sees finished work
            seen = e
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
        jax.block_until_ready(params)
        seconds = time.perf_counter() - t0

    preds = np.asarray(
        jax.jit(jax.vmap(predict_one, in_axes=(None, None, 0)))(params, state, X_test_j)
    )
    accuracy = float((preds == y_test).mean()) if len(y_test) else float("nan")
    return dict(
        samples=seen,
        seconds=seconds,
        samples_per_s=seen / seconds if seconds > 0 else float("inf"),
        accuracy=accuracy,
        online_accuracy=online_correct / max(seen, 1),
        complete=seen == n,
        implementation=f"deepmind-{loop}",
        batch_size=1,
        compile_seconds=compile_seconds,
        jax_backend=jax.default_backend(),
    )
