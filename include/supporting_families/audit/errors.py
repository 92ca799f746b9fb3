"""The ledger's errors. Messages name keys, kinds and rules, never a value that was refused."""

from __future__ import annotations

from collections.abc import Sequence


class LedgerError(Exception):
    """Base class of every ledger error."""


class EntryValidationError(LedgerError, ValueError):
    """An entry was refused before it reached the database; one ``key: rule`` per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("ledger entry refused: " + "; ".join(self.problems))


class PersonalDataError(EntryValidationError):
    """An entry looked as if it carried personal data. The ledger holds none (see the module docstring)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(
            [
                *problems,
                "the ledger holds no personal data: record counts, hashes, ids, field names and short codes",
            ]
        )


class IdempotencyConflictError(LedgerError):
    """An idempotency key already names a different event (another kind or agreement)."""


class AppendConflictError(LedgerError):
    """The append could not take the chain's head after several attempts (another writer kept winning)."""


class LedgerSchemaError(LedgerError):
    """The ledger table is missing, or its append-only triggers are missing or disabled."""
