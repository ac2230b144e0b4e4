"""The metadata client: IMDSv2 (token, then GETs) and GCP (Metadata-Flavor: Google)
over requests, every request inside the detection's one deadline, answers checked
before use. Imported by vpsnet_facts' detection and the module."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import (
    Deadline,
    show,
    small_int,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_identity import (
    AWS,
    GCP,
    GCP_ID_RE,
    GCP_TYPE_RE,
    GCP_ZONE_RE,
    MetadataResult,
    aws_identity,
    load_json_bounded,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_metadata_route import (
    AWS_IMDS_IPV6_URL,
    METADATA_IPV6,
    ipv6_route_to_metadata,
    metadata_family,
)

try:
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - depends on the managed host
    requests = None  # type: ignore[assignment]
    Urllib3Error = OSError  # type: ignore[assignment,misc]
    HAS_REQUESTS = False

CONNECT_TIMEOUT = 0.5
MAX_BODY = 64 * 1024
AWS_TOKEN_TTL = "60"
TOKEN_RE = re.compile(r"[A-Za-z0-9_=+/.-]{1,512}")


@dataclass
class Answer:
    """What one metadata request returned."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    text: str


@dataclass
class MetadataProbe:
    """Bounded metadata queries: every request shares the detection's one deadline
    (`within`, else a new one of `budget` seconds)."""

    base_url: str
    budget: float = 2.0
    base_url6: str = AWS_IMDS_IPV6_URL
    ip_version: str = "auto"  # auto, 4 or 6: see metadata_family
    evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reachable: bool = False  # a service answered in its cloud's protocol (token / header)
    deadline: Deadline = field(init=False)
    _down: bool = False
    _closed: bool = False  # set when the caller stopped waiting: the worker says no more
    _session: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    family: str = "4"  # the IP version chosen by select()
    fallback6: bool = False  # auto chose IPv4, and an IPv6 route to the AWS endpoint exists
    url: str = field(init=False)  # the base URL of that family
    within: InitVar[Deadline | None] = None

    def __post_init__(self, within: Deadline | None) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.base_url6 = self.base_url6.rstrip("/")
        self.url = self.base_url
        self.deadline = within if within is not None else Deadline(self.budget)

    def select(self, root: str) -> None:
        """Choose the IP version (and URL) from the host's routes, with evidence."""
        self.family, why = metadata_family(root, self.ip_version)
        self.url = self.base_url6 if self.family == "6" else self.base_url
        self.evidence.append(why)
        self.fallback6 = (self.ip_version == "auto" and self.family == "4"
                          and ipv6_route_to_metadata(root) is not None)

    def _note(self, text: str, warn: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self.evidence.append(text)
            if warn:
                self.warnings.append(f"vpsnet_facts: {text}")

    def _timeout(self) -> tuple[float, float] | None:
        remaining = self.deadline.remaining()
        if remaining <= 0.05:
            return None
        return (min(CONNECT_TIMEOUT, remaining), remaining)

    def _request(self, cloud: str, method: str, path: str,
                 headers: dict[str, str]) -> Answer | None:
        """One request within the budget, or None (evidence says why).

        Connect and read timeouts come from the time left; the body is read in
        pieces as they arrive and the deadline checked between them, so a
        server that drips bytes is cut off; bodies over MAX_BODY are refused.
        """
        if self._down:
            return None
        timeout = self._timeout()
        if timeout is None:
            self._note(f"metadata {cloud}: time budget spent before {method} {path}")
            return None
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # never a proxy for a link-local service
        # identity: a compressed body could expand past MAX_BODY after the check
        headers = {**headers, "Accept-Encoding": "identity"}
        try:
            with self._session.request(method, self.url + path, headers=headers,
                                       timeout=timeout, allow_redirects=False,
                                       stream=True) as response:
                encoding = response.headers.get("Content-Encoding", "identity").lower()
                if encoding not in ("", "identity"):
                    self._garbage(cloud, f"{path}: Content-Encoding {show(encoding)}")
                    return None
                length = small_int(response.headers.get("Content-Length"), 2**62)
                if length is not None and length > MAX_BODY:
                    self._garbage(cloud, f"{path}: body over {MAX_BODY} bytes")
                    return None
                raw = response.raw
                # read1 returns what has arrived; read(n) would wait for all n bytes
                read = getattr(raw, "read1", None) or raw.read
                body = b""
                while True:
                    chunk = read(4096)
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > MAX_BODY:
                        self._garbage(cloud, f"{path}: body over {MAX_BODY} bytes")
                        return None
                    if self.deadline.spent():
                        self._note(f"metadata {cloud}: {method} {path} failed "
                                   "(budget spent while reading)")
                        return None
                text = body.decode("utf-8", errors="replace")
                return Answer(response.status_code, response.headers, text)
        except requests.exceptions.ConnectionError as exc:
            # refused, unroutable or ConnectTimeout: nobody answers at that address
            self._down = True
            self._note(f"metadata {cloud}: {method} {path} failed ({type(exc).__name__})")
            return None
        except (requests.exceptions.RequestException, Urllib3Error, http.client.HTTPException,
                OSError, ValueError) as exc:
            # reading response.raw raises urllib3's own errors (ReadTimeoutError, ...)
            self._note(f"metadata {cloud}: {method} {path} failed ({type(exc).__name__})")
            return None

    def run(self, order: list[str]) -> tuple[MetadataResult | None, list[str], bool]:
        """Ask the clouds in order; (result, evidence, reachable) by the deadline.

        Socket timeouts bound each wait, but not a server that drips header
        bytes or a slow name lookup, so the queries run in a worker thread the
        caller stops waiting for at the hard deadline (it is a daemon thread,
        and says nothing more once abandoned).
        """
        box: list[MetadataResult] = []

        def work() -> None:
            try:
                for cloud in order:
                    result = self.aws() if cloud == AWS else self.gcp()
                    if result is not None:
                        box.append(result)
                        return
                if self.fallback6 and self._down and AWS in order:
                    # a dual-stack host whose IPv4 endpoint is unreachable
                    self._note(f"metadata: IPv4 endpoint unreachable; trying AWS over IPv6 "
                               f"(route to {METADATA_IPV6})")
                    self.family, self.url, self._down = "6", self.base_url6, False
                    result = self.aws()
                    if result is not None:
                        box.append(result)
            except Exception as exc:
                self._note(f"metadata: internal error ({type(exc).__name__}); no metadata used")

        if self.deadline.spent(0.05):
            self.evidence.append("metadata: not queried, time budget spent on local reads")
            return None, list(self.evidence), False
        if self.family == "6" and GCP in order:
            # GCP documents 169.254.169.254 (metadata.google.internal) only
            order = [cloud for cloud in order if cloud != GCP]
            self.evidence.append("metadata gcp: not asked over IPv6 (GCP's metadata server "
                                 "is documented on IPv4 only)")
            if not order:
                return None, list(self.evidence), False
        worker = threading.Thread(target=work, name="vpsnet-facts-metadata", daemon=True)
        worker.start()
        worker.join(max(self.deadline.hard - time.monotonic() - 0.01, 0.0))
        with self._lock:
            self._closed = True
            evidence = list(self.evidence)
            abandoned = worker.is_alive()
        if abandoned:
            evidence.append("metadata: gave up, time budget spent with a request still running")
            return None, evidence, False
        return (box[0] if box else None), evidence, self.reachable

    def _garbage(self, cloud: str, what: str) -> None:
        self._note(f"metadata {cloud}: ignored a garbage answer ({what})", warn=True)

    @staticmethod
    def _looks_html(response: Answer) -> bool:
        ctype = response.headers.get("Content-Type", "")
        return "html" in ctype.lower() or response.text.lstrip()[:1] == "<"

    def aws(self) -> MetadataResult | None:
        """IMDSv2 only: a token, then GETs that carry it. Never IMDSv1."""
        response = self._request(AWS, "PUT", "/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": AWS_TOKEN_TTL})
        if response is None:
            return None
        token = response.text.strip()
        if response.status_code != 200:
            self._note(f"metadata aws: IMDSv2 token refused (HTTP {response.status_code}); "
                       "IMDSv1 not tried by design")
            return None
        if self._looks_html(response) or not TOKEN_RE.fullmatch(token):
            self._garbage(AWS, "token is not a token")
            return None
        self.reachable = True
        response = self._request(AWS, "GET", "/latest/dynamic/instance-identity/document",
                                 {"X-aws-ec2-metadata-token": token})
        if response is None:
            return None
        if response.status_code != 200:
            self._note(f"metadata aws: identity document HTTP {response.status_code}")
            return None
        doc, why = load_json_bounded(response.text)
        if why is not None:
            self._garbage(AWS, f"identity document: {why}")
            return None
        result, problems = aws_identity(doc)
        for problem in problems:
            self._garbage(AWS, problem)
        if result is None:
            return None
        self._note(f"metadata aws: IMDSv2 identity document says region={result.region} "
                   f"zone={result.zone} instance_type={result.instance_type} -> aws")
        return result

    def _gcp_get(self, key: str) -> str | None:
        response = self._request(GCP, "GET", f"/computeMetadata/v1/instance/{key}",
                                 {"Metadata-Flavor": "Google"})
        if response is None:
            return None
        if response.headers.get("Metadata-Flavor") != "Google":
            if response.status_code == 200:
                self._garbage(GCP, f"{key}: answer lacks the Metadata-Flavor: Google header")
            else:
                self._note(f"metadata gcp: not a GCP metadata service (HTTP "
                           f"{response.status_code} without Metadata-Flavor: Google)")
            return None
        self.reachable = True
        if response.status_code != 200:
            self._note(f"metadata gcp: {key} HTTP {response.status_code}")
            return None
        if self._looks_html(response):
            self._garbage(GCP, f"{key}: HTML body")
            return None
        return str(response.text.strip())

    def gcp(self) -> MetadataResult | None:
        """computeMetadata/v1 with Metadata-Flavor: Google, checked on every answer."""
        zone_path = self._gcp_get("zone")
        if zone_path is None:
            return None
        zone = zone_path.rsplit("/", 1)[-1]
        match = GCP_ZONE_RE.fullmatch(zone)
        if not match:
            self._garbage(GCP, f"zone {show(zone_path)}")
            return None
        itype = None
        type_path = self._gcp_get("machine-type")
        if type_path is not None:
            candidate = type_path.rsplit("/", 1)[-1]
            if GCP_TYPE_RE.fullmatch(candidate):
                itype = candidate
            else:
                self._garbage(GCP, f"machine-type {show(type_path)}")
        iid = self._gcp_get("id")
        if iid is not None and not GCP_ID_RE.fullmatch(iid):
            iid = None
        self._note(f"metadata gcp: zone={zone} machine_type={itype} -> gcp")
        return MetadataResult(GCP, match.group(1), zone, itype, iid)
