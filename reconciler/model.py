"""The base of the documents the tool writes (plan, scan): immutable, and no field it does not declare."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
