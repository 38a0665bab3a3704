"""The Localfeed contract: the activity and feed-page schemas, vocabularies and their Python API.

Third parties can use the JSON files under this package directly; Python code imports
from here::

    from schema import validate_activity, next_occurrences

This package imports nothing else of Localfeed's, and no web, database or network library
(``tests/schema/test_imports.py`` holds it to that): the protocol code both apps share is in
``federation``.
"""

from schema.limits import MAX_ACTIVITY_BYTES, MAX_ACTIVITY_DEPTH
from schema.postcode import normalise_activity_postcode, normalise_postcode
from schema.schedule import Occurrence, next_occurrences
from schema.validation import Problem, is_valid_activity, outsized, validate_activity, validate_page

__all__ = [
    "MAX_ACTIVITY_BYTES",
    "MAX_ACTIVITY_DEPTH",
    "Occurrence",
    "Problem",
    "is_valid_activity",
    "next_occurrences",
    "normalise_activity_postcode",
    "normalise_postcode",
    "outsized",
    "validate_activity",
    "validate_page",
]
