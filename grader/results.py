"""Typed results that the score and report stages produce and the server stores."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ItemKind = Literal["check", "metric", "theory", "manual"]
ItemStatus = Literal["passed", "partial", "failed", "error", "pending"]


class ItemResult(BaseModel):
    """The score of one rubric item."""

    id: str
    kind: ItemKind
    title: str = ""
    points: float
    max_points: float
    status: ItemStatus
    message: str = ""
    task: str = ""
    details: dict[str, float | str | bool | None] = Field(default_factory=dict)


class SandboxSummary(BaseModel):
    """How the sandboxed run ended, as the host observed it."""

    backend: str
    reason: str
    exit_code: int | None = None
    duration_s: float = 0.0
    peak_memory_bytes: int | None = None
    isolated: bool = True


class Figure(BaseModel):
    """A picture for the feedback report (sample grid, curve), PNG as base64."""

    title: str
    png_base64: str


class Report(BaseModel):
    """The grading report. JSON contract: see DESIGN.md (Command line)."""

    assignment: str
    profile: str
    total: float
    max_total: float
    auto_total: float
    auto_max: float
    pending_manual: float
    items: list[ItemResult]
    task_titles: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    sandbox: SandboxSummary | None = None
    figures: list[Figure] = Field(default_factory=list)
    duration_s: float = 0.0
