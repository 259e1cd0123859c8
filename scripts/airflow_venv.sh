# Sourced by the Airflow test scripts: Airflow in a virtualenv cached between runs.
# Sets $airflow and $airflow_version; AIRFLOW_VERSION and LOGLAKE_AIRFLOW_VENV override.
airflow_version="${AIRFLOW_VERSION:-3.3.2}"
venv="${LOGLAKE_AIRFLOW_VENV:-$HOME/.cache/loglake-airflow-venv}"
installed=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('apache-airflow'))" 2>/dev/null || true)
if [ ! -x "$venv/bin/airflow" ] || [ "$installed" != "$airflow_version" ]; then
  echo "airflow-test: installing apache-airflow $airflow_version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "apache-airflow==$airflow_version"
fi
airflow="$venv/bin/airflow"
