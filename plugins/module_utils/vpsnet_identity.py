"""What a cloud's identity looks like: the provider names, the formats of regions, zones,
instance types and ids, and the AWS identity document read from bounded JSON.
Standard library only; imported by the metadata client, the cloud checks and the module."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import show

AWS = "aws"
GCP = "gcp"
UNKNOWN = "unknown"

# Every pattern is used with re.fullmatch: "$" would let a trailing newline through.
AWS_REGION_RE = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}")
AWS_ZONE_SUFFIX_RE = re.compile(r"[a-z]|-[a-z]{3}-[0-9][a-z]")  # us-east-1a, us-west-2-lax-1a
# family (m5, m7i-flex, u-6tb1, mac2-m2pro) "." size (large, 24xlarge, metal, metal-24xl)
AWS_TYPE_RE = re.compile(
    r"[a-z][a-z0-9]{0,15}(?:-[a-z0-9]{1,15}){0,2}"
    r"\.(?:nano|micro|small|medium|large|xlarge|[0-9]{1,3}xlarge|metal(?:-[0-9]{1,3}xl)?)"
)
AWS_INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{1,17}")
GCP_ZONE_RE = re.compile(r"([a-z]+-[a-z]+[0-9]{1,2})-[a-z]")
GCP_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
GCP_ID_RE = re.compile(r"[0-9]{1,20}")

MAX_JSON_DEPTH = 16  # the identity document is 2 levels deep
_JSON_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


@dataclass
class MetadataResult:
    """A cloud's placement of this host, as its metadata service said it."""

    provider: str
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    instance_id: str | None = None


def load_json_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> tuple[Any, str | None]:
    """(value, None), or (None, why) for text that is not JSON or is nested deeper than
    max_depth (the C scanner recurses: deep nesting would raise RecursionError).
    Bodies are already capped by the metadata client; integers over 40 digits are refused."""
    depth = 0
    for token in _JSON_TOKEN_RE.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return None, f"JSON nested deeper than {max_depth} levels"
        elif char in "]}":
            depth -= 1

    def bounded_int(digits: str) -> int:
        if len(digits) > 40:
            raise ValueError("integer too long")
        return int(digits)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, parse_int=bounded_int, parse_constant=no_constant), None
    except RecursionError:  # belt and braces: the depth scan should have refused it
        return None, "JSON too deeply nested"
    except ValueError as exc:
        return None, f"not JSON ({show(str(exc), 60)})"


def aws_identity(doc: Any) -> tuple[MetadataResult | None, list[str]]:
    """The AWS identity document's placement: (result or None, what was wrong).

    region and zone must have AWS's format or the document is refused; a bad
    instance type or id is dropped (null) and reported."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return None, [f"identity document is a {type(doc).__name__}, not an object"]
    region = doc.get("region")
    zone = doc.get("availabilityZone")
    itype = doc.get("instanceType")
    iid = doc.get("instanceId")
    if not (isinstance(region, str) and AWS_REGION_RE.fullmatch(region)):
        return None, [f"region {show(region)}"]
    if not (isinstance(zone, str) and zone.startswith(region)
            and AWS_ZONE_SUFFIX_RE.fullmatch(zone[len(region):])):
        return None, [f"zone {show(zone)} for region {region}"]
    if not (isinstance(itype, str) and AWS_TYPE_RE.fullmatch(itype)):
        problems.append(f"instance type {show(itype)}")
        itype = None
    if not (isinstance(iid, str) and AWS_INSTANCE_ID_RE.fullmatch(iid)):
        iid = None
    return MetadataResult(AWS, region, zone, itype, iid), problems
