# syntax=docker/dockerfile:1
# Multi-stage build.
#   build    compiles loglake in the Rust image (dependencies first, so editing src/ does
#            not recompile polars and sqlx);
#   airflow  Apache Airflow with loglake on PATH and the DAG in its dags folder, for the
#            compose file's `airflow` profile;
#   runtime  the default (last) stage: Debian slim with the 86 MB stripped binary and the
#            default config, run as an unprivileged user, instead of the multi-GB build image.
# Airflow version of the `airflow` target (the DAG is tested against 3.3.2).
ARG AIRFLOW_VERSION=3.3.2

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Build the dependencies against a stub crate, so this layer is cached until Cargo.lock changes.
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin loglake \
    && rm -rf src target/release/loglake* target/release/deps/loglake* target/release/.fingerprint/loglake*
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin loglake && strip target/release/loglake

FROM apache/airflow:${AIRFLOW_VERSION}-python3.11 AS airflow
COPY --from=build /src/target/release/loglake /usr/local/bin/loglake
COPY config /opt/loglake/config
COPY --chown=airflow:root airflow/dags /opt/airflow/dags
ENV LOGLAKE_CONFIG=/opt/loglake/config/loglake.toml

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group loglake
COPY --from=build /src/target/release/loglake /usr/local/bin/loglake
COPY config /app/config
WORKDIR /app
RUN mkdir -p /app/lake && chown loglake:loglake /app/lake
USER 10001:10001
VOLUME ["/app/lake"]
# tini reaps and forwards signals: `docker stop` reaches loglake, whose lake lock and
# staged partitions are then released and discarded cleanly.
ENTRYPOINT ["/usr/bin/tini", "--", "loglake"]
CMD ["--help"]
