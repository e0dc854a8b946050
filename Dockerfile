# Multi-stage build: compile minilog, then copy the one binary onto a small
# Debian runtime (about 80 MB; no compiler, no sources). The same image runs
# every role: `serve` (default), `gateway`, `view`, `rebuild`, `key`, `user`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin minilog \
    && strip target/release/minilog

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data minilog && mkdir -p /data && chown minilog /data
COPY --from=build /src/target/release/minilog /usr/local/bin/minilog
USER minilog
VOLUME /data
EXPOSE 8000
ENV MINILOG_DATA=/data MINILOG_LISTEN=0.0.0.0:8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["minilog"]
CMD ["serve"]
