"""Wiring of infra/: Pub/Sub to functions, env and secrets, IAM by intent, scheduler, buckets,
Cloud SQL, the collector VM and monitoring."""

from __future__ import annotations

import json
import re

from tfmodule import (
    INFRA,
    ROOT,
    ROOT_TF,
    TARGET_REF,
    _iam_table,
    block,
    defined,
    optional_default,
    parse,
    refs,
    sa_keys,
    text,
)

# --- wiring ----------------------------------------------------------------------------------

def test_all_references_resolve(root):
    known = defined(root)
    for path in ROOT_TF:
        d = parse(path)
        # `moved.from` names former addresses on purpose; test_moved_blocks checks them.
        for r in refs({k: v for k, v in d.items() if k != "moved"}):
            if r[0] == "google_project" and r[1] == "this":
                pass
            assert r in known or (r[0] == "data.google_project" and r[1] == "this"), \
                f"{path.name}: reference to undefined {r[0]}.{r[1]}"
        body = path.read_text()
        for name in re.findall(r"\blocal\.([a-z0-9_]+)", body):
            assert name in root["locals"], f"{path.name}: undefined local.{name}"
        for name in re.findall(r"\bvar\.([a-z0-9_]+)", body):
            assert name in root["variable"], f"{path.name}: undefined var.{name}"


def test_moved_blocks(root):
    """Renamed resources keep their state: every `from` is gone, every `to` exists."""
    known = defined(root)
    moved = [m for p in ROOT_TF for m in parse(p).get("moved", [])]
    assert moved, "the for_each buckets and Cloud SQL resources replaced named ones"
    for m in moved:
        (src,), (dst,) = refs(m["from"]), refs(m["to"])
        assert src not in known, f"moved from {src}, which still exists"
        assert dst in known, f"moved to undefined {dst}"
        key = re.search(r'\["([^"]+)"\]', m["to"])
        if key and dst == ("google_storage_bucket", "this"):
            assert key.group(1) in root["locals"]["buckets"], m
    targets = {m["to"] for m in moved}
    for k in root["locals"]["buckets"]:
        assert f'${{google_storage_bucket.this["{k}"]}}' in targets, k
    for k in ("main", "replica"):
        assert f'${{google_sql_database_instance.this["{k}"]}}' in targets, k
        assert f'${{google_sql_database.this["{k}"]}}' in targets, k
    for k in ("ingest-main", "ingest-replica", "export"):
        assert f'${{google_sql_user.iam["{k}"]}}' in targets, k


def test_push_subscriptions_target_functions_with_oidc(root):
    subs = root["resource"]["google_pubsub_subscription"]
    functions = root["resource"]["google_cloudfunctions2_function"]
    pushes = {n: s for n, s in subs.items() if "push_config" in s}
    assert pushes, "no push subscription"
    for name, sub in pushes.items():
        push = block(sub, "push_config")
        targets = {n for t, n in refs(push["push_endpoint"])
                   if t == "google_cloudfunctions2_function"}
        assert targets and targets <= set(functions), f"{name} pushes to {push['push_endpoint']}"
        oidc = block(push, "oidc_token")
        assert 'component["invoker"]' in oidc["service_account_email"]
        assert refs(oidc["audience"]) == refs(push["push_endpoint"])
        assert block(sub, "dead_letter_policy")["dead_letter_topic"]
        assert block(sub, "retry_policy")["maximum_backoff"]
        assert sub["ack_deadline_seconds"] and sub["message_retention_duration"]
    # per sink a push subscription on the frames topic and one on its replay topic (replay.tf),
    # each to the matching ingest function
    assert pushes["ingest"]["for_each"] == "${local.push_subscriptions}"
    assert "[each.value.sink]" in block(pushes["ingest"], "push_config")["push_endpoint"]
    assert set(root["locals"]["sinks"]) == {"main", "replica"}
    pairs = text(root["locals"]["push_subscriptions"])
    assert 'for k, _ in local.sinks : k => {sink = k, name = "${var.prefix}-frames-ingest-${k}", ' \
        "topic = google_pubsub_topic.frames.id}" in pairs, pairs
    assert 'for k, _ in local.sinks : "replay-${k}" => {sink = k, ' \
        'name = "${var.prefix}-frames-replay-${k}", topic = google_pubsub_topic.replay[k].id}' \
        in pairs, pairs
    gcs = [s for s in subs.values() if "cloud_storage_config" in s]
    assert gcs and 'google_storage_bucket.this["raw"]' in text(gcs[0])


def _documented_env() -> set[str]:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        names |= set(re.findall(r"`(ESS_[A-Z0-9_]+)`", line.split("|")[1] if "|" in line else ""))
    return names


def test_function_env_and_secrets_refer_to_defined_resources(root):
    functions = root["resource"]["google_cloudfunctions2_function"]
    assert set(functions) == {"ingest", "export"}
    documented = _documented_env()
    known = defined(root)
    required = {
        "ingest": {"ESS_SINK", "ESS_SITES_CONFIG", "ESS_QUARANTINE_BUCKET", "ESS_DB_INSTANCE",
                   "ESS_DB_NAME", "ESS_DB_USER"},
        "export": {"ESS_SITES_CONFIG", "ESS_EXPORT_BUCKET", "ESS_DB_INSTANCE", "ESS_DB_NAME",
                   "ESS_DB_USER"},
    }
    entry = {"ingest": "ingest", "export": "export"}
    for name, fn in functions.items():
        build = block(fn, "build_config")
        assert build["entry_point"] == entry[name]
        source = block(block(build, "source"), "storage_source")
        assert 'google_storage_bucket.this["artifacts"]' in text(source)
        svc = block(fn, "service_config")
        env = text(svc["environment_variables"])
        keys = set(re.findall(r"\b(ESS_[A-Z0-9_]+)\s*=", env))
        assert required[name] <= keys, f"{name} misses {required[name] - keys}"
        assert keys <= documented, f"{name} sets undocumented {keys - documented}"
        for r in refs(env):
            assert r in known, f"{name} env refers to undefined {r}"
        for local_name in re.findall(r"\blocal\.([a-z0-9_]+)", env):
            assert local_name in root["locals"]
        secrets = svc["dynamic"][0]["secret_environment_variables"]
        assert block(secrets, "content")["key"] == "ESS_DB_DSN"
        assert "ESS_DB_DSN" in documented
        for key in ("min_instance_count", "max_instance_count", "max_instance_request_concurrency"):
            m = re.fullmatch(rf"\$\{{var\.{name}\.([a-z_]+)\}}", str(svc[key]))
            assert m, f"{name}.{key} must be an attribute of var.{name}"
            assert optional_default(root, name, m.group(1)), f"{name}.{m.group(1)} has no default"
        assert svc["ingress_settings"] == "${var.function_ingress}"
        assert "google_service_account.component" in svc["service_account_email"]
    assert root["variable"]["function_ingress"]["default"] == "ALLOW_INTERNAL_ONLY"
    # the sinks' DSN secrets are the data sources of secrets.tf
    sinks = text(root["locals"]["sinks"])
    assert "data.google_secret_manager_secret.main_dsn" in sinks
    assert "data.google_secret_manager_secret.replica_dsn" in sinks
    assert 'google_sql_database_instance.this["main"]' in sinks
    assert 'google_sql_database_instance.this["replica"]' in sinks
    export_svc = block(functions["export"], "service_config")
    export_secret = export_svc["dynamic"][0]["secret_environment_variables"]
    assert "data.google_secret_manager_secret.main_dsn" in text(export_secret)


def test_sites_change_rolls_new_function_revisions(root):
    """Instances load sites.yaml once: its md5 in each function's env makes a changed file
    (a fixed object name) roll a new revision instead of waiting for instances to recycle."""
    sites = root["resource"]["google_storage_bucket_object"]["sites"]
    assert sites["name"] == "${local.sites_object}"
    assert sites["source"] == "${var.sites_config_path}"
    assert "${local.sites_object}" in root["locals"]["sites_uri"]
    for name, fn in root["resource"]["google_cloudfunctions2_function"].items():
        env = text(block(fn, "service_config")["environment_variables"])
        assert re.search(r"\bESS_SITES_CONFIG_MD5\s*=\s*google_storage_bucket_object\.sites"
                         r"\.md5hash\b", env), f"{name}: no ESS_SITES_CONFIG_MD5 from the object"
        assert re.search(r"\bESS_SITES_CONFIG\s*=\s*local\.sites_uri\b", env), name
    assert "ESS_SITES_CONFIG_MD5" in _documented_env()


def _actual_roles(root: dict) -> dict[str, set[str]]:
    actual: dict[str, set[str]] = {k: set() for k in root["locals"]["service_accounts"]}
    for sa, roles in root["locals"]["project_roles"].items():
        actual[sa] |= {f"{r} on project" for r in roles}
    target_attrs = ("topic", "bucket", "secret_id", "subscription", "repository", "name",
                    "service_account_id")
    for rtype, named in root["resource"].items():
        if not rtype.endswith("_iam_member"):
            continue
        for rname, body in named.items():
            if rtype == "google_project_iam_member":
                if rname != "component":     # a single (conditioned) project binding
                    for w in sa_keys(body["member"], root):
                        actual.setdefault(w, set()).add(f"{body['role']} on project")
                continue
            member, role = body["member"], body["role"]
            attr = next(a for a in target_attrs if a in body)
            target = TARGET_REF.search(body[attr]).group(0)
            if "google_project_service_identity.pubsub" in member:
                who = ["pubsub-agent"]
            elif member.startswith("group:"):
                who = [member]
            elif "[each.key]" in member:
                who = re.findall(r'"([a-z-]+)"', body["for_each"])
                assert who, f"{rtype}.{rname}: for_each must list the service-account keys"
            else:
                who = sa_keys(member, root)
            for w in who:
                actual.setdefault(w, set()).add(f"{role} on {target}")
    return actual


def test_service_accounts_hold_only_their_roles(root):
    assert set(root["locals"]["service_accounts"]) == {
        "collector", "ingest-main", "ingest-replica", "export", "invoker", "scheduler", "builder",
        "migrate"}
    sa = root["resource"]["google_service_account"]["component"]
    assert sa["for_each"] == "${local.service_accounts}"
    assert _actual_roles(root) == _iam_table()


def test_scheduler_targets_export_with_oidc(root):
    job = root["resource"]["google_cloud_scheduler_job"]["export"]
    http = block(job, "http_target")
    assert refs(http["uri"]) == {("google_cloudfunctions2_function", "export")}
    oidc = block(http, "oidc_token")
    assert 'component["scheduler"]' in oidc["service_account_email"]
    assert refs(oidc["audience"]) == {("google_cloudfunctions2_function", "export")}
    assert job["schedule"] == "${var.export_schedule}"
    assert job["time_zone"] == "${var.export_time_zone}"
    assert root["variable"]["export_time_zone"]["default"] == "Asia/Seoul"


def _buckets(root: dict) -> dict[str, dict]:
    """Bucket key -> resource body; a for_each bucket appears once per key of its locals map."""
    out = {}
    for name, b in root["resource"]["google_storage_bucket"].items():
        if "for_each" in b:
            m = re.fullmatch(r"\$\{local\.([a-z_]+)\}", b["for_each"])
            assert m, f"{name}: for_each must be a locals map of per-bucket settings"
            out.update({k: b for k in root["locals"][m.group(1)]})
        else:
            out[name] = b
    return out


def _lifecycle_rules(root: dict, key: str, b: dict) -> list[str]:
    """Lifecycle rules of bucket `key`: static ones plus the dynamic ones its settings enable."""
    settings = root["locals"]["buckets"].get(key, {}) if "for_each" in b else {}
    rules = [text(r) for r in b.get("lifecycle_rule", [])]
    for d in b.get("dynamic", []):
        if "lifecycle_rule" in d:
            field = re.search(r"each\.value\.([a-z_]+)", d["lifecycle_rule"]["for_each"]).group(1)
            assert field in settings, f"{key}: no setting {field}"
            if settings[field] is not None:
                rules.append(text(d["lifecycle_rule"]["content"]))
    return rules


def test_buckets_are_private_versioned_with_lifecycle(root):
    buckets = _buckets(root)
    assert {"csv", "raw", "quarantine", "artifacts", "access_logs"} <= set(buckets)
    for name, b in buckets.items():
        assert b["public_access_prevention"] == "enforced", name
        assert b["uniform_bucket_level_access"] is True, name
        assert block(b, "versioning")["enabled"] is True, name
        assert _lifecycle_rules(root, name, b), name
        if name != "access_logs":
            assert "google_storage_bucket.access_logs" in text(block(b, "logging")), name
    for name in ("csv", "raw"):
        assert "NEARLINE" in text(_lifecycle_rules(root, name, buckets[name])), name
    assert "COLDLINE" in text(_lifecycle_rules(root, "raw", buckets["raw"]))
    quarantine = root["locals"]["buckets"]["quarantine"]
    assert quarantine["delete_after_days"] == "${var.quarantine_retention_days}"
    assert len(_lifecycle_rules(root, "quarantine", buckets["quarantine"])) == 3


def test_cloud_sql_settings(root):
    instances = root["resource"]["google_sql_database_instance"]
    assert set(instances) == {"this"}
    inst = instances["this"]
    # one instance per sink, unless that sink is an external DSN
    assert inst["for_each"] == "${local.sql_instances}"
    settings = root["locals"]["sql_instance_settings"]
    assert set(settings) == {"main", "replica"}
    assert settings["main"]["enabled"] == "${local.main_sql}"
    assert settings["replica"]["enabled"] == "${local.replica_sql}"
    assert "if v.enabled" in root["locals"]["sql_instances"]
    s = block(inst, "settings")
    ip = block(s, "ip_configuration")
    assert ip["ipv4_enabled"] is False and "google_compute_network.vpc" in ip["private_network"]
    backup = block(s, "backup_configuration")
    assert backup["enabled"] is True and backup["point_in_time_recovery_enabled"] is True
    flags = {f["name"]: f["value"] for f in s["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    for flag in ("log_checkpoints", "log_lock_waits", "log_connections", "log_disconnections"):
        assert flags[flag] == "on"
    assert inst["deletion_protection"] == "${var.database.deletion_protection}"
    assert optional_default(root, "database", "deletion_protection") == "true"
    assert root["resource"]["google_sql_database"]["this"]["for_each"] == "${local.sql_instances}"
    users = root["resource"]["google_sql_user"]
    assert set(users) == {"iam", "migrate"}
    assert users["iam"]["for_each"] == "${local.sql_iam_users}"
    assert users["migrate"]["for_each"] == "${local.sql_instances}"
    iam_users = root["locals"]["sql_iam_users"]
    for sa, instance in (("ingest-main", "main"), ("export", "main"),
                         ("ingest-replica", "replica")):
        assert re.search(rf'"?{sa}"?\s*=\s*"{instance}"', iam_users), sa
    assert "local.sql_instances" in iam_users
    for u in users.values():
        assert u["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    # no external DSN by default: both sinks are Cloud SQL
    assert re.search(r"main\s*=\s*optional\(string\)", root["variable"]["database"]["type"])
    assert re.search(r"replica\s*=\s*optional\(string\)", root["variable"]["database"]["type"])
    assert "var.database.external_dsn_secret.main == null" in text(root["locals"]["main_sql"])
    assert "var.database.external_dsn_secret.replica == null" in text(root["locals"]["replica_sql"])



def test_db_grants_sql_renders_the_template_per_cloud_sql_database(root):
    """tests/db/test_grants.py runs what infra/db_grants.sql.tftpl renders; here: who gets it."""
    value = re.sub(r"\s+", " ", text(root["output"]["db_grants_sql"]["value"]))
    assert 'templatefile("${path.module}/db_grants.sql.tftpl"' in value
    assert (INFRA / "db_grants.sql.tftpl").is_file()
    for sink, writers, readers in (("main", "ingest-main", '[google_sql_user.iam["export"].name]'),
                                   ("replica", "ingest-replica", "[]")):
        assert re.search(rf'local\.{sink}_sql \? \[\{{label = "{sink} .*?writers = '
                         rf'\[google_sql_user\.iam\["{writers}"\]\.name\], '
                         rf"readers = {re.escape(readers)}\}}\] : \[\]", value), sink

def test_collector_vm_hardening(root):
    vm = root["resource"]["google_compute_instance"]["collector"]
    nic = block(vm, "network_interface")
    assert "access_config" not in nic, "collector must not have an external IP"
    shielded = block(vm, "shielded_instance_config")
    for k in ("enable_secure_boot", "enable_vtpm", "enable_integrity_monitoring"):
        assert shielded[k] is True, k
    md = vm["metadata"]
    assert md["enable-oslogin"] == "TRUE" and md["block-project-ssh-keys"] == "TRUE"
    assert 'component["collector"]' in block(vm, "service_account")["email"]
    # every template variable is passed
    tpl = (INFRA / "templates" / "collector-startup.sh.tftpl").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([a-z_]+)\}", tpl))
    passed = set(re.findall(r"\b([a-z_]+)\s*=", md["startup-script"]))
    assert used and used <= passed, f"template variables not passed: {used - passed}"


def test_collector_unit():
    unit = (ROOT / "collector" / "systemd" / "ess-collector.service").read_text()
    exec_start = r"^ExecStart=/opt/ess/venv/bin/ess collect --config /etc/ess/sites.yaml$"
    assert re.search(exec_start, unit, re.M)
    assert re.search(r"^Restart=always$", unit, re.M)
    assert re.search(r"^EnvironmentFile=/etc/ess/collector.env$", unit, re.M)
    tpl = (INFRA / "templates" / "collector-startup.sh.tftpl").read_text()
    assert "ESS_TOPIC=" in tpl and "PREFIX=/opt/ess" in tpl and "/etc/ess/sites.yaml" in tpl
    assert "ESS_SPOOL_PATH=/var/lib/ess/" in tpl, "the spool must live in the StateDirectory"


def test_monitoring(root):
    metrics = root["locals"]["log_metrics"]
    for field in ("stage", "site", "frames", "rows", "duplicates", "out_of_range", "error"):
        assert any(f"jsonPayload.{field}" in text(m) for m in metrics.values()), field
    dashboard = json.loads((INFRA / "dashboards" / "ess.json").read_text())
    used = set(re.findall(r"user_(ess_[a-z_]+?)(?:_sum|_bucket|_count)?\b", json.dumps(dashboard)))
    assert used and used <= set(metrics), f"dashboard uses undefined metrics {used - set(metrics)}"
    assert "dead-letter" in json.dumps(dashboard)
    policies = root["resource"]["google_monitoring_alert_policy"]
    assert {"site_silent", "dead_letters", "function_errors", "task_missed",
            "scheduler_failed"} <= set(policies)
    for p in policies.values():
        assert p["notification_channels"] == "${var.notification_channels}"
