"""UTC instants and date ranges; parsing of the ISO forms the protocol accepts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from domain.errors import InvalidDateRange


def parse_instant(text: str, field: str) -> datetime:
    """An ISO date (`2023-01-03`, midnight UTC) or datetime (naive means UTC) → aware UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidDateRange(
            f"{field} '{text}' is not an ISO date (YYYY-MM-DD) or datetime",
            {"field": field, "value": text},
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise InvalidDateRange(
            f"{field} '{text}' is outside the representable range of dates",
            {"field": field, "value": text},
        ) from None


def format_instant(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as every timestamp travels on the wire."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DateRange:
    """A simulated period; both ends aware UTC, start not after end. The period holds whole
    days (PROTOCOL §4.6): `2023-01-03`..`2023-01-03` is the one day."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidDateRange("Dates must be timezone-aware", {"field": "start_date"})
        if self.start > self.end:
            raise InvalidDateRange(
                f"start_date {format_instant(self.start)} is after "
                f"end_date {format_instant(self.end)}; the end is the last day included",
                {
                    "field": "start_date",
                    "start_date": format_instant(self.start),
                    "end_date": format_instant(self.end),
                },
            )

    @classmethod
    def parse(cls, start: str, end: str) -> DateRange:
        return cls(parse_instant(start, "start_date"), parse_instant(end, "end_date"))

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return self.end.date()

    @property
    def days(self) -> int:
        """Calendar days touched, both ends included."""
        return (self.last_day - self.first_day).days + 1
