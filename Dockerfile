# Multi-stage build: compile in the Rust image, run in a slim Debian with only the binary and
# the default configuration, as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/loglake

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 loglake
COPY --from=build /src/target/release/loglake /usr/local/bin/loglake
COPY config /app/config
WORKDIR /app
RUN mkdir -p /app/lake && chown loglake /app/lake
USER loglake
ENTRYPOINT ["loglake"]
CMD ["--help"]
