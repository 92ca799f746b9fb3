"""How dirty the extracts are: the rates at which records differ from the truth about the person."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

#: The property pool reserves room for at most this share of households to have moved (their old homes).
MAX_MOVED = 0.25


@dataclass(frozen=True)
class DirtConfig:
    """Rates of the faults real extracts carry. Defaults are modest, a few percent each.

    Each rate is a probability, drawn independently per source record:

    * ``name_variant``: a record whose given name has a known variant (Bill for William, Mohamed for Mohammed,
      Ines for Inês) uses it.
    * ``typo``: a record has one keyboard slip in its given name or its family name (even odds), first
      letter kept.
    * ``missing_uprn``: a record of a source that carries UPRNs has it empty.
    * ``duplicate``: a person known to a source is known twice, under a second record id, carrying the same
      rows (measures) and its own, independently drawn, name dirt. Criteria on duplicates are unchanged.
    * ``moved`` (per household, at most ``MAX_MOVED``): the household moved within the borough in the last two
      years; a record the source created before the move date still carries the old address and UPRN.

    Dirt never touches dates of birth, sex or measures, and it never changes who is in a source, so the ground
    truth of criteria is the same for every dirt setting of one seed.
    """

    name_variant: float = 0.05
    typo: float = 0.02
    missing_uprn: float = 0.05
    duplicate: float = 0.02
    moved: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"dirt rate {f.name} must be between 0 and 1")
        if self.moved > MAX_MOVED:
            raise ValueError(f"dirt rate moved must be at most {MAX_MOVED}")

    @classmethod
    def clean(cls) -> DirtConfig:
        """Every rate zero: each record carries exactly the person's true identity and current address."""
        return cls(name_variant=0.0, typo=0.0, missing_uprn=0.0, duplicate=0.0, moved=0.0)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
