"""A first deploy that works (issue 21, item 5): a migration identity and the database job that
runs `ess db setup` as it, a builder with only what a build needs, and pinned installs on the
collector VM and in the job. tests/db/test_db_setup.py runs `ess db setup` against a database
with a fresh Cloud SQL instance's rights."""

from __future__ import annotations

import re
import subprocess
import tomllib

from packaging.requirements import Requirement
from tfmodule import INFRA, ROOT, block, text

TEMPLATES = INFRA / "templates"


def _roles_of(root, sa: str) -> set[str]:
    return set(root["locals"]["project_roles"][sa])


def test_builder_has_no_project_wide_build_role(root):
    assert "roles/cloudbuild.builds.builder" not in text(root)
    assert _roles_of(root, "builder") == {"roles/logging.logWriter"}
    project = root["resource"]["google_project_iam_member"]["builder_sources"]
    assert project["role"] == "roles/storage.objectViewer"
    assert 'component["builder"]' in project["member"]
    cond = block(project, "condition")["expression"].replace('\\"', '"')
    assert cond == 'resource.name.startsWith("projects/_/buckets/${local.function_sources_bucket}")'
    assert root["locals"]["function_sources_bucket"] == \
        "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
    bucket = root["resource"]["google_storage_bucket_iam_member"]["builder_sources"]
    assert bucket["bucket"] == '${google_storage_bucket.this["artifacts"].name}'
    assert bucket["role"] == "roles/storage.objectViewer"
    cond = block(bucket, "condition")["expression"].replace('\\"', '"')
    assert cond.endswith('/objects/functions/")'), cond
    objects = root["resource"]["google_storage_bucket_object"]
    for name in ("ingest_source", "export_source"):
        assert objects[name]["name"].startswith("functions/"), name
    assert not objects["collector_wheel"]["name"].startswith("functions/")
    assert not objects["sites"]["name"].startswith("functions/")
    for fn in root["resource"]["google_cloudfunctions2_function"].values():
        assert 'component["builder"]' in block(fn, "build_config")["service_account"]
    waits = text(root["resource"]["time_sleep"]["iam_propagation"]["depends_on"])
    assert "google_project_iam_member.builder_sources" in waits
    assert "google_storage_bucket_iam_member.builder_sources" in waits


def test_migration_identity_is_an_iam_database_user_of_each_instance(root):
    assert _roles_of(root, "migrate") == {"roles/cloudsql.client",
                                          "roles/cloudsql.instanceUser", "roles/logging.logWriter"}
    user = root["resource"]["google_sql_user"]["migrate"]
    assert user["for_each"] == "${local.sql_instances}"
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert 'component["migrate"].email, ".gserviceaccount.com"' in user["name"]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_the_database_job_runs_ess_db_setup_as_the_migration_identity(root):
    job = root["resource"]["google_cloud_run_v2_job"]["db"]
    assert job["for_each"] == "${local.sql_instances}"
    task = block(block(job, "template"), "template")
    assert 'component["migrate"]' in task["service_account"]
    assert "google_vpc_access_connector.functions" in block(task, "vpc_access")["connector"]
    container = block(task, "containers")
    assert container["command"] == ["/bin/bash", "-c", "${local.db_job_script}", "ess-db-job"]
    env = _env(container)
    assert env["ESS_DB_INSTANCE"] == \
        "${google_sql_database_instance.this[each.key].connection_name}"
    assert env["ESS_DB_USER"] == "${google_sql_user.migrate[each.key].name}"
    assert env["ESS_SITES_CONFIG"] == "${local.sites_uri}"
    args = container["args"]
    assert args.startswith('${concat(["db", "setup", "--config", local.sites_uri]'), args
    assert '["--writer", google_sql_user.iam[sa].name]' in args
    assert '["--reader", google_sql_user.iam[sa].name]' in args
    grants = root["locals"]["db_job_grants"]
    assert grants == {"main": {"writers": ["ingest-main"], "readers": ["export"]},
                      "replica": {"writers": ["ingest-replica"], "readers": []}}
    iam_users = root["locals"]["sql_iam_users"]     # the users db_grants_sql grants, too
    for instance, who in grants.items():
        for sa in who["writers"] + who["readers"]:
            assert re.search(rf'"?{sa}"?\s*=\s*"{instance}"', iam_users), (sa, instance)
    arch = (ROOT / "docs" / "architecture.md").read_text()
    for name in env:
        assert f"`{name}`" in arch, f"{name} is not in docs/architecture.md"
    cmds = text(root["output"]["db_setup_commands"]["value"])
    assert "gcloud sql users assign-roles ${google_sql_user.migrate[k].name}" in cmds
    assert "--type=CLOUD_IAM_SERVICE_ACCOUNT --database-roles=cloudsqlsuperuser" in cmds
    assert "gcloud run jobs execute ${google_cloud_run_v2_job.db[k].name}" in cmds


def test_deploy_doc_runs_the_job_not_the_vm():
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert "db_setup_commands" in doc and "gcloud run jobs execute" in doc
    assert "gcloud sql users assign-roles" in doc
    assert "sudo -u ess /opt/ess/venv/bin/ess db migrate" not in doc


def _render(path, **values: str) -> str:
    """What Terraform's templatefile makes of a template with only ${name} interpolations."""
    body = path.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([a-z_]+)\}", body))
    assert used <= set(values), f"{path.name}: not passed {used - set(values)}"
    return re.sub(r"(?<!\$)\$\{([a-z_]+)\}", lambda m: values[m.group(1)], body)


def _pins() -> dict[str, str]:
    reqs = {}
    for line in (ROOT / "collector" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            (spec,) = r.specifier
            assert spec.operator == "==", line
            reqs[r.name.lower().replace("_", "-")] = spec.version
    return reqs


def test_every_dependency_of_the_wheel_is_pinned_within_its_range():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = _pins()
    for dep in map(Requirement, deps):
        name = dep.name.lower().replace("_", "-")
        assert name in pins, f"{dep.name} is not pinned in collector/requirements.txt"
        assert dep.specifier.contains(pins[name]), f"{name}=={pins[name]} outside {dep}"
    assert len(pins) == len(deps)


def test_the_vm_and_the_job_install_pinned_versions_only(root):
    reqs = (ROOT / "collector" / "requirements.txt").read_text().strip()
    assert root["locals"]["pinned_requirements"] == \
        '${trimspace(file("${path.module}/../collector/requirements.txt"))}'
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", root["locals"]["pip_version"])
    vm = text(root["resource"]["google_compute_instance"]["collector"]["metadata"])
    assert "requirements = local.pinned_requirements" in vm
    assert "pip_version = local.pip_version" in vm
    job = text(root["locals"]["db_job_script"])
    assert "requirements = local.pinned_requirements" in job
    for tpl in ("collector-startup.sh.tftpl", "db-job.sh.tftpl"):
        script = _render(TEMPLATES / tpl, requirements=reqs, pip_version="26.3",
                         **{k: "x" for k in ("bucket", "wheel_object", "sites_object", "topic",
                                             "project_id", "install_ops_agent", "unit_file")})
        assert reqs in script, tpl
        installs = [x for x in re.findall(r"pip\"? install[^\n]*(?:\\\n[^\n]*)*", script)]
        assert installs, tpl
        for line in installs:     # every install is a pin, the pinned list, or the wheel --no-deps
            assert ("-r " in line or "'pip==26.3'" in line or "--no-deps" in line), (tpl, line)
        assert sum("--no-deps" in x for x in installs) == 1, tpl
        check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert check.returncode == 0, (tpl, check.stderr)
