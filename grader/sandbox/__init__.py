"""Sandboxed execution of untrusted notebook code: one interface, docker / bwrap / none backends."""

from grader.sandbox.detect import detect_backend
from grader.sandbox.docker import docker_command
from grader.sandbox.model import Limits, Reason, SandboxResult
from grader.sandbox.runner import run

__all__ = ["Limits", "Reason", "SandboxResult", "detect_backend", "docker_command", "run"]
