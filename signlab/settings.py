"""What is generated from the training settings declared on :class:`~signlab.config.TrainConfig`.

* the command line's options (:func:`add_options`, :func:`option_values`), for ``train`` and ``sweep``;
* the Train page's settings and its link (URL query) parsing (:data:`PAGE_SETTINGS`,
  :func:`page_values`, :func:`page_config`, :func:`link_values`, :func:`link_query`), plain Python
  so tests reach them without Streamlit; ``signlab.ui.setting_inputs`` draws the widgets;
* the sweep's search space (:data:`SEARCHED`).

Nothing here names a particular setting: a new field declared in ``config.py`` appears everywhere.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from .config import (DEFAULT_PRESET, EMPTY, LECTURE_MODEL_EPOCHS, PRESETS, SETTING, SETTINGS, Setting, TrainConfig,
                     preset)
from .errors import ConfigError

PAGE_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.label is not None)  # in the page's order
SEARCHED: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.search is not None)  # the sweep's, in table order

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")  # how a link may write a toggle


# --------------------------------------------------------------------------- the command line
def option_help(s: Setting) -> str:
    """The help of ``s``'s option: its help text, what is allowed and what each preset sets."""
    bits = [s.allowed_text()] if s.range is not None else []
    sets = [f"{name} preset {value}" for name, value in s.presets.items() if value != s.default]
    bits.append(", ".join([f"default {'none' if s.default is None else s.default}", *sets]))
    return f"{s.help.rstrip('.')} ({'; '.join(bits)})".replace("%", "%%")  # argparse formats help with %


def add_options(parser: argparse.ArgumentParser, names: Iterable[str] | None = None,
                defaults: Mapping[str, Any] | None = None, helps: Mapping[str, str] | None = None) -> None:
    """Add an option per setting (all of them, or ``names``), default None so a preset's value stands.

    ``defaults`` and ``helps`` replace a setting's default and help where a command means something else
    by it (the sweep's epochs are per trial). A fixed list of choices is checked by argparse.
    """
    defaults, helps = defaults or {}, helps or {}
    for s in SETTINGS if names is None else [SETTING[n] for n in names]:
        kwargs: dict[str, Any] = {"default": defaults.get(s.name), "help": helps.get(s.name) or option_help(s)}
        if s.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = s.type
            if isinstance(s.choices, tuple):
                kwargs["choices"] = s.choices
        parser.add_argument(s.flag, **kwargs)


def given(text: str) -> str:
    """An argparse type for a run, a path, a name or a URL: an empty one is refused. ``train --resume ""``
    trained a new run, ``predict RUN ""`` read the current folder and ``--runs-dir ""`` meant the
    project's own runs/, each as if the argument had been left out."""
    if not text.strip():
        raise argparse.ArgumentTypeError(EMPTY)
    return text


def option_values(args: argparse.Namespace, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The settings given on the command line (None where an option was left out).

    Raises ConfigError naming the option (``--epochs: 300 is out of range; allowed 1 to 200``), the
    name the user typed, for the first given value that cannot be used."""
    values = {s.name: getattr(args, s.name) for s in (SETTINGS if names is None else [SETTING[n] for n in names])}
    for name, value in values.items():
        problem = None if value is None else SETTING[name].problem(value)
        if problem:
            raise ConfigError(f"{SETTING[name].flag}: {problem}")
    return values


# --------------------------------------------------------------------------- the Train page and its links
def page_values(preset_name: str) -> dict[str, Any]:
    """The Train page's settings for a preset: each page setting's value, and ``preset``."""
    cfg = preset(preset_name)
    return {**{s.name: getattr(cfg, s.name) for s in PAGE_SETTINGS}, "preset": preset_name}


def page_config(values: Mapping[str, Any]) -> TrainConfig:
    """The config of the page's values (as :func:`page_values` gives them): the preset, each setting over it.

    Raises ConfigError naming every setting that cannot be used by its label on the page
    ("Epochs: 300 is out of range; allowed 1 to 200; Seed: -1 is out of range; ..."), as the
    student reads it there."""
    problems = [f"{s.label}: {p}" for s in PAGE_SETTINGS if s.name in values and (p := s.problem(values[s.name]))]
    if problems:  # all of them at once: fixing one only to be told of the next is a slow way to learn
        raise ConfigError("; ".join(problems))
    return preset(values["preset"], **{k: v for k, v in values.items() if k != "preset"})


def changed_from_preset(values: Mapping[str, Any]) -> list[Setting]:
    """The page settings whose value differs from the chosen preset's, in the page's order: what
    a student changed after picking it (the link still reproduces them, the preset plus each)."""
    base = page_values(values["preset"]) if values.get("preset") in PRESETS else {}
    if values.get("preset") == "lecture" and values.get("model") in LECTURE_MODEL_EPOCHS:
        # the lecture trained logistic regression too, for its own epochs: "Custom: Architecture and Epochs
        # changed" read beside the very setup the lecture used, which Runs calls "lecture"
        base = {**base, "model": values["model"], "epochs": LECTURE_MODEL_EPOCHS[values["model"]]}
    return [s for s in PAGE_SETTINGS if s.name in values and s.name in base and values[s.name] != base[s.name]]


def parse_value(s: Setting, raw: str) -> Any:
    """``raw`` from a link as the value of ``s``; ValueError says why not, naming what is allowed.

    Checked here, not by the widget: a widget would silently clamp or replace a value it cannot show.
    Spaces around the value are dropped (for every kind of setting alike: " 5 " was a number and
    " adam" no optimizer); a number is written in ASCII digits without "_" (Python's int() read
    "٣" as 3 and "1_0" as 10, where the page's other links refuse them).
    """
    raw = raw.strip()
    if s.type is bool:
        if raw.lower() in TRUE + FALSE:
            return raw.lower() in TRUE
        raise ValueError("is not true or false")
    allowed = s.allowed()
    if allowed is not None:
        if raw in allowed:
            return raw
        raise ValueError(f"is not one of {', '.join(allowed)}")
    if s.type is str:
        return raw
    try:
        if not raw.isascii() or "_" in raw:
            raise ValueError(raw)
        value = s.type(raw)
    except ValueError:  # also a number over Python's 4300-digit limit
        raise ValueError(f"is not {'a whole number' if s.type is int else 'a number'} "
                         f"(allowed {s.allowed_text()})") from None
    if s.problem(value) is not None:  # compared exactly: a 400-digit number never overflows
        raise ValueError(f"is out of range (allowed {s.allowed_text()})")
    return value


@dataclass(frozen=True)
class LinkProblem:
    """A link's value that cannot be used: which setting, what the link said, why, and what is used
    instead (``ignored``: a key that is no setting of the page, left out)."""

    name: str
    raw: str
    reason: str
    default: Any
    ignored: bool = False

    def message(self, escape: Callable[[str], str] = str) -> str:
        """One line for the page; ``escape`` makes the link's text safe for markdown (``ui.md``)."""
        name = escape(self.name[:40]) if self.ignored else self.name  # a key no setting has is the link's text
        said = f"The link's {name}={escape(repr(self.raw[:40]))} {self.reason}; "
        return said + ("it is left out." if self.ignored else f"the default {escape(repr(self.default))} is used.")


LINK_KEYS = ("preset", "run")  # what the Train page's link holds besides its settings (run: the run it follows)


def link_values(query: Mapping[str, str | Sequence[str]]) -> tuple[dict[str, Any], list[LinkProblem]]:
    """The Train page's settings from a link: its preset (else fast), then each setting the link gives.

    Returns the values (as :func:`page_values`) and a problem for each value that cannot be used; that
    setting keeps the preset's value. A key given more than once with different values is such a
    problem (only the last counted, unsaid); a key that is no page setting is named and left out
    (``epoch=5`` for ``epochs`` kept the preset's 2 without a word), except ``run``. ``query``: each
    key's value, or all its values (``st.query_params.get_all``).
    """
    given: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for key, raw in query.items():
        many = [raw] if isinstance(raw, str) else list(raw)
        if len(set(many)) > 1:
            repeated[key] = many
        elif many:
            given[key] = many[0]
    raw_preset = given.get("preset")
    values = page_values(raw_preset if raw_preset in PRESETS else DEFAULT_PRESET)
    # each setting given twice keeps the preset's value
    problems = [LinkProblem(key, ", ".join(many), "gives more than one value", values.get(key),
                            ignored=key not in values) for key, many in repeated.items()]
    for s in PAGE_SETTINGS:
        if s.name in given:
            try:
                values[s.name] = parse_value(s, given[s.name])
            except ValueError as err:
                problems.append(LinkProblem(s.name, given[s.name], str(err), values[s.name]))
    for key in given:
        if key in values or key in LINK_KEYS:
            continue
        where = (f"is set on the command line only ({SETTING[key].flag})" if key in SETTING
                 else "is not a setting of the Train page")
        problems.append(LinkProblem(key, given[key], where, None, ignored=True))
    if raw_preset is not None and raw_preset not in PRESETS:
        problems.append(LinkProblem("preset", raw_preset, f"is not one of {', '.join(PRESETS)}", values["preset"]))
    return values, problems


def link_query(values: Mapping[str, Any]) -> dict[str, str]:
    """The page's settings as a link's query, read back by :func:`link_values`."""
    return {k: str(v) for k, v in values.items()}
