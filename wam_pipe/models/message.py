"""Message processor: turns a bit string into a feature vector the embedder concatenates to its latent."""

from __future__ import annotations

import torch
from torch import nn


class MessageProcessor(nn.Module):
    """Binary message `(B, nbits)` of 0/1 -> `(B, hidden)`, as the reference `binary+concat` processor.

    Each bit position k owns two learned rows of an `nn.Embedding(2 * nbits, hidden)`: row `2k` for a 0 and row
    `2k + 1` for a 1. The nbits selected rows are summed, so every bit contributes a signed direction.

    Args:
        nbits: message length.
        hidden: embedding width.
    """

    def __init__(self, nbits: int, hidden: int):
        super().__init__()
        self.nbits = nbits
        self.hidden = hidden
        self.embedding = nn.Embedding(2 * nbits, hidden)
        self.register_buffer("row_offsets", 2 * torch.arange(nbits), persistent=False)

    def forward(self, msgs: torch.Tensor) -> torch.Tensor:
        """msgs `(B, nbits)` of 0/1 (float or integer) -> `(B, hidden)`."""
        rows = self.row_offsets + msgs.round().long()  # (B, nbits), row 2k + m_k
        return self.embedding(rows).sum(dim=1)  # (B, nbits, hidden) -> (B, hidden)

    def broadcast(self, msgs: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """msgs `(B, nbits)` -> `(B, hidden, height, width)`, the same vector at every position."""
        vec = self.forward(msgs)
        return vec[:, :, None, None].expand(-1, -1, height, width)
