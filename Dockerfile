# Gatehouse container image: build with the Swift 6.3 toolchain, run on a slim Debian.
#   docker build -t REGISTRY/gatehouse:0.1.0 .
#   docker push REGISTRY/gatehouse:0.1.0
# No image is published; the Helm chart needs image.repository set to yours.
#
# The run-time stage is tested without Docker: .ci/runtime-image.sh builds the same file system
# (this Debian release, image/runtime-packages) with debootstrap, installs the binary with
# image/install.sh, checks it links (ldd) and runs the end-to-end script inside it as user 65532.

FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsqlite3-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first so that source changes reuse the cached layer.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY image ./image
# The Swift runtime is linked in (--static-swift-stdlib); SQLite, libcurl and glibc come from
# the run-time stage's packages.
RUN swift build -c release --product gatehouse --static-swift-stdlib \
    && image/install.sh "$(swift build -c release --show-bin-path)" /out

FROM debian:bookworm-slim
COPY image/runtime-packages /tmp/runtime-packages
RUN apt-get update \
    && grep -v '^#' /tmp/runtime-packages | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/ /
RUN chown 65532:65532 /data
ENV GATEHOUSE_HOST=0.0.0.0 \
    GATEHOUSE_PORT=8080 \
    GATEHOUSE_DATABASE=/data/gatehouse.sqlite \
    MALLOC_ARENA_MAX=2
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
