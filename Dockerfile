# Gatehouse container image: build with the Swift 6.3 toolchain, run on a slim Debian.
#   docker build -t REGISTRY/gatehouse:0.1.0 .      (or podman build, or buildah bud)
#   docker push REGISTRY/gatehouse:0.1.0
# Base images are named in full (docker.io/library/...): podman and buildah refuse short names
# without an alias. No image is published; the Helm chart needs image.repository set to yours.
#
# Without a daemon or a registry to pull from, scripts/build-image.sh builds the same image: the
# run-time file system (this Debian release, image/runtime-packages) with debootstrap, the binary
# installed by image/install.sh, packed by buildah. CI runs it, then the end-to-end script inside
# that file system as user 65532 (.ci/runtime-image.sh).

FROM docker.io/library/swift:6.3-bookworm AS build
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

FROM docker.io/library/debian:bookworm-slim
COPY image/runtime-packages /tmp/runtime-packages
RUN apt-get update \
    && grep -v '^#' /tmp/runtime-packages | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/ /
RUN chown 65532:65532 /data
ENV GATEHOUSE_HOST=0.0.0.0 \
    GATEHOUSE_PORT=8080 \
    GATEHOUSE_DATABASE=/data/gatehouse.sqlite \
    MALLOC_ARENA_MAX=1
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
