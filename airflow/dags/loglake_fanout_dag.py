"""loglake fanned out: many sources, each day split into shards, on Airflow's workers.

For a fleet whose logs outgrow one task: the lake on object storage (`--lake s3://…`), the
database PostgreSQL, and Airflow's executor running the tasks on as many workers as it has.

    00-init                      once
    01-bronze, 02-silver         once per (source, shard): dynamic task mapping (`.expand`)
                                 over the files of each source's folder for the day
    03-gold, 04-train,           once per source, mapped; 04-train in the `loglake_train` pool
    05-detect, 06-report         (create it with the slots training may use at once)

A shard is one file of the day's folder. loglake's leases keep apart what tasks share: shards
of one day run at once, and so do sources. 05-detect publishes one Asset per source
(`loglake://anomalies/<source>`) for downstream DAGs.

Settings come from the environment of the scheduler and workers:

    LOGLAKE_BIN            loglake binary                                (default: loglake)
    LOGLAKE_SOURCES        sources, comma-separated                      (default: app)
    LOGLAKE_INPUT_ROOT     raw logs: <root>/<source>/<ds>/<files>        (default: /data/logs)
    LOGLAKE_CONFIG         config file ([sources.<name>] format, session key)
    LOGLAKE_LAKE           lake: a folder or s3://bucket/prefix          (default: from config)
    LOGLAKE_START_DATE     first logical date                            (default: 2026-01-01)
    LOGLAKE_SCHEDULE       cron expression or preset                     (default: @daily)
    LOGLAKE_TRAIN_POOL     pool of 04-train                              (default: loglake_train)
    LOGLAKE_RETRIES        retries per task                              (default: 2)

The database URL is read by loglake from LOGLAKE__DATABASE__URL in the workers' environment,
and the object store's from the standard AWS_* variables; neither appears in the DAG.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, Asset, task
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import task
    from airflow.operators.bash import BashOperator

SKIP_EXIT_CODE = 99


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


SOURCES = [s.strip() for s in _env("LOGLAKE_SOURCES", "app").split(",") if s.strip()]


def _base(source: str, ds: str = "{{ ds }}") -> str:
    """loglake with the lake, config, source and batch date: `{{ ds }}`, rendered at run time,
    unless the caller knows the date (values mapped from a task's result are not rendered)."""
    args = [_env("LOGLAKE_BIN", "loglake")]
    for flag, var in [("--config", "LOGLAKE_CONFIG"), ("--lake", "LOGLAKE_LAKE")]:
        if _env(var):
            args += [flag, _env(var)]
    args += ["--source", source, "--skip-exit-code", str(SKIP_EXIT_CODE), "--log-format", "json"]
    return " ".join(shlex.quote(a) for a in args) + f" --date {ds}"


def _shard_name(file_name: str) -> str:
    """A file's name as a shard name (letters, digits, - and _)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", file_name)


@task
def shards(ds: str | None = None) -> list[dict]:
    """Every (source, shard) of the day: one per file of `<root>/<source>/<ds>/`."""
    root = _env("LOGLAKE_INPUT_ROOT", "/data/logs")
    found = []
    for source in SOURCES:
        folder = os.path.join(root, source, ds)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"no log folder {folder} for source {source} on {ds}")
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                found.append(
                    {"source": source, "shard": _shard_name(name), "path": path, "ds": ds}
                )
    return found


def _bronze(s: dict) -> str:
    base = _base(s["source"], s["ds"])
    return f"{base} 01-bronze --shard {s['shard']} --input {shlex.quote(s['path'])}"


def _silver(s: dict) -> str:
    return f"{_base(s['source'], s['ds'])} 02-silver --shard {s['shard']}"


default_args = {
    "owner": "loglake",
    "retries": int(_env("LOGLAKE_RETRIES", "2")),
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
}

with DAG(
    dag_id="loglake_fanout",
    description="sources x shards -> bronze/silver, then per source gold -> train -> detect -> report",
    doc_md=__doc__,
    schedule=_env("LOGLAKE_SCHEDULE", "@daily"),
    start_date=pendulum.parse(_env("LOGLAKE_START_DATE", "2026-01-01"), tz="UTC"),
    catchup=True,
    # Training looks back over earlier days' gold: one day at a time, in order.
    max_active_runs=1,
    default_args=default_args,
    tags=["loglake"],
) as dag:
    common = {"skip_on_exit_code": SKIP_EXIT_CODE, "append_env": True}
    init = BashOperator(
        task_id="00-init", bash_command=f"{_base(SOURCES[0])} 00-init", **common
    )
    day = shards()
    bronze = BashOperator.partial(task_id="01-bronze", **common).expand(
        bash_command=day.map(_bronze)
    )
    silver = BashOperator.partial(
        task_id="02-silver", trigger_rule="none_failed", **common
    ).expand(bash_command=day.map(_silver))

    def per_source(stage: str, extra: str = "", **kwargs):
        return BashOperator.partial(
            task_id=stage, trigger_rule="none_failed", **common, **kwargs
        ).expand(bash_command=[f"{_base(s)} {stage}{extra}" for s in SOURCES])

    gold = per_source("03-gold")
    train = per_source("04-train", pool=_env("LOGLAKE_TRAIN_POOL", "loglake_train"))
    detect = per_source(
        "05-detect", outlets=[Asset(f"loglake://anomalies/{s}") for s in SOURCES]
    )
    report = per_source("06-report", " --html")
    init >> day >> bronze >> silver >> gold >> train >> detect >> report
