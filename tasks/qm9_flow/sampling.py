"""Generating molecules by integrating a learned flow from noise (t = 0) to data (t = 1)."""
from __future__ import annotations

import numpy as np
import torch

from equibench.scatter import centre_per_group

METHODS = ("euler", "heun")


def initial_noise(n_atoms: torch.Tensor, n_types: int, generator: torch.Generator):
    """x_0 [N, 3] (zero CoM per molecule), h_0 [N, n_types], batch [N] for molecules of ``n_atoms`` atoms."""
    batch = torch.repeat_interleave(torch.arange(len(n_atoms)), n_atoms)
    x0 = centre_per_group(torch.randn(len(batch), 3, generator=generator), batch, len(n_atoms))
    h0 = torch.randn(len(batch), n_types, generator=generator)
    return x0, h0, batch


def flow_batch(pos: torch.Tensor, types: torch.Tensor, t: torch.Tensor, batch: torch.Tensor):
    """The model input for noisy positions [N, 3], noisy types [N, T] and times [B]."""
    from torch_geometric.data import Batch

    counts = torch.bincount(batch, minlength=len(t))
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return Batch(x=types, pos=pos, t=t, batch=batch, ptr=ptr)


@torch.no_grad()
def sample_molecules(model: torch.nn.Module, n_atoms: torch.Tensor, atom_types: tuple[int, ...], steps: int,
                     method: str, generator: torch.Generator, device: torch.device) -> list[tuple[np.ndarray, np.ndarray]]:
    """Integrate ``model``'s velocity field for molecules with ``n_atoms`` [B] atoms.

    Returns ``(z, pos)`` per molecule: atomic numbers from the argmax of the type channels, and
    positions in Å. ``method`` is ``euler`` (1 model call per step) or ``heun`` (2 calls).
    """
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; expected one of {METHODS}")
    if steps < 1:
        raise ValueError(f"sampling needs at least 1 step, got {steps}")
    x, h, batch = initial_noise(n_atoms, len(atom_types), generator)
    x, h, batch = x.to(device), h.to(device), batch.to(device)
    b = len(n_atoms)

    def velocity(x_t, h_t, t):
        out = model(flow_batch(x_t, h_t, torch.full((b,), t, device=device), batch))
        return centre_per_group(out["pos_velocity"], batch, b), out["type_velocity"]

    dt = 1.0 / steps
    for i in range(steps):
        t = i * dt
        vx, vh = velocity(x, h, t)
        if method == "heun":
            vx2, vh2 = velocity(x + dt * vx, h + dt * vh, t + dt)
            vx, vh = (vx + vx2) / 2, (vh + vh2) / 2
        x, h = x + dt * vx, h + dt * vh
    z = torch.as_tensor(atom_types, device=device)[h.argmax(1)]
    bounds = torch.cat([n_atoms.new_zeros(1), n_atoms.cumsum(0)]).tolist()
    z_np, x_np = z.cpu().numpy(), x.cpu().numpy()
    return [(z_np[s:e], x_np[s:e]) for s, e in zip(bounds[:-1], bounds[1:])]
