"""What a job runs comes from admins: campaign command templates need an admin (or a site that allows them), and
hostile values in every field a requester or manager controls reach the command as plain arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prodflow_core.jobdocs import job_output_dir
from submitter_support import ADMIN, MANAGER, Api, eventually, put_site, unique_label

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CANARY = Path("/tmp/prodflow-command-safety-canary")
HOSTILE = {
    "semicolon": f"x; touch {CANARY}",
    "subshell": f"$(touch {CANARY})",
    "backticks": f"`touch {CANARY}`",
    "newline": f"a\ntouch {CANARY}",
    "quotes": f"'; touch {CANARY}; echo '\"",
    "pipe_and": f"| touch {CANARY} && touch {CANARY} || touch {CANARY} &",
    "redirect": f"> {CANARY} < /etc/passwd",
    "dollar": "${HOME} $PATH $0 $$ ~ * ? [a-z] {a,b} !x",
    "backslash": "\\\\ \\n \\'",
    "dash": "-rf --help",
}
TEMPLATE = "printf '%s\\0' {rat_v} {ratdb_tag} {t_format} " + " ".join(f"{{{k}}}" for k in HOSTILE)
TEMPLATE += " > {output_dir}/argv"


def _jobs(label: str, **template: Any) -> dict[str, Any]:
    entry = {"module": "Hostile", "t_run": 1, "t_format": HOSTILE["subshell"], "n_runs": 1, "template": template}
    return {"rat_v": HOSTILE["semicolon"], "experiment": "snoplus", "label": label, "modules": [entry]}


def _written(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def _forget_canary() -> None:
    CANARY.unlink(missing_ok=True)


async def _post(api: Api, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return await api.client.post("/api/campaigns", json=body, headers=headers)


async def test_a_campaign_command_template_needs_an_admin_or_a_site_that_allows_it(api: Api) -> None:
    await put_site(api, "strict", command_template="echo {run}")
    body = {"jobs": _jobs(unique_label()), "site": "strict", "command_template": "id > /tmp/owned"}
    refused = await _post(api, body, MANAGER)
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["rule"] == "campaign-command-template-admin-only"
    assert "allow_campaign_commands" in refused.json()["detail"]
    preview = await api.client.post("/api/campaigns", json=body, headers=MANAGER, params={"dry_run": "true"})
    assert preview.status_code == 403  # no peeking either
    assert (await _post(api, {**body, "command_template": None}, MANAGER)).status_code == 201  # the site's command
    assert (await _post(api, {**body, "jobs": _jobs(unique_label())}, ADMIN)).status_code == 201

    await put_site(api, "open", command_template="echo {run}", allow_campaign_commands=True)
    opened = await _post(api, {**body, "jobs": _jobs(unique_label()), "site": "open"}, MANAGER)
    assert opened.status_code == 201, opened.text
    site = await api.client.get("/api/sites/open", headers=MANAGER)
    assert site.json()["allow_campaign_commands"] is True
    spec = {"backend": "local", "storage_element": "file:///x", "allow_campaign_commands": True}
    only_admin = await api.client.put("/api/sites/open", json=spec, headers=MANAGER)
    assert only_admin.status_code == 403


async def test_templates_with_quoted_placeholders_are_refused(api: Api) -> None:
    for template in ("echo '{label}'", 'echo "{label}"', "echo \\{label}"):
        body = {"backend": "local", "storage_element": "file:///tmp/se", "command_template": template}
        refused = await api.client.put("/api/sites/quoted", json=body, headers=ADMIN)
        assert refused.status_code == 422, template
        assert "inside quotes" in refused.text


async def test_nul_bytes_are_refused_where_they_enter(api: Api) -> None:
    await put_site(api, "nul", command_template=TEMPLATE)
    jobs = _jobs(unique_label(), **{**HOSTILE, "semicolon": "a\0b"})
    refused = await _post(api, {"jobs": jobs, "site": "nul", "ratdb_tag": "ok"}, MANAGER)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["jobs.modules.0.template.semicolon"]
    assert refused.json()["errors"][0]["type"] == "nul_byte"


async def test_hostile_values_reach_the_command_as_plain_arguments(api: Api) -> None:
    _forget_canary()
    site = await put_site(api, "hostile", command_template=TEMPLATE)
    label = unique_label("Hostile")
    created = await _post(api, {"jobs": _jobs(label, **HOSTILE), "site": "hostile", "ratdb_tag": HOSTILE["quotes"]},
                          MANAGER)  # fmt: skip
    assert created.status_code == 201, created.text
    (doc,) = await api.jobs(label)
    argv = job_output_dir(Path(site["options"]["output_root"]), doc["_id"]) / "argv"

    async def ran() -> bool:
        return _written(argv).count(b"\0") == 13

    await eventually(ran, timeout_s=30, what="the hostile job wrote its arguments")
    expected = [HOSTILE["semicolon"], HOSTILE["quotes"], HOSTILE["subshell"], *HOSTILE.values()]
    assert _written(argv).split(b"\0")[:-1] == [v.encode() for v in expected]
    assert _written(CANARY) == b"", "a value ran as a command"
