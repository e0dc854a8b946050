# Multi-stage build: the minilog binary on a small Debian runtime.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin minilog

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data minilog && mkdir -p /data && chown minilog /data
COPY --from=build /src/target/release/minilog /usr/local/bin/minilog
USER minilog
VOLUME /data
EXPOSE 8000
ENV MINILOG_DATA=/data MINILOG_LISTEN=0.0.0.0:8000
ENTRYPOINT ["minilog"]
CMD ["serve"]
