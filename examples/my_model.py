"""A minimal user model for equibench: an MLP on each atom's (type, position), energy summed over atoms.

Run it with:  equibench run --model examples/my_model.py --task md17
It is deliberately NOT rotation-equivariant (positions are plain input features), so the runner
trains it with random-rotation augmentation and the probe measures how equivariant it became.
"""
import torch


class AtomMLP(torch.nn.Module):
    equivariant = False

    def __init__(self, node_feature_dim: int, hidden: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(node_feature_dim + 3, hidden), torch.nn.SiLU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 1))

    def forward(self, batch):
        with torch.enable_grad():
            pos = batch.pos.detach().requires_grad_(True)
            atom_energy = self.net(torch.cat([batch.x, pos], dim=1)).squeeze(1)
            energy = torch.zeros(batch.num_graphs, dtype=pos.dtype, device=pos.device).index_add(0, batch.batch, atom_energy)
            forces = -torch.autograd.grad(energy.sum(), pos, create_graph=self.training)[0]
        return {"energy": energy, "forces": forces}


def build_model(task):
    """equibench calls this with the task; return any torch.nn.Module."""
    return AtomMLP(task.node_feature_dim)
