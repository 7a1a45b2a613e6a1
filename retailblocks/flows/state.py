"""What each flow keeps in its saga row, as frozen values; the names of flows, steps and marks, as enums.

A flow's state is one frozen attrs value per flow kind. A step records progress by replacing the run's
state with a new value (``attrs.evolve``); nothing a step settled — the authorizations taken, the captures,
the reservation — can be changed in place, because every part of a state is a frozen value, a tuple or a
read-only mapping. Fields are in the order of the document's keys.

The row keeps the state as a JSON document whose shape is the one every release wrote (mapping keys as
strings, ``done`` beside the fields): loading is tolerant — a key the class does not know is ignored, a key
it lacks takes the field's default — so a saga an older release left running is resumed by this one.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import attrs

from retailblocks.model import Fulfilment, Money, PaymentAuthorization, Reservation, Shipment, ShippingQuote
from retailblocks.model.serialize import converter as model_converter
from retailblocks.model.serialize import to_data


class FlowKind(enum.StrEnum):
    """The flows a saga row can be about (its ``flow`` column)."""

    CHECKOUT = "checkout"
    CANCEL = "cancel"
    REFUND = "refund"


class CheckoutStep(enum.StrEnum):
    RESERVE = "reserve"
    AUTHORIZE = "authorize"
    PLACE = "place"
    CAPTURE = "capture"
    DELIVER = "deliver"
    EARN = "earn"
    COMPLETE = "complete"


class CancelStep(enum.StrEnum):
    BEGIN = "begin"
    STOP_DELIVERY = "stop-delivery"
    RETURN_STOCK = "return-stock"
    RELEASE_PROMOTIONS = "release-promotions"
    REVERSE_POINTS = "reverse-points"
    RETURN_MONEY = "return-money"
    FINISH = "finish"


class RefundStep(enum.StrEnum):
    BEGIN = "begin"
    RETURN_MONEY = "return-money"
    RESTOCK = "restock"
    REVERSE_POINTS = "reverse-points"
    FINISH = "finish"


class StepMark(enum.StrEnum):
    """What the saga log and the row's ``step`` column say besides step names."""

    #: The row's step before any step is done.
    START = "start"
    #: A log entry's action: the step took effect.
    DONE = "done"
    #: A log entry's action: the step was undone.
    COMPENSATED = "compensated"


#: Field metadata: the field is left out of the stored document while it holds its default (the documents
#: older releases wrote had no such key until it was set).
OMIT_DEFAULT = {"omit_default": True}


def _read_only(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return mapping if type(mapping) is MappingProxyType else MappingProxyType(dict(mapping))


def _read_only_or_none(mapping: Mapping[Any, Any] | None) -> Mapping[Any, Any] | None:
    return None if mapping is None else _read_only(mapping)


@attrs.frozen(kw_only=True, slots=False)
class FlowState:
    """What every flow's state may hold: set while a flow is being undone."""

    compensating: bool = attrs.field(default=False, metadata=OMIT_DEFAULT)
    #: Why the flow is being undone (the first failure).
    failure: str | None = attrs.field(default=None, metadata=OMIT_DEFAULT)


@attrs.frozen
class PaymentShare:
    """One payment request's part of an order's total."""

    method: str
    amount: Money


@attrs.frozen
class GroupState:
    """One way an order's lines leave (see retailblocks.model.FulfilmentGroup): the stock reserved for its
    lines at its location, and the shipping quote it is delivered by (None for a pick-up)."""

    fulfilment: Fulfilment
    #: The cart's line indexes that leave this way.
    lines: tuple[int, ...]
    reservation: Reservation | None = None
    quote: ShippingQuote | None = None
    #: What the shopper pays for this group's delivery, after the shipping promotions that target it.
    shipping: int = 0


@attrs.frozen(kw_only=True, slots=False)
class CheckoutState(FlowState):
    request_hash: str
    channel: str
    key: str
    member_id: str | None = None
    plan: tuple[PaymentShare, ...] = ()
    reservation: Reservation | None = None
    quote: ShippingQuote | None = None
    total: int = 0
    #: By plan index: what each share's provider authorized (captured ones replaced by their captured value).
    authorizations: Mapping[int, PaymentAuthorization] = attrs.field(factory=dict, converter=_read_only)
    #: By plan index: the amount each capture took.
    captures: Mapping[int, int] = attrs.field(factory=dict, converter=_read_only)
    shipments: tuple[Shipment, ...] = attrs.field(default=(), metadata=OMIT_DEFAULT)
    #: An order whose lines leave in several ways: one group each, with its own reservation and quote
    #: (``reservation`` and ``quote`` are then None). Empty for an order that leaves one way, as every
    #: state written before orders could have several fulfilments.
    groups: tuple[GroupState, ...] = attrs.field(default=(), metadata=OMIT_DEFAULT)

    def leaving(self) -> tuple[GroupState | None, ...]:
        """Each way the order leaves: its groups, or for an order that leaves one way a single None (its
        ``reservation`` and ``quote`` are the state's own); see reservations() and quotes()."""
        return self.groups or (None,)

    def reservations(self) -> tuple[Reservation, ...]:
        """The stock reserved for the order, one reservation per way its lines leave."""
        if not self.groups:
            return () if self.reservation is None else (self.reservation,)
        return tuple(group.reservation for group in self.groups if group.reservation is not None)

    def quotes(self) -> tuple[ShippingQuote | None, ...]:
        """The shipping quote of each way the order leaves (None for a way nothing is shipped)."""
        if not self.groups:
            return (self.quote,)
        return tuple(group.quote for group in self.groups)


@attrs.frozen(kw_only=True, slots=False)
class CancelState(FlowState):
    reason: str = ""
    key: str
    channel: str | None = None
    #: By plan index: what checkout captured, as begin found it.
    captures: Mapping[int, int] = attrs.field(factory=dict, converter=_read_only)
    member_id: str | None = None
    total: int = 0


@attrs.frozen
class RefundUnit:
    sku: str
    quantity: int


@attrs.frozen
class RefundedLine:
    index: int
    quantity: int


@attrs.frozen(kw_only=True, slots=False)
class RefundState(FlowState):
    #: Units to refund by line index; None refunds every unit not refunded yet.
    lines: Mapping[int, int] | None = attrs.field(default=None, converter=_read_only_or_none)
    reason: str = ""
    restock: bool = True
    key: str
    channel: str | None = None
    amount: int = 0
    #: By plan index: what this refund returns of each capture.
    plan: Mapping[int, int] = attrs.field(factory=dict, converter=_read_only)
    units: tuple[RefundUnit, ...] = ()
    lines_refunded: tuple[RefundedLine, ...] = ()
    member_id: str | None = None
    total: int = 0
    fully: bool = False


S = TypeVar("S", bound=FlowState)

STATE_TYPES: Mapping[FlowKind, type[FlowState]] = {
    FlowKind.CHECKOUT: CheckoutState,
    FlowKind.CANCEL: CancelState,
    FlowKind.REFUND: RefundState,
}

#: Loads documents: tolerant of keys a class does not know (a document from another release).
state_converter = model_converter.copy(forbid_extra_keys=False)


def load_state(kind: type[S], document: Mapping[str, Any]) -> S:
    """The state of class ``kind`` that a saga row's document describes (its ``done`` key aside)."""
    return state_converter.structure({k: v for k, v in document.items() if k != "done"}, kind)


# -- writing ------------------------------------------------------------------------------------------

_PLAIN = frozenset({str, int, bool, float, type(None)})


@attrs.frozen
class _Layout:
    """How one state class is written: its fields in the document's order, read in one call."""

    names: tuple[str, ...]
    read: Callable[[Any], tuple[Any, ...]]
    #: By field: the default that leaves it out of the document, or _WRITTEN when it is always written.
    omitted: tuple[Any, ...]


_WRITTEN = object()
_LAYOUTS: dict[type[Any], _Layout] = {}

#: Data made of the values of one run's states: value id → (value, data). Settled values are the same
#: objects from state to state, so each is turned into data once per run, and the data is the same object
#: each time (which lets SettledJson keep its encoding). A state is a value too: a step that changes
#: nothing writes the document made for the step before.
DataMemo = dict[int, tuple[object, Any]]


def _layout(kind: type[Any]) -> _Layout:
    layout = _LAYOUTS.get(kind)
    if layout is None:
        # What every flow may hold comes last, where the documents always had it.
        common = {field.name for field in attrs.fields(FlowState)}
        fields = sorted(attrs.fields(kind), key=lambda field: field.name in common)
        names = tuple(field.name for field in fields)
        getter = operator.attrgetter(*names)
        layout = _LAYOUTS[kind] = _Layout(
            names,
            getter if len(names) > 1 else lambda state: (getter(state),),
            tuple(_default(field) if field.metadata.get("omit_default") else _WRITTEN for field in fields),
        )
    return layout


def _default(field: attrs.Attribute[Any]) -> Any:
    factory = getattr(field.default, "factory", None)
    return factory() if factory is not None else field.default


def state_document(state: object, memo: DataMemo | None = None) -> dict[str, Any]:
    """``state`` as the JSON-ready document its saga row holds (without ``done``): a new dict each time."""
    if memo is not None:
        known = memo.get(id(state))
        if known is not None and known[0] is state:
            return dict(known[1])
    layout = _layout(type(state))
    document: dict[str, Any] = {}
    plain = _PLAIN
    for name, value, omitted in zip(layout.names, layout.read(state), layout.omitted, strict=True):
        if omitted is not _WRITTEN and value == omitted:
            continue
        if type(value) in plain:
            document[name] = value
            continue
        known = memo.get(id(value)) if memo is not None else None
        document[name] = known[1] if known is not None and known[0] is value else data_of(value, memo)
    if memo is not None:
        memo[id(state)] = (state, document)
        return dict(document)
    return document


def data_of(value: object, memo: DataMemo | None = None) -> Any:
    """``value`` (a part of a state) as JSON-ready data: mapping keys as strings, as the rows hold them."""
    if memo is not None:
        known = memo.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
    if type(value) is MappingProxyType or type(value) is dict:
        data: Any = {str(key): item if type(item) in _PLAIN else data_of(item, memo) for key, item in value.items()}
    else:
        data = to_data(value)
    if memo is not None:
        memo[id(value)] = (value, data)
    return data


__all__ = [
    "STATE_TYPES",
    "CancelState",
    "CancelStep",
    "CheckoutState",
    "CheckoutStep",
    "FlowKind",
    "FlowState",
    "GroupState",
    "PaymentShare",
    "RefundState",
    "RefundStep",
    "RefundUnit",
    "RefundedLine",
    "StepMark",
    "data_of",
    "load_state",
    "state_document",
]
