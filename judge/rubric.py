"""Rubrics: versioned YAML files that say what to detect, how to ask a judge, and when to flag.

A rubric has one or more criteria. A *label* criterion picks one of a fixed label set, each label
marked ``flagged`` or not; a *scale* criterion gives an integer on a range, scored either from the
judge's structured JSON reply or as a logprob-weighted expectation over the first token. The
decision rule for ``flagged`` is declarative (``all``/``any`` of conditions), never code. Every
semantic edit changes the content hash, and with it every cache key that depends on the rubric.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from string import Template
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from judge.errors import RubricError
from judge.formula import Formula
from judge.plain_errors import describe_error

PLACEHOLDERS = frozenset(
    {
        "transcript",
        "question",
        "answer",
        "system_prompt",
        "reference",
        "criteria",
        "output_format",
        "examples",
    }
)
"""Names a prompt template may use as ``$name``; anything else fails validation."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirement(StrEnum):
    """Transcript shapes a rubric can require; a transcript without one is ``not_applicable``."""

    USER_TURN = "user_turn"
    ASSISTANT_TURN = "assistant_turn"
    SYSTEM_PROMPT = "system_prompt"
    MULTI_TURN = "multi_turn"
    PAIRED = "paired"
    GROUP = "group"


GROUP_REQUIREMENTS = frozenset({Requirement.PAIRED, Requirement.GROUP})
"""Requirements that make a rubric grade several transcripts sharing ``metadata.group`` at once."""


class Label(_Strict):
    """One answer a label criterion may take."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    flagged: bool


class Scale(_Strict):
    """An inclusive integer range."""

    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.min >= self.max:
            raise ValueError(f"scale min ({self.min}) must be below max ({self.max})")
        return self


class Criterion(_Strict):
    """One thing the judge decides: a label from a set, or a number on a scale."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    labels: tuple[Label, ...] | None = None
    scale: Scale | None = None
    scoring: Literal["structured", "logprob"] = "structured"
    prompt: str | None = None
    escapes: tuple[str, ...] = ()
    min_numeric_mass: float = Field(default=0.25, gt=0, le=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        problems = []
        if (self.labels is None) == (self.scale is None):
            problems.append(f"criterion '{self.name}' needs exactly one of 'labels' or 'scale'")
        if self.labels is not None:
            names = [label.name for label in self.labels]
            if len(names) < 2 or len(set(names)) != len(names):
                problems.append(f"criterion '{self.name}' needs at least two distinct labels")
            if self.scoring == "logprob":
                problems.append(f"criterion '{self.name}': logprob scoring needs a scale")
        if self.scoring == "logprob" and not self.prompt:
            problems.append(f"criterion '{self.name}': logprob scoring needs its own 'prompt'")
        if self.scoring == "structured" and (self.prompt or self.escapes):
            problems.append(
                f"criterion '{self.name}': 'prompt' and 'escapes' belong to logprob criteria; "
                "structured criteria share the rubric's prompt"
            )
        _raise_all(problems)
        return self

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels or ())

    def is_flagged_label(self, label: str) -> bool:
        return any(item.name == label and item.flagged for item in self.labels or ())


class Condition(_Strict):
    """A test on one criterion: a comparison for a scale, "its label is flagged" for labels."""

    criterion: str
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None

    @property
    def comparisons(self) -> dict[str, float]:
        ops = {"lt": self.lt, "le": self.le, "gt": self.gt, "ge": self.ge}
        return {op: value for op, value in ops.items() if value is not None}

    def holds(self, criterion: Criterion | None, value: str | float) -> bool:
        """For a label criterion: its label is flagged; else (scales, derived scores): the
        comparisons hold."""
        if criterion is not None and criterion.labels is not None:
            return criterion.is_flagged_label(str(value))
        number = float(value)
        checks = {
            "lt": number.__lt__,
            "le": number.__le__,
            "gt": number.__gt__,
            "ge": number.__ge__,
        }
        return all(checks[op](bound) for op, bound in self.comparisons.items())


class TextField(_Strict):
    """A free-text field the judge returns besides its decision (a claimed identity, the
    constraints it found, contradicting quotes); it lands in the verdict's ``details``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str


class Derived(_Strict):
    """A score computed from scale criteria by an arithmetic formula (see ``judge.formula``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    formula: str

    @cached_property
    def compiled(self) -> Formula:
        return Formula(self.formula)


class FlagRule(_Strict):
    """``flagged`` is true when all (or any) of the conditions hold."""

    all: tuple[Condition, ...] | None = None
    any: tuple[Condition, ...] | None = None

    @model_validator(mode="after")
    def _one_combinator(self) -> FlagRule:
        if (self.all is None) == (self.any is None):
            raise ValueError("a flag rule needs exactly one of 'all' or 'any'")
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.all if self.all is not None else self.any or ()


class PromptTemplate(_Strict):
    """The judge prompt for the structured criteria, as ``string.Template`` text."""

    system: str
    user: str


class Example(_Strict):
    """A few-shot example: a transcript record (a list of them for group rubrics) and the judge
    output it should get."""

    transcript: dict[str, Any] | list[dict[str, Any]]
    output: dict[str, Any]


class JudgeDefaults(_Strict):
    """Decoding settings the rubric's authors validated; a judge spec may override them."""

    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=1)


class Rubric(_Strict):
    """A validated rubric file."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: Annotated[str, Field(pattern=r"^\d+(\.\d+)*$")]
    category: str
    description: str
    source: str | None = None
    requires: tuple[Requirement, ...] = (Requirement.ASSISTANT_TURN,)
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    fields: tuple[TextField, ...] = ()
    derived: tuple[Derived, ...] = ()
    evidence: bool = True
    flag: FlagRule | None = None
    prompt: PromptTemplate | None = None
    examples: tuple[Example, ...] = ()
    judge: JudgeDefaults = JudgeDefaults()
    cascade: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(
        default={},
        description="For a cascade of judges: by judge (its model string, or 'offline'), the "
        "confidence at which its verdict stands without asking the next judge. A judge not "
        "named here always escalates.",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _consistent(self) -> Rubric:
        """Every cross-field problem at once (one per line), so an author fixes them in one go."""
        _raise_all(list(self._problems()))
        return self

    def _problems(self) -> Iterator[str]:
        names = [c.name for c in self.criteria]
        if len(set(names)) != len(names):
            yield "criterion names must be unique"
        if self.structured_criteria and self.prompt is None:
            yield "structured criteria need the rubric's 'prompt' (system and user)"
        if set(self.requires) >= GROUP_REQUIREMENTS:
            yield "a rubric requires 'paired' or 'group', not both"
        scales = {c.name for c in self.criteria if c.scale is not None}
        taken = set(names)
        for name in [f.name for f in self.fields] + [d.name for d in self.derived]:
            if name in taken or name in ("reasoning", "evidence"):
                yield f"name '{name}' is used twice"
            taken.add(name)
        for derived in self.derived:
            unknown = derived.compiled.names - scales
            if unknown:
                yield f"derived '{derived.name}' uses {sorted(unknown)}: not scale criteria"
        yield from self._flag_problems()
        for template in self._templates():
            try:
                _check_template(template)
            except ValueError as exc:
                yield str(exc)
        yield from self._example_problems()

    def _flag_problems(self) -> Iterator[str]:
        derived = {d.name for d in self.derived}
        for condition in self.flag_rule.conditions:
            if condition.criterion in derived:
                if not condition.comparisons:
                    yield f"flag condition on '{condition.criterion}' needs lt/le/gt/ge"
                continue
            try:
                criterion = self.criterion(condition.criterion)
            except ValueError as exc:
                yield f"flag condition: {exc}"
                continue
            if criterion.scale is not None and not condition.comparisons:
                yield f"flag condition on scale criterion '{criterion.name}' needs lt, le, gt or ge"
            if criterion.labels is not None and condition.comparisons:
                yield (
                    f"flag condition on label criterion '{criterion.name}' takes no comparison; "
                    "it holds when the label is marked flagged"
                )

    def _example_problems(self) -> Iterator[str]:
        if not self.structured_criteria or self.prompt is None:
            return
        for number, example in enumerate(self.examples, start=1):
            try:
                self.output_model.model_validate(example.output)
            except ValidationError as exc:
                for line in describe_error(exc):
                    yield f"example {number}: {line}"

    def _templates(self) -> list[str]:
        texts = [self.prompt.system, self.prompt.user] if self.prompt else []
        return texts + [c.prompt for c in self.criteria if c.prompt]

    def criterion(self, name: str) -> Criterion:
        """The criterion with this name; a ``ValueError`` names the ones that exist."""
        for criterion in self.criteria:
            if criterion.name == name:
                return criterion
        known = ", ".join(c.name for c in self.criteria)
        raise ValueError(f"no criterion '{name}' (criteria: {known})")

    @cached_property
    def structured_criteria(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if c.scoring == "structured")

    @cached_property
    def logprob_criteria(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if c.scoring == "logprob")

    @property
    def flag_rule(self) -> FlagRule:
        """The declared rule, or by default: any label criterion gave a flagged label."""
        if self.flag is not None:
            return self.flag
        labelled = [Condition(criterion=c.name) for c in self.criteria if c.labels is not None]
        return FlagRule(any=tuple(labelled))

    @property
    def is_group(self) -> bool:
        """Grades several transcripts that share ``metadata.group`` at once."""
        return bool(GROUP_REQUIREMENTS & set(self.requires))

    def derive(self, values: dict[str, str | float]) -> dict[str, float]:
        """The derived scores for one complete set of criterion values."""
        numbers = {k: float(v) for k, v in values.items() if self.criterion(k).scale is not None}
        return {d.name: d.compiled(numbers) for d in self.derived}

    def is_flagged(self, values: dict[str, str | float]) -> bool:
        """Apply the decision rule to one value per criterion (all must be present)."""
        rule = self.flag_rule
        values = {**values, **self.derive(values)}
        derived = {d.name for d in self.derived}
        results = (
            condition.holds(
                None if condition.criterion in derived else self.criterion(condition.criterion),
                values[condition.criterion],
            )
            for condition in rule.conditions
        )
        return all(results) if rule.all is not None else any(results)

    @cached_property
    def output_model(self) -> type[BaseModel]:
        """The pydantic model of a structured reply: ``reasoning`` first, then each criterion."""
        return _output_model(self)

    @cached_property
    def response_schema(self) -> dict[str, Any]:
        """The output JSON schema in the form strict structured-output modes accept: every
        property required (``evidence`` may be an empty list), no additional properties."""
        schema = self.output_model.model_json_schema()
        for node in [schema, *schema.get("$defs", {}).values()]:
            if node.get("type") == "object":
                node["required"] = list(node.get("properties", {}))
                node["additionalProperties"] = False
        return schema

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical validated content: formatting and comments do not count."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class EvidenceItem(BaseModel):
    """A quote from the transcript that supports the decision."""

    model_config = ConfigDict(extra="forbid")

    message: int = Field(ge=0, description="Index of the message the quote is from.")
    quote: str = Field(description="Exact words copied from that message.")


class GroupEvidenceItem(EvidenceItem):
    """A quote from one transcript of a group."""

    transcript: int = Field(ge=0, description="Index of the transcript the quote is from.")


def _output_model(rubric: Rubric) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "reasoning": (str, Field(description="Your reasoning, written before any decision.")),
    }
    for text_field in rubric.fields:
        fields[text_field.name] = (str, Field(description=text_field.description))
    if rubric.evidence:
        item = GroupEvidenceItem if rubric.is_group else EvidenceItem
        fields["evidence"] = (
            list[item],  # type: ignore[valid-type]
            Field(default_factory=list, description="Quotes supporting the decision."),
        )
    for criterion in rubric.structured_criteria:
        if criterion.labels is not None:
            annotation: Any = Literal[criterion.label_names]
        else:
            assert criterion.scale is not None
            annotation = Annotated[int, Field(ge=criterion.scale.min, le=criterion.scale.max)]
        fields[criterion.name] = (annotation, Field(description=criterion.description))
    return create_model(
        f"{rubric.id.title().replace('_', '')}Output",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def _raise_all(problems: list[str]) -> None:
    """Raise the problems together, a line each (``judge.plain_errors`` splits them again)."""
    if problems:
        raise ValueError("\n".join(problems))


def _check_template(text: str) -> None:
    template = Template(text)
    if not template.is_valid():
        raise ValueError("a prompt has a stray '$' (write '$$' for a literal dollar sign)")
    unknown = set(template.get_identifiers()) - PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"unknown prompt placeholder(s) {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}"
        )


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line, with where it is (PyYAML spreads it over several)."""
    mark = getattr(exc, "problem_mark", None)
    place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{place}not valid YAML ({problem})"


def load_rubric(path: Path) -> Rubric:
    """Read and validate one rubric file; a ``RubricError`` says what is wrong and where."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RubricError(f"{path}: cannot read the file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RubricError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(document, dict):
        raise RubricError(f"{path}: a rubric file must hold a mapping")
    problems = []
    if document.get("id") != path.stem:
        problems.append(f"id: '{document.get('id')}' must match the file name ('{path.stem}')")
    try:
        rubric = Rubric.model_validate(document)
    except ValidationError as exc:
        problems += describe_error(exc)
    if problems:
        raise RubricError("\n".join(f"{path}: {line}" for line in problems))
    return rubric


class RubricLibrary:
    """Rubrics loaded from one or more directories, by id; later directories override earlier."""

    def __init__(self, rubrics: dict[str, Rubric]):
        self._rubrics = dict(sorted(rubrics.items()))

    @classmethod
    def from_dirs(cls, *directories: Path) -> RubricLibrary:
        rubrics: dict[str, Rubric] = {}
        for directory in directories:
            if not directory.is_dir():
                raise RubricError(f"rubric directory {directory} does not exist")
            for path in sorted(directory.glob("*.yaml")):
                rubric = load_rubric(path)
                rubrics[rubric.id] = rubric
        return cls(rubrics)

    def __iter__(self) -> Any:
        return iter(self._rubrics.values())

    def __len__(self) -> int:
        return len(self._rubrics)

    def get(self, rubric_id: str) -> Rubric:
        try:
            return self._rubrics[rubric_id]
        except KeyError:
            known = ", ".join(self._rubrics) or "none"
            raise RubricError(f"no rubric '{rubric_id}' (available: {known})") from None


def default_rubric_dir() -> Path:
    """The shipped rubrics: ``rubrics/`` of a checkout, else the copy an install puts in
    ``<prefix>/share/judge/rubrics``."""
    checkout = Path(__file__).resolve().parent.parent / "rubrics"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "judge" / "rubrics"
