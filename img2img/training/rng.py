"""The process's random number generators, captured into and restored from checkpoints."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ..device import seed_everything


def capture_rng_state() -> dict[str, Any]:
    py_version, py_internal, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": (py_version, list(py_internal), py_gauss),
        # numpy's state holds an ndarray, which weights_only loading refuses: store it as a tensor.
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_ranks_rng(state: dict[str, Any], rank: int, world_size: int, reseed: int) -> None:
    """This rank's RNG as the checkpoint holds it: its own where the checkpoint was written by
    as many ranks, else rank 0's, with other ranks reseeded (`reseed + rank`) so that their
    randomness stays apart."""
    own = state.get("ranks") or []
    if len(own) == world_size > 1:
        restore_rng_state(own[rank]["rng"])
        return
    restore_rng_state(state["rng"])
    if rank:
        seed_everything(reseed + rank)
