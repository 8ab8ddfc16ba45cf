"""The contract every next-item network keeps: hidden states from left-padded sequences, shared scoring."""

from __future__ import annotations

from torch import Tensor, nn

from seqlens.nn.masking import one_pass_each, time_kwargs


class NextItemNet(nn.Module):
    """Subclasses define `item_emb` (index 0 = padding) and `forward(seq) -> (hidden [B, T, D], extras)`.

    Scores for the next item are the hidden state dotted with the input item embeddings (shared), so
    column 0 of `scores` is padding and always -inf.
    """

    item_emb: nn.Embedding
    #: whether `forward(seq, return_attention=True)` also returns per-layer attention weights (a capability
    #: the service and the explanations ask for, instead of inspecting signatures)
    has_attention: bool = False

    #: whether the hidden state after position j depends only on the items, not on where they sit in the window (then
    #: dropping the latest item gives the state one column earlier; SASRec without absolute positions)
    shift_invariant: bool = False

    #: whether `forward` reads the items' timestamps (`times=` [B, T], seconds); callers pass them only then
    reads_time: bool = False

    @property
    def hidden_dim(self) -> int:
        """Width of the hidden states (`forward`, `last_hidden`): the item vectors' width, that scores dot them with."""
        return self.item_emb.embedding_dim

    def training_forward(self, seq: Tensor, times: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Hidden states [B, T, D] of `seq` [B, T] (and its `times`, for a network that `reads_time`) in training,
        and a penalty the network adds to the loss for how it got them (a scalar; none by default)."""
        hidden, _ = self(seq, **time_kwargs(times))
        return hidden, hidden.new_zeros(())

    def extra_loss(self, hidden: Tensor, targets: Tensor, n_items: int) -> Tensor:
        """A network's own term added to the next-item loss (hidden [N, hidden_dim] at the targets [N], negatives
        drawn from the first `n_items`); none by default."""
        return hidden.new_zeros(())

    def item_table(self) -> Tensor:
        """[n_items + 1, D]: every item's vector, as inputs are embedded and candidates scored (row 0: padding)."""
        return self.item_emb.weight

    def item_vectors(self, items: Tensor) -> Tensor:
        """[..., D]: the vectors of `items` [...] (rows of `item_table`)."""
        return self.item_emb(items)

    def user_vector(self, codes: Tensor, hide: Tensor | None = None) -> Tensor:
        """[..., D]: what users' attribute codes [..., columns] add to the state their next item is scored from (a
        network that reads user attributes); it adds to every item's score its dot product with the item's vector,
        whatever the history. `hide` [..., columns] leaves out a column where True."""
        raise ValueError(f"{type(self).__name__} reads no user attributes")

    def context_vector(self, codes: Tensor, hide: Tensor | None = None) -> Tensor:
        """[..., D]: what a request's context codes [..., columns] add to the state its next item is scored from (a
        network that reads context), as `user_vector` does."""
        raise ValueError(f"{type(self).__name__} reads no request context")

    def scores(self, hidden: Tensor) -> Tensor:
        """hidden [..., D] -> scores over all items [..., n_items + 1], padding column at -inf."""
        s = hidden @ self.item_table().T
        s[..., 0] = float("-inf")
        return s

    def last_hidden(self, seq: Tensor, times: Tensor | None = None) -> Tensor:
        """The hidden state at the last (most recent) position, which predicts the next item."""
        hidden, _ = self(seq, **time_kwargs(times))
        return hidden[:, -1]

    def removed_last_hidden(self, seq: Tensor, times: Tensor | None = None) -> Tensor:
        """[B, T, D]: column j is the last hidden state of `seq` [B, T] without item j (zero at padding): one
        forward pass per position here; SASRec reuses what a removal leaves unchanged."""
        return one_pass_each(self, seq, remove=True, times=times)

    def score_of(self, hidden: Tensor, items: Tensor) -> Tensor:
        """Scores [...] of one item per hidden state (hidden [..., D], items [...]): `scores` at those items only."""
        return (hidden * self.item_vectors(items)).sum(-1).masked_fill(items == 0, float("-inf"))
