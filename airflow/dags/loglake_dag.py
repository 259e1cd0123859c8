"""loglake: the daily batch, one BashOperator per numbered stage.

Every task runs `loglake <stage> --date {{ ds }}`: the run's logical date is the batch date,
so a backfill (catchup, or `airflow backfill create`) replays exactly the days asked for,
and re-running a day replaces that day's partitions instead of adding to them.

Exit codes follow BashOperator's contract: 0 is success, 99 (`--skip-exit-code 99`) marks the
task *skipped* when a stage has nothing to do for the date (no logs arrived, models still
fresh), anything else fails the task with loglake's one-line reason in the log (75 when another
writer holds the lake: the task's retries try again later). Tasks after
bronze use the trigger rule `none_failed`, so a skipped stage (typically 04-train between
retrains) does not skip the stages after it: each stage judges for itself whether it has work.

Settings come from the environment of the scheduler/worker, so the file needs no edits:

    LOGLAKE_BIN                 loglake binary                   (default: loglake on PATH)
    LOGLAKE_SOURCE              source name                      (default: app)
    LOGLAKE_INPUT               raw logs of one day, templated   (default: /data/logs/{{ ds }})
    LOGLAKE_KAFKA_TOPICS        Kafka topics instead of files,   (default: none; read files)
                                comma-separated: each run reads what arrived since the last
    LOGLAKE_KAFKA_BROKERS       their brokers, host:port,…       (default: from the config)
    LOGLAKE_CONFIG              config file                      (default: loglake's own lookup)
    LOGLAKE_LAKE                lake folder                      (default: from the config)
    LOGLAKE_FORMAT              line format                      (default: from the config)
    LOGLAKE_SESSION_KEY         session key regex                (default: from the config)
    LOGLAKE_START_DATE          first logical date               (default: 2026-01-01)
    LOGLAKE_SCHEDULE            cron expression or preset        (default: @daily)
    LOGLAKE_RETRAIN_EVERY_DAYS  retrain when models are older    (default: 7, weekly)
    LOGLAKE_RETRIES             retries per task                 (default: 2)

The database URL (with its password) is read by loglake itself from LOGLAKE__DATABASE__URL in
the worker's environment; it never appears in the DAG or in the rendered commands.
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.operators.bash import BashOperator

STAGES = ["00-init", "01-bronze", "02-silver", "03-gold", "04-train", "05-detect", "06-report"]
SKIP_EXIT_CODE = 99


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _loglake_command(stage: str) -> str:
    """The shell command of one stage; `{{ ds }}` is rendered by Airflow at run time."""
    args = [_env("LOGLAKE_BIN", "loglake")]
    for flag, var in [
        ("--config", "LOGLAKE_CONFIG"),
        ("--lake", "LOGLAKE_LAKE"),
    ]:
        if _env(var):
            args += [flag, _env(var)]
    args += ["--source", _env("LOGLAKE_SOURCE", "app")]
    args += ["--skip-exit-code", str(SKIP_EXIT_CODE), "--log-format", "json"]
    # Each stage takes only the flags it reads: the format is silver's, the session key
    # silver's and gold's (loglake refuses them elsewhere).
    stage_args = []
    if stage == "02-silver" and _env("LOGLAKE_FORMAT"):
        stage_args += ["--format", _env("LOGLAKE_FORMAT")]
    if stage in ("02-silver", "03-gold") and _env("LOGLAKE_SESSION_KEY"):
        stage_args += ["--session-key", _env("LOGLAKE_SESSION_KEY")]
    command = " ".join(shlex.quote(a) for a in args) + " --date {{ ds }} " + stage
    command += "".join(" " + shlex.quote(a) for a in stage_args)
    if stage == "01-bronze" and _env("LOGLAKE_KAFKA_TOPICS"):
        # A topic instead of a folder: each run reads every partition from where bronze
        # stopped up to the offsets it finds at its start, into the run's date.
        for topic in _env("LOGLAKE_KAFKA_TOPICS").split(","):
            if topic.strip():
                command += " --kafka " + shlex.quote(topic.strip())
        if _env("LOGLAKE_KAFKA_BROKERS"):
            command += " --kafka-brokers " + shlex.quote(_env("LOGLAKE_KAFKA_BROKERS"))
    elif stage == "01-bronze":
        # Templated: the default reads one folder per logical date.
        command += " --input " + _env("LOGLAKE_INPUT", "/data/logs/{{ ds }}")
    if stage == "06-report":
        # The day's HTML page, <lake>/reports/<ds>/index.html.
        command += " --html"
    return command


default_args = {
    "owner": "loglake",
    "retries": int(_env("LOGLAKE_RETRIES", "2")),
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
}

with DAG(
    dag_id="loglake",
    description="raw logs -> bronze -> silver -> gold -> train -> detect -> report",
    doc_md=__doc__,
    schedule=_env("LOGLAKE_SCHEDULE", "@daily"),
    start_date=pendulum.parse(_env("LOGLAKE_START_DATE", "2026-01-01"), tz="UTC"),
    catchup=True,
    # One day at a time, in order: training looks back over earlier days' gold, and the
    # stages of two days would only queue behind each other on the lake's lock anyway.
    max_active_runs=1,
    default_args=default_args,
    tags=["loglake"],
) as dag:
    previous = None
    for stage in STAGES:
        env = None
        if stage == "04-train":
            # Weekly (configurable) retraining: 04-train skips while the latest models were
            # trained on data at most this many days old.
            env = {"LOGLAKE__TRAIN__RETRAIN_EVERY_DAYS": _env("LOGLAKE_RETRAIN_EVERY_DAYS", "7")}
        task = BashOperator(
            task_id=stage,
            bash_command=_loglake_command(stage),
            env=env,
            append_env=True,
            skip_on_exit_code=SKIP_EXIT_CODE,
            trigger_rule="all_success" if stage in ("00-init", "01-bronze") else "none_failed",
        )
        if previous is not None:
            previous >> task
        previous = task
