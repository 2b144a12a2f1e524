"""The lifecycle of an enforcement lead: its states and the changes between them.

::

    new ──► under_review ──► confirmed ──► notice_issued ──► rectified ──► closed
     │            │              │               │       └──► demolished ──► closed
     │            └──► dismissed ◄───────────────┘
     │                  │   ▲ │
     │                  │   └─┼── (reopened: back to under_review, by hand or when it grows)
     └──► closed        └─────┴──► closed

Legal changes (:data:`TRANSITIONS`):

* ``new`` → ``under_review`` (an inspector takes it), or → ``closed`` with a reason (the
  structure is gone before anyone reviewed it: the registry proposes this when a later survey
  no longer sees it);
* ``under_review`` → ``confirmed`` or ``dismissed`` (a reason is required: why it is not a
  violation);
* ``confirmed`` → ``notice_issued``, or → ``dismissed`` with a reason (a permit produced on
  appeal);
* ``notice_issued`` → ``rectified`` or ``demolished``, or → ``dismissed`` with a reason (the
  notice withdrawn);
* ``rectified`` / ``demolished`` → ``closed``;
* ``dismissed`` → ``under_review`` (reopened, with a reason; the registry does it itself when
  the structure grows again), or → ``closed``;
* ``closed`` is final: nothing leaves it (a structure built again where a closed lead was is a
  new lead that names the closed one as its ``previous_lead_id``). A change to the state a
  lead is already in is refused too.

Evidence (:data:`HOLD_STATES`): from ``confirmed`` until ``closed`` (or ``dismissed``) a lead's
evidence is under legal hold; its retention follows the lead's risk tier throughout.
"""

from __future__ import annotations

from collections.abc import Mapping

from survey.registry.errors import LeadTransitionError

__all__ = [
    "HOLD_STATES",
    "LEAD_STATES",
    "OPEN_STATES",
    "REASON_REQUIRED",
    "TRANSITIONS",
    "check_transition",
]

LEAD_STATES: tuple[str, ...] = (
    "new",
    "under_review",
    "confirmed",
    "dismissed",
    "notice_issued",
    "rectified",
    "demolished",
    "closed",
)
"""Every state, in the order of the lifecycle."""

TRANSITIONS: Mapping[str, frozenset[str]] = {
    "new": frozenset({"under_review", "closed"}),
    "under_review": frozenset({"confirmed", "dismissed"}),
    "confirmed": frozenset({"notice_issued", "dismissed"}),
    "notice_issued": frozenset({"rectified", "demolished", "dismissed"}),
    "rectified": frozenset({"closed"}),
    "demolished": frozenset({"closed"}),
    "dismissed": frozenset({"under_review", "closed"}),
    "closed": frozenset(),
}
"""state → the states it may change to."""

REASON_REQUIRED: frozenset[tuple[str, str]] = frozenset(
    {
        ("new", "closed"),
        ("under_review", "dismissed"),
        ("confirmed", "dismissed"),
        ("notice_issued", "dismissed"),
        ("dismissed", "under_review"),
    }
)
"""Changes that need a reason: a dismissal, a reopening, closing a lead nobody reviewed."""

HOLD_STATES: frozenset[str] = frozenset({"confirmed", "notice_issued", "rectified", "demolished"})
"""States in which a lead's evidence is under legal hold."""

OPEN_STATES: frozenset[str] = frozenset(s for s in LEAD_STATES if s != "closed")
"""States a later survey can still match (every state but ``closed``)."""


def check_transition(lead: int | str, current: str, target: str, reason: str | None) -> None:
    """Refuse a change the lifecycle does not allow, in one line.

    Parameters
    ----------
    lead : int or str
        The lead's id, for the message.
    current, target : str
        Its state and the state asked for.
    reason : str or None
        Why; required for the changes in :data:`REASON_REQUIRED`.

    Raises
    ------
    LeadTransitionError
        An unknown state, the same state, a change not in :data:`TRANSITIONS`, or a missing
        reason.

    Examples
    --------
    >>> check_transition(7, "under_review", "confirmed", None)
    >>> check_transition(7, "closed", "under_review", None)
    Traceback (most recent call last):
    ...
    survey.registry.errors.LeadTransitionError: lead 7 is closed, which is final; it cannot \
become under_review (a structure seen again after closing is a new lead)
    """
    if target not in LEAD_STATES:
        raise LeadTransitionError(
            f"lead {lead}: {target!r} is not a lead state; use one of {', '.join(LEAD_STATES)}"
        )
    if target == current:
        raise LeadTransitionError(f"lead {lead} is already {current}; nothing to change")
    allowed = TRANSITIONS[current]
    if current == "closed":
        raise LeadTransitionError(
            f"lead {lead} is closed, which is final; it cannot become {target} (a structure "
            "seen again after closing is a new lead)"
        )
    if target not in allowed:
        raise LeadTransitionError(
            f"lead {lead} is {current}, which can become {' or '.join(sorted(allowed))}, not "
            f"{target}"
        )
    if (current, target) in REASON_REQUIRED and not (reason and reason.strip()):
        raise LeadTransitionError(
            f"lead {lead}: {current} -> {target} needs a reason; give --reason TEXT"
        )
