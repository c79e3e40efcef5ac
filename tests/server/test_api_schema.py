"""Property-based tests of the whole JSON API from its OpenAPI schema (schemathesis, in-process ASGI).

Every operation gets valid and invalid requests as an admin, on SQLite and on PostgreSQL. None may
answer 5xx, and every answer must be documented: its status code, content type and body schema (the
one error shape, :class:`server.schemas.ErrorOut`, included); invalid requests must be rejected.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from server.models import User
from server.services import users

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def api_course(course_factory, tmp_path):
    return course_factory(assignments_dir=tmp_path / "no-assignments")


@pytest.fixture
def api_schema(api_course):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_course.client.app)
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, deterministic=True)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def _admin_headers(course) -> dict[str, str]:
    """A fresh admin token for each request: the tested DELETE /api/tokens/{id} may revoke any other."""
    with course.db.session() as s:
        ada = s.scalars(select(User).where(User.username == "ada")).one()
        _, token = users.create_token(s, user=ada, name="schemathesis")
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_every_request_as_documented(case, api_course) -> None:
    case.call_and_validate(headers=_admin_headers(api_course), checks=CHECKS)
