# Gatehouse container image: build with the Swift 6.3 toolchain, run on a slim Debian.
#   docker build -t ghcr.io/gatehouse/gatehouse:0.1.0 .
#   docker push ghcr.io/gatehouse/gatehouse:0.1.0

FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsqlite3-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first so that source changes reuse the cached layer.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
RUN swift build -c release --product gatehouse --static-swift-stdlib \
    && mkdir -p /out \
    && cp "$(swift build -c release --show-bin-path)/gatehouse" /out/ \
    && cp -R "$(swift build -c release --show-bin-path)/gatehouse_GatehouseServer.resources" /out/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsqlite3-0 libcurl4 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown 65532:65532 /data
COPY --from=build /out/ /usr/local/bin/
ENV GATEHOUSE_HOST=0.0.0.0 \
    GATEHOUSE_PORT=8080 \
    GATEHOUSE_DATABASE=/data/gatehouse.sqlite \
    MALLOC_ARENA_MAX=2
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
