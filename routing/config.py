"""Configuration as data: queues, workflows, business hours, catalogue, departments.

Every file is YAML validated against a schema (pydantic) at start-up. A mistake stops
start-up with a `ConfigError` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from routing.domain import Channel
from routing.errors import ConfigError
from routing.expressions import Evaluator, ExpressionError, compile_expression

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalizedText(_Strict):
    th: str
    en: str


class ServiceLevel(_Strict):
    """Share of contacts answered within the threshold, e.g. 80 % in 20 s."""

    threshold_seconds: float = Field(gt=0)
    target: float = Field(gt=0, le=1)


class ChannelSettings(_Strict):
    service_level: ServiceLevel
    reservation_timeout: float = Field(default=20, gt=0)
    wrap_up_seconds: float = Field(default=0, ge=0)
    default_handle_seconds: float = Field(default=300, gt=0)
    entry: Literal["bot", "people", "ivr"] = "people"


def _voice_alone() -> dict[Channel, list[Channel]]:
    return {Channel.VOICE: []}


class CapacityRules(_Strict):
    """Cross-channel rules: an agent holding an exclusive channel gets nothing else,
    and gets an exclusive task only when holding nothing but the channels allowed beside it."""

    exclusive: dict[Channel, list[Channel]] = Field(default_factory=_voice_alone)


class HoursSpec(_Strict):
    timezone: str = "Asia/Bangkok"
    always_open: bool = False
    weekly: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]] = Field(
        default_factory=dict
    )
    holidays: str | None = "TH"
    extra_closed_dates: list[str] = Field(default_factory=list)

    @field_validator("weekly")
    @classmethod
    def _ranges(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in value.items():
            for item in ranges:
                if not _RANGE.match(item):
                    raise ValueError(f"{day}: {item!r} is not a range like '08:30-16:30'")
                start, end = _parse_range(item)
                if start >= end:
                    raise ValueError(f"{day}: {item!r} ends before it starts")
        return value


class QueueSpec(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: LocalizedText
    agents: str | None = None
    hours: str = "always"
    channels: list[Channel] | None = None
    service_level: dict[Channel, ServiceLevel] = Field(default_factory=dict)
    reservation_timeout: float | None = Field(default=None, gt=0)
    strategy: Literal["longest_idle", "most_skilled"] = "longest_idle"
    skill: str | None = None
    priority_aging: float = Field(default=0, ge=0, description="priority points per minute waited")
    max_waiting: int | None = Field(default=None, gt=0)


class QueuesFile(_Strict):
    channels: dict[Channel, ChannelSettings]
    capacity_rules: CapacityRules = CapacityRules()
    on_missed_offer: Literal["away", "stay"] = "away"
    business_hours: dict[str, HoursSpec] = Field(default_factory=dict)
    queues: list[QueueSpec] = Field(min_length=1)


class TargetSpec(_Strict):
    queue: str
    agents: str | None = None
    priority: int | None = None
    timeout: float | None = Field(default=None, gt=0)
    skip_if_no_agents: bool = False


class FilterSpec(_Strict):
    name: str
    when: str
    targets: list[TargetSpec] = Field(min_length=1)


class WorkflowFile(_Strict):
    vulnerable_priority_boost: int = 10
    filters: list[FilterSpec] = Field(default_factory=list)
    default: list[TargetSpec] = Field(min_length=1)


class CategorySpec(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: LocalizedText
    department: str | None = None
    queue: str | None = None
    first_response_hours: float = Field(default=8, gt=0)
    resolution_hours: float = Field(default=120, gt=0)
    urgent: bool = False
    human_only: bool = False


class CatalogueFile(_Strict):
    categories: list[CategorySpec] = Field(min_length=1)


class CitizenRules(_Strict):
    """How citizens are recognised, differentiated and protected (config/citizens.yaml)."""

    on_verified_conflict: Literal["merge", "propose"] = "merge"
    suggest_on_name_and_birth_date: bool = True
    suggest_on_unverified_match: bool = True
    elderly_age: int = Field(default=60, ge=1, le=150)
    child_age: int = Field(default=18, ge=1, le=30)
    tell_once: dict[str, list[str]] = Field(default_factory=dict)
    national_id_visible_to: list[str] = Field(default_factory=lambda: ["supervisor", "admin"])
    consent_purposes: list[str] = Field(default_factory=lambda: ["service_delivery"])


class DepartmentSpec(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: LocalizedText
    slack_channel: str | None = None
    #: How long the department has to answer a consultation (business hours).
    consult_hours: float = Field(default=8, gt=0)


class DepartmentsFile(_Strict):
    departments: list[DepartmentSpec] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Compiled configuration, ready for the router and the core.


@dataclass(frozen=True)
class Target:
    queue: str
    agents: Evaluator | None
    agents_source: str | None
    priority: int | None
    timeout: float | None
    skip_if_no_agents: bool


@dataclass(frozen=True)
class WorkflowFilter:
    name: str
    when: Evaluator
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Workflow:
    filters: tuple[WorkflowFilter, ...]
    default: tuple[Target, ...]
    vulnerable_priority_boost: int

    def targets_for(self, attributes: Mapping[str, Any]) -> tuple[str, tuple[Target, ...]]:
        """The first filter matching the task's attributes, and its targets."""
        from routing.expressions import matches

        for f in self.filters:
            if matches(f.when, attributes):
                return f.name, f.targets
        return "default", self.default


@dataclass(frozen=True)
class Queue:
    spec: QueueSpec
    agents: Evaluator | None

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class Settings:
    """All routing configuration, compiled."""

    channels: Mapping[Channel, ChannelSettings]
    capacity_rules: CapacityRules
    on_missed_offer: str
    hours: Mapping[str, HoursSpec]
    queues: Mapping[str, Queue]
    workflow: Workflow
    categories: Mapping[str, CategorySpec] = field(default_factory=dict)
    departments: Mapping[str, DepartmentSpec] = field(default_factory=dict)
    citizens: CitizenRules = field(default_factory=CitizenRules)

    def channel(self, channel: Channel) -> ChannelSettings:
        return self.channels.get(channel) or ChannelSettings(
            service_level=ServiceLevel(threshold_seconds=60, target=0.8)
        )

    def service_level(self, queue_id: str, channel: Channel) -> ServiceLevel:
        queue = self.queues.get(queue_id)
        if queue and channel in queue.spec.service_level:
            return queue.spec.service_level[channel]
        return self.channel(channel).service_level

    def reservation_timeout(self, queue_id: str, channel: Channel) -> float:
        queue = self.queues.get(queue_id)
        if queue and queue.spec.reservation_timeout:
            return queue.spec.reservation_timeout
        return self.channel(channel).reservation_timeout


def load_settings(config_dir: Path | str) -> Settings:
    """Load and validate every routing file in `config_dir`; raise `ConfigError`."""
    config_dir = Path(config_dir)
    queues = ConfigSource.load(config_dir / "queues.yaml", QueuesFile)
    workflow = ConfigSource.load(config_dir / "workflows.yaml", WorkflowFile)
    catalogue_path = config_dir / "catalogue.yaml"
    catalogue = (
        ConfigSource.load(catalogue_path, CatalogueFile) if catalogue_path.exists() else None
    )
    departments_path = config_dir / "departments.yaml"
    departments = (
        ConfigSource.load(departments_path, DepartmentsFile) if departments_path.exists() else None
    )
    citizens_path = config_dir / "citizens.yaml"
    citizens = ConfigSource.load(citizens_path, CitizenRules) if citizens_path.exists() else None
    settings = compile_settings(
        queues.model, workflow.model,
        catalogue.model if catalogue else None,
        departments.model if departments else None,
        sources=(queues, workflow, catalogue or ConfigSource(str(catalogue_path), None, {})),
    )
    if citizens is None:
        return settings
    for field_name, department_ids in citizens.model.tell_once.items():
        for i, department in enumerate(department_ids):
            if department not in settings.departments:
                raise citizens.error(("tell_once", field_name, i),
                                     f"tell_once.{field_name}: unknown department {department!r}")
    return replace(settings, citizens=citizens.model)


@dataclass(frozen=True)
class ConfigSource:
    """A loaded configuration file: its path, its validated model and the line of each
    key, so that a room's own cross-checks can name the line too (`error`)."""

    path: str
    model: Any
    lines: Mapping[tuple[Any, ...], int]

    @classmethod
    def load(cls, path: Path, model: type[BaseModel]) -> ConfigSource:
        data, lines = read_yaml(path)
        return cls(str(path), _validate(path, data, lines, model), lines)

    def error(self, loc: tuple[Any, ...], message: str) -> ConfigError:
        return ConfigError(self.path, _line_for(self.lines, loc), message)


def compile_settings(
    queues_file: QueuesFile,
    workflow_file: WorkflowFile,
    catalogue: CatalogueFile | None = None,
    departments: DepartmentsFile | None = None,
    sources: Sequence[ConfigSource] | None = None,
) -> Settings:
    """Cross-check the files against each other and compile their expressions."""
    q_src, w_src, c_src = sources or (
        ConfigSource("queues.yaml", None, {}), ConfigSource("workflows.yaml", None, {}),
        ConfigSource("catalogue.yaml", None, {}),
    )
    hours = {"always": HoursSpec(always_open=True), **queues_file.business_hours}
    queues: dict[str, Queue] = {}
    for index, spec in enumerate(queues_file.queues):
        where = f"queues.{index} ({spec.id})"
        if spec.id in queues:
            raise q_src.error(("queues", index, "id"), f"{where}: queue id defined twice")
        if spec.hours not in hours:
            raise q_src.error(
                ("queues", index, "hours"), f"{where}: unknown business hours {spec.hours!r}"
            )
        queues[spec.id] = Queue(spec, _expr(q_src, ("queues", index, "agents"), spec.agents))

    def targets(specs: Sequence[TargetSpec], loc: tuple[Any, ...]) -> tuple[Target, ...]:
        out = []
        for i, t in enumerate(specs):
            where = (*loc, i)
            if t.queue not in queues:
                raise w_src.error(
                    (*where, "queue"), f"{_dotted(where)}.queue: unknown queue {t.queue!r}"
                )
            out.append(
                Target(t.queue, _expr(w_src, (*where, "agents"), t.agents),
                       t.agents, t.priority, t.timeout, t.skip_if_no_agents)
            )
        return tuple(out)

    filters = tuple(
        WorkflowFilter(
            f.name,
            _required_expr(w_src, ("filters", i, "when"), f.when),
            targets(f.targets, ("filters", i, "targets")),
        )
        for i, f in enumerate(workflow_file.filters)
    )
    workflow = Workflow(
        filters, targets(workflow_file.default, ("default",)),
        workflow_file.vulnerable_priority_boost,
    )
    departments = departments or DepartmentsFile()
    department_ids = {d.id: d for d in departments.departments}
    categories: dict[str, CategorySpec] = {}
    for i, c in enumerate(catalogue.categories if catalogue else []):
        if c.code in categories:
            raise c_src.error(("categories", i, "code"), f"category {c.code!r} defined twice")
        if c.queue and c.queue not in queues:
            raise c_src.error(
                ("categories", i, "queue"), f"category {c.code}: unknown queue {c.queue!r}"
            )
        if c.department and c.department not in department_ids:
            raise c_src.error(
                ("categories", i, "department"),
                f"category {c.code}: unknown department {c.department!r}",
            )
        categories[c.code] = c
    return Settings(
        channels=queues_file.channels,
        capacity_rules=queues_file.capacity_rules,
        on_missed_offer=queues_file.on_missed_offer,
        hours=hours,
        queues=queues,
        workflow=workflow,
        categories=categories,
        departments=department_ids,
    )


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_file(path: Path, model: type[M]) -> M:
    """Read one YAML file and validate it against `model`, with line numbers in errors."""
    data, lines = read_yaml(path)
    return _validate(path, data, lines, model)


def _validate(
    path: Path, data: Any, lines: Mapping[tuple[Any, ...], int], model: type[M]
) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = _line_for(lines, loc)
        location = ".".join(str(p) for p in loc) or "(top level)"
        raise ConfigError(str(path), line, f"{location}: {first['msg']}") from None


def read_yaml(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML into plain data and a map from each key path to its line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(str(path), line, f"YAML syntax error: {exc.problem}") from None
    if node is None:
        raise ConfigError(str(path), 1, "file is empty")
    lines: dict[tuple[Any, ...], int] = {}
    return _to_data(node, (), lines, str(path)), lines


def _to_data(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int],
             filename: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(
                ""
            ).construct_object(key_node)
            if key in out:
                raise ConfigError(filename, key_node.start_mark.line + 1, f"duplicate key {key!r}")
            out[key] = _to_data(value_node, (*path, key), lines, filename)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(v, (*path, i), lines, filename) for i, v in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _line_for(lines: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        key = tuple(str(p) if isinstance(p, str) else p for p in loc[:end])
        if key in lines:
            return lines[key]
    return None


def _expr(src: ConfigSource, loc: tuple[Any, ...], source: str | None) -> Evaluator | None:
    return None if source is None else _required_expr(src, loc, source)


def _required_expr(src: ConfigSource, loc: tuple[Any, ...], source: str) -> Evaluator:
    try:
        return compile_expression(source)
    except ExpressionError as exc:
        raise src.error(loc, f"{_dotted(loc)}: {exc}") from None


_RANGE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")


def _parse_range(item: str) -> tuple[time, time]:
    start, end = item.split("-")
    h1, m1 = (int(x) for x in start.split(":"))
    h2, m2 = (int(x) for x in end.split(":"))
    return time(h1, m1), (time(23, 59, 59) if h2 == 24 else time(h2, m2))


def parse_range(item: str) -> tuple[time, time]:
    """Parse '08:30-16:30' into two times (24:00 means end of day)."""
    return _parse_range(item)
