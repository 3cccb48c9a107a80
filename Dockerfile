# danbao in a container. Used by docker-compose.yml, which runs it against a postgres:15
# container through DATABASE_URL (the image has no PostgreSQL of its own).
#
#   docker build -t danbao .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://... -e DANBAO_JWT_SECRET=... danbao

FROM rust:1-bookworm AS builder
WORKDIR /src
# Everything the build reads: the workspace, the crates, the embedded migrations and the
# committed OpenAPI document (.dockerignore keeps target/ and local data out).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
COPY openapi ./openapi
COPY tests ./tests
RUN cargo build --release --locked -p danbao-api --bin danbao \
    && install -m 0755 target/release/danbao /usr/local/bin/danbao

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /var/lib/danbao --create-home danbao
COPY --from=builder /usr/local/bin/danbao /usr/local/bin/danbao
USER danbao
WORKDIR /var/lib/danbao
ENV DANBAO_LISTEN=0.0.0.0:8080 \
    DANBAO_DATA_DIR=/var/lib/danbao/data
EXPOSE 8080
# actix stops on SIGTERM (docker stop): it finishes requests in flight, then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["danbao"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
