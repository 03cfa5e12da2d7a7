"""The prompt registry: every prompt a span links to, with versions that never repeat.

A link is (name, version, template hash) from `genai_normalize`. The registry lives in
the `<traces>_prompts` table, one row per (Tenant, Name, Version); each tenant has its own:

- a client-given version ("3", "v3") is recorded as it is; the first template seen with it
  stays its template;
- a template without a version gets the version already holding the same content, or
  else the next number: the writer claims max+1 and reads the entry back; if another
  template won that number (a concurrent writer), it claims the one after.

A claim is an insert whose deduplication token is the (Name, Version). ClickHouse keeps
the first block with a token and drops later ones, atomically, so of writers racing for a
number exactly one row lands, and everyone who reads it back agrees on the winner; writers
with the same content converge on one version. (Server timestamps cannot decide this: a
claim stamped earlier may become visible later.) Reads still take the earliest row per
(Name, Version), should the deduplication window ever have forgotten a token.

Claims survive restarts because they are rows; this process only caches what it read.

POML names: a `poml` span carries its POML source but not the name POML registers it under in
MLflow's prompt registry (`0001.explain_code`: POML's call counter and the file's stem, known
only to the client), so `genai_normalize` names it `poml-<sha256[:12]>`. Before registering
such a content-derived POML name, the registry looks for the name under which that exact
content was registered by the MLflow prompt-registry API (a row with the same TemplateHash:
the MLflow endpoint registers `mlflow.prompt.text` through `resolve` with the client's name and
version), and links the span (and the LLM calls linked to it) there instead, at the version
holding that content. When several names hold it (POML counts calls, so one file rendered
twice is `0001.x` and `0002.x`), the latest registration wins. Without such a row (the client's
MLflow tracking server is not tracehouse) the content-derived name stays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog
from clickhouse_connect.driver.client import Client

from tracehouse.core.errors import RetryableError
from tracehouse.core.genai import GenAIColumns
from tracehouse.core.pdata import DEFAULT_TENANT

log = structlog.get_logger("tracehouse.sinks.clickhouse.prompts")

_MAX_CLAIMS = 50  # distinct new templates racing for one name at the same instant
POML_SOURCE = "POML"  # genai_normalize's mapping.POML: the convention of a `poml` span's link
_NAME_TTL_S = 10.0  # how long a looked-up registered name of POML content is reused
_MAX_NAMES = 4096


@dataclass(slots=True)
class _Versions:
    """What the registry holds for one name: version -> winning template hash."""

    by_version: dict[str, str] = field(default_factory=dict)
    by_hash: dict[str, str] = field(default_factory=dict)

    def next_number(self) -> int:
        return max((int(v) for v in self.by_version if v.isdigit()), default=0) + 1


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    version: str
    template_hash: str
    template: str
    source: str
    tenant: str = DEFAULT_TENANT


class PromptRegistry:
    def __init__(self, database: str, traces_table: str):
        self._table = f"{database}.{traces_table}_prompts"
        self._known: dict[tuple[str, str], _Versions] = {}  # by (tenant, name)
        self._named: dict[tuple[str, str], tuple[str, float]] = {}  # (tenant, hash) -> (name or "", when)

    def link(self, client: Client, cols: GenAIColumns, tenant: str = DEFAULT_TENANT) -> None:
        """Register the batch's prompt links in the tenant's registry; fill the version of
        unversioned templates."""
        linked = [i for i, name in enumerate(cols.prompt_name) if name]
        if not linked:
            return
        resolved: dict[tuple[str, str, str], str] = {}
        for i in linked:
            if cols.prompt_source[i] == POML_SOURCE and not cols.prompt_version[i]:
                cols.prompt_name[i] = self.registered_name(client, cols.prompt_name[i],
                                                           cols.prompt_template_hash[i], tenant)
            key = (cols.prompt_name[i], cols.prompt_version[i], cols.prompt_template_hash[i])
            version = resolved.get(key)
            if version is None:
                version = resolved[key] = self.resolve(client, Link(
                    key[0], key[1], key[2], cols.prompt_template[i], cols.prompt_source[i], tenant))
            cols.prompt_version[i] = version

    def registered_name(self, client: Client, name: str, template_hash: str, tenant: str = DEFAULT_TENANT) -> str:
        """The name this content was last registered under, for a content-derived POML name
        (see the module doc); else `name`."""
        if not template_hash or name != f"poml-{template_hash[:12]}":
            return name
        now = time.monotonic()
        cached = self._named.get((tenant, template_hash))
        if cached is None or now - cached[1] > _NAME_TTL_S:
            rows = client.query(
                f"SELECT Name FROM {self._table} WHERE TemplateHash = {{hash:String}} AND Tenant = {{tenant:String}} "
                "AND Name != {derived:String} ORDER BY RegisteredAt DESC, Name DESC LIMIT 1",
                parameters={"hash": template_hash, "tenant": tenant, "derived": name}).result_rows
            if len(self._named) >= _MAX_NAMES:
                self._named.clear()
            cached = self._named[(tenant, template_hash)] = (str(rows[0][0]) if rows else "", now)
        return cached[0] or name

    def resolve(self, client: Client, link: Link) -> str:
        """The registry version of a link, registering it when it is new."""
        if link.version or not link.template_hash:
            # The client's version, or a name alone (e.g. an MCP prompt) as one unversioned entry.
            known = self._known.get((link.tenant, link.name))
            if known is None or link.version not in known.by_version:
                if link.version not in self._load(client, link).by_version:
                    self._claim(client, link, link.version)
                    self._load(client, link)
            return link.version
        known = self._known.get((link.tenant, link.name))
        if known is not None and link.template_hash in known.by_hash:
            return known.by_hash[link.template_hash]
        for _ in range(_MAX_CLAIMS):
            known = self._load(client, link)
            if link.template_hash in known.by_hash:
                return known.by_hash[link.template_hash]
            number = str(known.next_number())
            self._claim(client, link, number)
            if self._load(client, link).by_version.get(number) == link.template_hash:
                log.info("prompt version registered", prompt=link.name, version=number, source=link.source,
                         template_hash=link.template_hash[:12])
                return number
        raise RetryableError(f"prompt {link.name!r}: could not claim a version after {_MAX_CLAIMS} tries")

    def _load(self, client: Client, link: Link) -> _Versions:
        rows = client.query(
            f"SELECT Version, argMin(TemplateHash, (RegisteredAt, TemplateHash)) FROM {self._table} "
            "WHERE Name = {name:String} AND Tenant = {tenant:String} GROUP BY Version",
            parameters={"name": link.name, "tenant": link.tenant}).result_rows
        versions = _Versions(by_version={str(v): str(h) for v, h in rows})
        # Lowest version first, so content that ever won two numbers maps to the first.
        for version, digest in sorted(versions.by_version.items(), key=lambda vh: _order(vh[0])):
            if digest:
                versions.by_hash.setdefault(digest, version)
        self._known[(link.tenant, link.name)] = versions
        return versions

    def _claim(self, client: Client, link: Link, version: str) -> None:
        # The default tenant keeps the token of registries written before tenants.
        scope = f"{len(link.tenant)}:{link.tenant}:" if link.tenant else ""
        token = f"prompt:{scope}{len(link.name)}:{link.name}:{version}"
        client.insert(self._table, [[link.name, version, link.template_hash, link.template, link.source, link.tenant]],
                      column_names=["Name", "Version", "TemplateHash", "Template", "Source", "Tenant"],
                      settings={"insert_deduplication_token": token})


def _order(version: str) -> tuple[int, int, str]:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)
