"""The grader's error hierarchy.

Messages say what was expected and what arrived, so a student or TA can act on them:
"samples: expected (64, 1, 28, 28) float32 in [0, 1], got (64, 784) float64".
"""


class GraderError(Exception):
    """Base class of every error the grader raises on purpose."""


class InvalidSubmission(GraderError):
    """The uploaded notebook cannot be graded at all (malformed, too large, not a notebook)."""


class AssignmentError(GraderError):
    """An assignment folder is broken: missing template, rubric that does not load, bad sums."""


class ArtifactError(GraderError):
    """A probe artifact failed validation (schema, shape, dtype, finiteness, size)."""


class SandboxUnavailable(GraderError):
    """No isolation backend can run here (no docker engine, bwrap probe failed)."""


class GradingFailed(GraderError):
    """Grading broke on our side (the sandbox did not start, the orchestrator crashed): no score counts."""
