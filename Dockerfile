# syntax=docker/dockerfile:1.7
# The API's container: the gateway (PID 1), which serves the Lambda Runtime
# API to the same function binaries that run on AWS Lambda. The real AWS
# Lambda Runtime Interface Emulator rides along as the reference mode
# (KF_EMULATOR=rie), at the exact version the tests use.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t kf-api:1.0.0 .
#
# Both architectures build on the build machine's own (zig cross-links against
# the glibc of Amazon Linux 2023, the runtime image), so there is no emulation.

ARG RUST_VERSION=1.95.0
ARG GO_VERSION=1.26
# The RIE's pinned pseudo-version (its tags are not semver): the same as the
# Makefile's RIE_VERSION, which a test keeps equal.
ARG RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d

# The RIE, built from source for the target architecture.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS rie
ARG TARGETARCH
ARG RIE_VERSION
RUN CGO_ENABLED=0 GOOS=linux GOARCH="$TARGETARCH" \
    go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@${RIE_VERSION}" \
 && install -D -m 0555 "$(find /go/bin -type f -name aws-lambda-rie)" /out/aws-lambda-rie

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS chef
# Debian's stable archive changes only by security fixes: pinning its versions
# would only break the build when one lands.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
# zig and cargo-zigbuild at the versions `make test-shipped` tests with.
COPY tools/requirements-cross.txt /tmp/requirements-cross.txt
RUN python3 -m venv /opt/zig \
 && /opt/zig/bin/pip install --no-cache-dir -r /tmp/requirements-cross.txt \
 && cargo install cargo-chef --locked --version 0.1.78 \
 && rustup target add x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
ENV PATH=/opt/zig/bin:$PATH
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG TARGETARCH
# The target triple, with glibc 2.34 (Amazon Linux 2023's), from the script
# that also builds the image's binaries below and in `make test-shipped`.
COPY tools/cross.sh tools/cross.sh
RUN tools/cross.sh triple "$TARGETARCH" > /target
COPY --from=planner /src/recipe.json recipe.json
# The dependency layer: rebuilt only when the dependencies change.
# cargo-zigbuild writes target/<triple without the glibc suffix>/, but
# cargo-chef's cleanup looks in target/<triple with it>/ and fails
# (cargo-chef issue #367, open): the suffixed name is made a link to the
# directory zigbuild really uses.
RUN triple="$(cat /target)" \
 && mkdir -p "target/${triple%%.*}" \
 && ln -s "${triple%%.*}" "target/$triple" \
 && cargo chef cook --release --locked --zigbuild --target "$triple" --recipe-path recipe.json
COPY . .
# The layout the gateway expects, which `make stage` lays out on the host with
# the same script: /opt/kf-api/gateway, /opt/kf-api/template.yaml (which names
# the functions, their routes and limits) and /opt/kf-api/functions/<name>/bootstrap
# for every function crate under functions/ (a test keeps them equal to the
# template's functions). `make test-shipped` tests this output, taken out of
# the built image, amd64 natively and arm64 under qemu.
RUN tools/cross.sh image "$TARGETARCH" /out

# Amazon's Lambda base image: the Lambda runtime environment. The same image
# also deploys to AWS Lambda as a container image: there AWS_LAMBDA_RUNTIME_API
# is set and the gateway execs the function named by the image command (e.g.
# ["hello"]) instead. The RIE the base image ships is not used: the pinned one
# is at /opt/kf-api/aws-lambda-rie.
# --platform=$TARGETPLATFORM is the default for docker and newer buildah, but
# buildah 1.28 (Debian 12's, which `make image` uses) otherwise looks this base
# up for the build stages' platform, so an arm64 build fails.
# hadolint ignore=DL3065
FROM --platform=$TARGETPLATFORM public.ecr.aws/lambda/provided:al2023 AS runtime
LABEL org.opencontainers.image.title="kf-api" \
      org.opencontainers.image.description="Largest prime factor API: Lambda functions behind an HTTP gateway" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder --chmod=0555 /out/ /opt/kf-api/
COPY --from=rie --chmod=0555 /out/aws-lambda-rie /opt/kf-api/aws-lambda-rie
ENV KF_LISTEN=0.0.0.0:8080 \
    KF_ADMIN_LISTEN=0.0.0.0:9090 \
    KF_PROBE_LISTEN=0.0.0.0:9091 \
    KF_FUNCTIONS_DIR=/opt/kf-api/functions \
    KF_TEMPLATE=/opt/kf-api/template.yaml \
    KF_EMULATOR=builtin \
    KF_RIE=/opt/kf-api/aws-lambda-rie
# Not root; the filesystem can be read-only (nothing is written outside /tmp).
USER 65532:65532
# 8080: the API; 9090: /metrics and Lambda's Invoke API, and 9091: the
# probes alone, neither for the internet.
EXPOSE 8080 9090 9091
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
  CMD ["/opt/kf-api/gateway", "probe", "http://127.0.0.1:9091/healthz"]
ENTRYPOINT ["/opt/kf-api/gateway"]
CMD []
