"""Schemathesis hooks of the API's contract test (scripts/test.d/api-contract.sh).

The OpenAPI document states every rule of the API that JSON Schema can state (the script's plain
run, without this module or the settings file, holds the server to the document alone). The
rules below relate one part of a request to another, or to what is stored, and no schema can
state them:

- a replace names the resource of its path: a `PUT /api/intersections/{id}` body's `id`, and a
  `PUT .../lights/{light}` body's `light`, must equal the path's when given (a replace never
  renames);
- an intersection's lights have distinct indexes, and its phases name only those lights, each
  in one phase (`Intersection::validate`);
- `PUT .../phases` must name the lights the stored intersection has;
- `limits.min_green_s` has at most one entry per phase: of the body's phases in a create or
  replace, of the stored intersection in `PUT .../control` (and `PUT .../phases` that would
  leave stored limits with more entries than phases is a 409);
- an intersection's `proposal` is Webster's, written by the merge: its `from` names a window
  (`15m@2026-01-05T08:15:00Z`, the start a multiple of the length), which a pattern cannot
  state, so a valid case leaves the proposal out;
- a paged list's `cursor` is one the list gave (the `next` of a page of the same list; a
  cursor is opaque, so its pattern admits strings no list gave): a valid case's cursor is
  replaced by the `next` of the list's first page, or left out when that page is the last.

For requests Schemathesis generates as valid (positive cases) this module makes those rules
hold, so that "a valid request is accepted" is checked on every operation; invalid (negative)
cases are left as generated. The `validate` checks of the router tests cover the rules
themselves.

A case's mode is read as Schemathesis will judge it, not as it was generated: in the stateful
phase a case drawn as negative can have its invalid part replaced by a link (the `id` the
previous response gave), and Schemathesis then revalidates it, after this hook, as positive.
Such a case is made consistent too when its body is valid (`_valid_after_links`); a fresh-clone run's stateful phase
once sent one unchanged (`PUT .../phases` naming a light the stored intersection lacks) and
reported a schema-valid request refused.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import schemathesis
from schemathesis.core.parameters import ParameterLocation


#: The operation that sets an intersection's control mode and limits.
CONTROL_OP = "setControl"


def _is_positive(case):
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode.is_positive


def _valid_after_links(case):
    """Whether the case's body is to be made consistent: the case is positive, or its body is
    valid by the document as it stands (the case may be negative only in what a link has since
    replaced, and Schemathesis, revalidating it, then judges it positive). A body the document
    refuses is left as generated."""
    if _is_positive(case):
        return True
    # The validator Schemathesis revalidates with: private, so it is read from the pinned
    # version (scripts/requirements-test.txt); should a later one lack it, this falls back to
    # the generation mode alone, as before.
    try:
        validator = case.operation.schema.adapter.jsonschema_validator_cls
        return bool(case._validate_component(ParameterLocation.BODY, case.body, validator))
    except Exception:  # no body schema, or one its draft cannot judge: left as generated
        return False


def _consistent_phases(phases, indexes):
    """The phases with only lights in `indexes`, each light once; a phase left empty goes.
    Returns None when no phase is left."""
    used = set()
    out = []
    for phase in phases:
        if not isinstance(phase, dict) or not isinstance(phase.get("lights"), list):
            return phases
        kept = []
        for light in phase["lights"]:
            if light in indexes and light not in used:
                used.add(light)
                kept.append(light)
        if kept:
            out.append({**phase, "lights": kept})
    return out or None


def _consistent_intersection(body):
    """An intersection body whose lights have distinct indexes and whose phases name them."""
    lights = body.get("lights")
    phases = body.get("phases")
    if not isinstance(lights, list) or not isinstance(phases, list):
        return body
    seen = set()
    distinct = []
    for light in lights:
        if not isinstance(light, dict):
            return body
        if light.get("light") not in seen:
            seen.add(light.get("light"))
            distinct.append(light)
    fixed = _consistent_phases(phases, seen)
    if fixed is None:
        template = phases[0] if phases and isinstance(phases[0], dict) else {}
        fixed = [{**template, "lights": sorted(seen)}]
    return {**body, "lights": distinct, "phases": fixed}


def _limits_within_phases(body):
    """An intersection body whose control names at most one minimum green per phase."""
    control, phases = body.get("control"), body.get("phases")
    if not isinstance(control, dict) or not isinstance(phases, list):
        return body
    limits = control.get("limits")
    if not isinstance(limits, dict) or not isinstance(limits.get("min_green_s"), list):
        return body
    limits = {**limits, "min_green_s": limits["min_green_s"][: len(phases)]}
    return {**body, "control": {**control, "limits": limits}}


def _stored_light_indexes(case, intersection_id):
    """The light indexes the server holds for an intersection, or None (no such intersection)."""
    base = (os.environ.get("TRAFFIC_CONTRACT_BASE_URL") or case.operation.base_url or "").rstrip("/")
    url = f"{base}/api/intersections/{urllib.parse.quote(str(intersection_id), safe='')}/lights"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return {light["light"] for light in json.load(resp)}
    except (urllib.error.URLError, ValueError, KeyError, TypeError):
        return None


def _stored_phase_count(case, intersection_id):
    """How many phases the server holds for an intersection, or None."""
    base = (os.environ.get("TRAFFIC_CONTRACT_BASE_URL") or case.operation.base_url or "").rstrip("/")
    url = f"{base}/api/intersections/{urllib.parse.quote(str(intersection_id), safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return len(json.load(resp)["phases"])
    except (urllib.error.URLError, ValueError, KeyError, TypeError):
        return None


def _consistent_case(case):
    """The body of a valid case, made to satisfy the rules above; None to leave it."""
    op = case.operation.definition.raw.get("operationId")
    path = case.path_parameters or {}
    body = case.body
    if op == "replaceIntersection" and "id" in body and "id" in path:
        body = {**body, "id": path["id"]}
    if op == "replaceLight" and "light" in body and "light" in path:
        body = {**body, "light": path["light"]}
    if op in ("createIntersection", "replaceIntersection", "patchIntersection"):
        body = {k: v for k, v in body.items() if k != "proposal"}
    if op in ("createIntersection", "replaceIntersection"):
        body = _consistent_intersection(body)
        body = _limits_within_phases(body)
    limits = body.get("limits")
    if op == CONTROL_OP and isinstance(limits, dict) and isinstance(limits.get("min_green_s"), list):
        phases = _stored_phase_count(case, path.get("id"))
        if phases is not None:
            body = {**body, "limits": {**limits, "min_green_s": limits["min_green_s"][:phases]}}
    if op == "replacePhases" and isinstance(body.get("phases"), list) and "id" in path:
        indexes = _stored_light_indexes(case, path["id"])
        if indexes:
            fixed = _consistent_phases(body["phases"], indexes)
            if fixed is None:
                template = body["phases"][0] if body["phases"] else {}
                template = template if isinstance(template, dict) else {}
                fixed = [{**template, "lights": sorted(indexes)}]
            body = {**body, "phases": fixed}
    return body if body != case.body else None


#: The paged lists whose `cursor` only the list itself can give.
CURSOR_OPS = ("listIntersections", "listTimings", "recentResults")


def _real_cursor(case):
    """The `next` of the first page of the case's list (its path and `limit`), or None."""
    base = (os.environ.get("TRAFFIC_CONTRACT_BASE_URL") or case.operation.base_url or "").rstrip("/")
    path = case.path
    for name, value in (case.path_parameters or {}).items():
        path = path.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
    query = {"limit": case.query["limit"]} if "limit" in (case.query or {}) else {}
    url = f"{base}{path}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.load(resp).get("next")
    except (urllib.error.URLError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _consistent_cursor(case):
    """A valid list case's `cursor`, made one the list gave (or left out)."""
    op = case.operation.definition.raw.get("operationId")
    if op not in CURSOR_OPS or "cursor" not in (case.query or {}):
        return
    cursor = _real_cursor(case)
    query = {k: v for k, v in case.query.items() if k != "cursor"}
    if cursor is not None:
        query["cursor"] = cursor
    case.query = query


# Just before each request, in every phase (examples, coverage, fuzzing and the stateful
# sequences, whose cases come from links rather than from the generators).
@schemathesis.hook
def before_call(context, case, kwargs):
    if _is_positive(case):
        _consistent_cursor(case)
    if not isinstance(case.body, dict) or not _valid_after_links(case):
        return
    body = _consistent_case(case)
    if body is not None:
        case.body = body
