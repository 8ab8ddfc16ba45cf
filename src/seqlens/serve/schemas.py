"""Request and response bodies of the HTTP API (pydantic), with the limits that keep bad input a 4xx.

Strict types where coercion would hide a client bug (`k: true`, `explain: "no"`); item ids may be JSON
strings or integers (MovieLens ids look like numbers) and are compared as strings, like everywhere in
seqlens.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

#: the largest ad-hoc history accepted; longer requests are refused, not truncated (truncation to the
#: model's max_len happens after validation and is reported)
MAX_ITEMS = 10_000
MAX_K = 1000
#: request bodies larger than this are refused before parsing (413)
MAX_BODY_BYTES = 1 << 20


def _encodable(text: str) -> str:
    """Refuse lone surrogates (JSON allows "\ud800"): the answer, which echoes ids, must encode as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{text!r} is not valid Unicode (a lone surrogate)") from None
    return text


Text = Annotated[StrictStr, AfterValidator(_encodable)]
ItemId = Annotated[Text | StrictInt, Field(description="an external item id")]


class RecommendRequest(BaseModel):
    """Exactly one of `user_id` (a stored history) or `items` (an ad-hoc history, oldest first)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[StrictStr, Field(min_length=1, max_length=256), AfterValidator(_encodable)] | None = None
    items: Annotated[list[ItemId], Field(max_length=MAX_ITEMS)] | None = None
    timestamps: (
        Annotated[list[Annotated[StrictInt, Field(gt=-(2**62), lt=2**62)]], Field(max_length=MAX_ITEMS)] | None
    ) = Field(None, description="the items' times (seconds, aligned with items): a model that reads time uses them")
    user_attributes: Annotated[dict[Text, Text], Field(max_length=64)] | None = Field(
        None, description="the user's attributes (column -> value), with items: a model that reads them uses them"
    )
    context: Annotated[dict[Text, Text], Field(max_length=64)] | None = Field(
        None, description="the request's context (column -> value, such as device): a model that reads it uses it"
    )
    k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = 10
    exclude_seen: StrictBool = True
    explain: StrictBool = False
    method: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    attention: StrictBool = Field(
        False, description="include the last position's attention weights over the history (for a heatmap)"
    )

    @model_validator(mode="after")
    def _times_align(self) -> RecommendRequest:
        if self.timestamps is not None and (self.items is None or len(self.timestamps) != len(self.items)):
            raise ValueError("timestamps must come with items, one per item (a stored user's times are known)")
        if self.user_attributes is not None and self.items is None:
            raise ValueError("user_attributes must come with items (a stored user's attributes are known)")
        return self


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int
    item_id: str
    title: str | None = None
    score: float


class Attribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: int = Field(description="index in the history the model read (0 = oldest used item)")
    item_id: str
    title: str | None = None
    score: float
    share: float = Field(description="share of the positive attribution mass")


class Explanation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(description="the recommended item being explained (rank 1)")
    title: str | None = None
    score: float
    method: str
    target_agnostic: bool = Field(description="attention-based: the same for whichever item is explained")
    signed: bool = Field(
        True,
        description="scores are effects on the item's score (negative: it counted against the item); "
        "otherwise where the model looked",
    )
    narrative: str
    other_share: float = Field(0.0, description="share of deny-listed items, shown as 'other items'")
    attributions: list[Attribution]


class AttentionMap(BaseModel):
    """The last query's applied attention weights: `weights[layer][head][j]` over `items[j]`."""

    model_config = ConfigDict(extra="forbid")

    items: list[str]
    weights: list[list[list[float]]]


class RecommendResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    recommendations: list[Recommendation]
    history_length: int = Field(description="known items in the history")
    used_length: int = Field(description="items the model read (the most recent max_len)")
    truncated: bool
    unknown_items: list[str] = Field(default_factory=list, description="ids not known to the model, ignored")
    notes: list[str] = Field(default_factory=list)
    model_version: str = Field(description="the model store's version that answered, else the model's config hash")
    explanation: Explanation | None = None
    attention: AttentionMap | None = None


class Item(BaseModel):
    item_id: str
    title: str | None = None
    interactions: int | None = None


class ItemList(BaseModel):
    items: list[Item]


class ErrorBody(BaseModel):
    error: str
