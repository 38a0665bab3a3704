"""Our compiled schema check against fastjsonschema, on the same activities, in one run.

Issue 21 asks whether ``schema.compiled`` (our own compiler of the activity schema into one
Python predicate) should give way to fastjsonschema, the well-kept library for exactly
this, if that is at least as fast on our schema. Both are timed on the same synthetic
activities (``bench/network.py``), in alternating rounds (the best round of each counts:
other work on a shared machine only ever slows a round down), with jsonschema, the
explaining validator, for scale. Before timing, all three must agree on every activity and
on each activity's fields made wrong one at a time.

fastjsonschema implements drafts 4, 6 and 7, where a ``$ref`` overrides its sibling keywords;
in 2020-12 (our schema's draft) they apply too. Ten places in our schema put a ``maxLength``
or ``minLength`` beside a ``$ref``, so the schema is given to fastjsonschema with each such
``$ref`` moved into an ``allOf``, which means the same in every draft.

Run: .venv/bin/python bench/validators.py [--publishers 6 --activities 1000 --rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, stopwatch, table, write_results
from bench.network import published, publisher_network
from schema.compiled import Predicate, compile_predicate
from schema.resources import shared
from schema.validation import ACTIVITY_SCHEMA, FORMATS, _format_checker

# Keywords that only describe: a $ref beside these alone needs no rewriting.
_DESCRIBING = frozenset({"$ref", "$schema", "$id", "$comment", "$defs", "title", "description", "default"})
WRONG_VALUES: list[Any] = [None, 7, "", "<i>x</i>", {}, [], True]


def refs_in_all_of(node: Any) -> Any:
    """``node`` with each ``$ref`` that has asserting siblings moved into an ``allOf`` (2020-12's meaning)."""
    if isinstance(node, list):
        return [refs_in_all_of(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: refs_in_all_of(value) for key, value in node.items()}
    if "$ref" in node and node.keys() - _DESCRIBING:
        node["allOf"] = [{"$ref": node.pop("$ref")}, *node.get("allOf", [])]
    return node


def fastjsonschema_predicate(schema: dict[str, Any]) -> Predicate:
    """fastjsonschema's compiled validator as a yes/no predicate, with our format checks."""
    validate = fastjsonschema.compile(refs_in_all_of(schema), formats=FORMATS)

    def is_valid(doc: Any) -> bool:
        try:
            validate(doc)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return is_valid


def validators() -> dict[str, Predicate]:
    schema = shared(ACTIVITY_SCHEMA)
    return {
        "schema.compiled (ours)": compile_predicate(schema, FORMATS),
        "fastjsonschema": fastjsonschema_predicate(schema),
        "jsonschema": Draft202012Validator(schema, format_checker=_format_checker()).is_valid,
    }


def made_wrong(doc: dict[str, Any], rng: random.Random) -> Iterator[dict[str, Any]]:
    """``doc`` with each of its fields, at every depth, replaced by a wrong value (one at a time)."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        children = (
            node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        )
        for key, value in children:
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))

    for path in paths(doc):
        wrong = copy.deepcopy(doc)
        target = wrong
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = rng.choice(WRONG_VALUES)
        yield wrong


def disagreements(checks: dict[str, Predicate], docs: list[Any]) -> list[tuple[Any, dict[str, bool]]]:
    """The documents on which the validators do not all give the same answer."""
    found = []
    for doc in docs:
        answers = {name: check(doc) for name, check in checks.items()}
        if len(set(answers.values())) > 1:
            found.append((doc, answers))
    return found


def timed(check: Callable[[Any], bool], docs: list[Any]) -> float:
    with stopwatch() as elapsed:
        for doc in docs:
            check(doc)
    return elapsed()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishers", type=int, default=6, help="publishers in the network (default 6)")
    parser.add_argument("--activities", type=int, default=1000, help="activities per publisher")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; the best counts")
    parser.add_argument("--wrong-from", type=int, default=20, help="activities made wrong field by field")
    parser.add_argument("--reference-items", type=int, default=500, help="activities jsonschema is timed on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="validators", help="results go to <results>/<name>.json")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON results")
    args = parser.parse_args(argv)

    network = publisher_network(args.publishers, args.activities, seed=args.seed)
    docs = [doc for p in network for doc in published(p, "https://bench.example")]
    checks = validators()
    rng = random.Random(args.seed)
    wrong = [bad for doc in docs[: args.wrong_from] for bad in made_wrong(doc, rng)]
    differ = disagreements(checks, docs + wrong)
    if differ:
        doc, answers = differ[0]
        raise RuntimeError(f"the validators disagree on {len(differ)} documents, first {answers}: {doc}")
    rejected = sum(not checks["jsonschema"](doc) for doc in wrong)
    accepted = sum(checks["jsonschema"](doc) for doc in docs)
    if accepted != len(docs):
        raise RuntimeError(f"only {accepted} of {len(docs)} synthetic activities are valid")

    # jsonschema is some fifty times slower: it is timed once, on a slice, for scale only.
    timed_docs = {name: docs for name in checks} | {"jsonschema": docs[: args.reference_items]}
    rounds: dict[str, list[float]] = {name: [] for name in checks}
    for number in range(args.rounds):
        for name, check in checks.items():
            if name != "jsonschema" or number == 0:
                rounds[name].append(timed(check, timed_docs[name]) / len(timed_docs[name]))
    ours = min(rounds["schema.compiled (ours)"])
    measured: dict[str, dict[str, Any]] = {
        name: {
            "items": len(timed_docs[name]),
            "items_per_second": 1 / min(per_item),
            "microseconds_per_item": min(per_item) * 1e6,
            "time_over_ours": min(per_item) / ours,
            "rounds_seconds_per_item": per_item,
        }
        for name, per_item in rounds.items()
    }
    print(
        table(
            f"Schema check of {len(docs):,} valid activities (best of {args.rounds} rounds; "
            f"jsonschema: {args.reference_items:,}, once); "
            f"all agree on them and on {len(wrong):,} made wrong ({rejected:,} of those invalid)",
            ["validator", "items/s", "µs/item", "time / ours"],
            [
                [name, m["items_per_second"], m["microseconds_per_item"], m["time_over_ours"]]
                for name, m in measured.items()
            ],
        )
    )
    faster = measured["fastjsonschema"]["time_over_ours"] <= 1
    print(f"fastjsonschema is {'at least as fast as' if faster else 'slower than'} ours on our schema.")
    document = {
        "activities": len(docs),
        "made_wrong": len(wrong),
        "made_wrong_invalid": rejected,
        "disagreements": 0,
        "fastjsonschema_version": fastjsonschema.VERSION,
        "validators": measured,
    }
    path = write_results(args.name, document, args.results)
    print(f"\nresults: {path}")
    return document


if __name__ == "__main__":
    main()
