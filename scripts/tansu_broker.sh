# Sourced by the Kafka scripts: unless KAFKA_BROKERS names a broker, start tansu (in memory)
# on a free loopback port from TANSU_BIN (default ~/.cache/loglake-tansu/bin/tansu, where
# .ci/run builds it), logging to $work/tansu.log, and set KAFKA_BROKERS and broker_pid (the
# caller's EXIT trap stops it).
broker_pid=""
if [ -z "${KAFKA_BROKERS:-}" ]; then
  tansu=${TANSU_BIN:-$HOME/.cache/loglake-tansu/bin/tansu}
  [ -x "$tansu" ] || { echo "no broker: set KAFKA_BROKERS, or install tansu (see .ci/run)" >&2; exit 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  KAFKA_BROKERS=127.0.0.1:$port
fi
