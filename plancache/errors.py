"""The exceptions plancache raises.

    PlancacheError
    ├── ConfigurationError      settings that cannot work (bad path, bad value)
    ├── ValidationError         a request or a template that breaks the rules
    │   └── TemplateFileError   ... found while reading a template file
    ├── NotFoundError           no such collection, template or version
    ├── ConflictError           the change clashes with what is stored
    │   └── VersionConflictError   ... it was based on a version no longer current
    ├── AuthError               missing or wrong credentials
    │   └── PermissionDeniedError  known caller, not allowed
    ├── NotServedError          the template exists but is not served (disabled, candidate)
    ├── StoreError              the vector store or template store failed
    ├── PlannerError            the planning model could not give a plan
    │   ├── PlannerNotConfigured   no API key or no planner set up
    │   └── PlannerTimeout         it did not answer within the deadline
    └── ExecutionError          a plan could not be run
        ├── ExecutionTimeout       ... it ran past its deadline
        └── ExecutionCancelled     ... the agent cancelled it

Third-party exceptions are caught where the library is called and re-raised
as one of these, chained with ``from``. The gRPC layer maps each class to one
status code, in ``plancache/_status.py``.
"""

from __future__ import annotations


class PlancacheError(Exception):
    """Base class of every error plancache raises on purpose."""


class ConfigurationError(PlancacheError):
    """A setting that cannot work."""


class ValidationError(PlancacheError):
    """A request or a template that breaks the rules."""


class TemplateFileError(ValidationError):
    """Problems found in a template file; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class NotFoundError(PlancacheError):
    """No such collection, template or version."""


class ConflictError(PlancacheError):
    """The change clashes with what is stored."""


class VersionConflictError(ConflictError):
    """An update was based on a version that is no longer current."""


class AuthError(PlancacheError):
    """Missing or wrong credentials."""


class PermissionDeniedError(AuthError):
    """The caller is known but may not do this."""


class NotServedError(PlancacheError):
    """The template exists but is not served: disabled, or a candidate awaiting approval."""


class StoreError(PlancacheError):
    """The vector store or the template store failed."""


class PlannerError(PlancacheError):
    """The planning model could not give a usable plan."""


class PlannerNotConfigured(PlannerError):
    """No planner is set up (no API key)."""


class PlannerTimeout(PlannerError):
    """The planner did not answer within the deadline."""


class ExecutionError(PlancacheError):
    """A plan could not be run."""


class ExecutionTimeout(ExecutionError):
    """A plan ran past its deadline; nothing more of it runs."""


class ExecutionCancelled(ExecutionError):
    """The agent cancelled the execution; nothing more of it runs."""
