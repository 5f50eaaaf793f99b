# One entry point for people and CI. Every target installs what it needs.
#   make run    - the container's stack on this host: gateway + functions, http://127.0.0.1:8080 (EMULATOR=rie: through the AWS RIE; INVOKE_AUTH=sigv4 INVOKE_KEYS=file: a signed Invoke API;
#                 PARAMETERS="RequireApiKey=true ApiKeyHashes=id:hash": the template's parameters, here the API key switch)
#   make keygen - a random API key, and its id:hash line for ApiKeyHashes (KEY_ID=name)
#   make invoke-keygen - a random access key for the Invoke API: its ID:SECRET line (--invoke-keys, the kf-api-invoke-keys Secret)
#   make watch  - the functions under cargo lambda watch (rebuilds on change), http://127.0.0.1:9000
#   make test   - formatting, lints, validators, unit tests, end-to-end tests (lint validate unit e2e)
#   make lint / validate / unit / e2e - one part of make test: fmt and clippy / deployment files / the crates' own and Python tests / real processes and cross-file checks
#   make bench  - compute, then the stack over HTTP beside nginx, the protocol's floor and the Python original (results/, README, docs/) [apt: wrk, nginx, valgrind if missing]
#   make loadtest - Locust against the local stack, ramping to 250 users, with charts
#   make build  - release Lambda binaries for arm64 (target/lambda/<fn>/bootstrap)
#   make test-shipped - the binaries as they ship (make build's, the image's two cross-builds) through the contract suite (arm64 under qemu) [apt: qemu-user, arm64 libc, cross gcc]
#   make image  - the Dockerfile built without a daemon (buildah): target/oci/kf-api-{amd64,arm64}.tar (ARCHS="amd64") [apt: buildah, runc, debootstrap, ...; qemu-user]
#   make k8s-test - the manifests on a real control plane (kwok's simulated nodes), then the image on a real node (kubelet, containerd, kube-proxy) [apt: as image]
#   make k8s-node - a real one-node cluster with the image, for docs/deploy-kubernetes.md's minikube guide (root, Linux; make k8s-node-down stops it) [apt: as image]
#   make sam-build - sam build (what sam deploy uploads), offline
#   make stage  - the image's /opt/kf-api laid out under target/image, from native release binaries (tools/cross.sh stage)
#   make clean  - removes what the targets made: target/, the venvs, .tools/ (pinned tools, stand-in bases, the node), .aws-sam/
#   [apt: ...] marks the targets that install Debian packages (with sudo unless root) the first time.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
TOOLS_OK  := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_OK   := $(CHECKOV_VENV)/.installed
LOADTEST_VENV := .venv-loadtest
LOADTEST_OK   := $(LOADTEST_VENV)/.installed
# The Python original's equivalent, which make bench measures beside the stack.
ORIGINAL_VENV := .venv-original
ORIGINAL_OK   := $(ORIGINAL_VENV)/.installed
# qemu-user and the arm64 C library (Debian multiarch), to run arm64
# binaries here; the arm64 cross linker, to link arm64 test binaries.
QEMU_OK    := .tools/qemu.stamp
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)
SHIPPED    := target/shipped
export LOCUST := $(CURDIR)/$(LOADTEST_VENV)/bin/locust
# Kubernetes versions the manifests must validate against: the oldest
# supported here and the newest kubernetes-validate ships.
K8S_VERSIONS := 1.30.0 1.37.0
# SAM and the AWS tools: no telemetry, a region for offline validation.
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
# The AWS Lambda Runtime Interface Emulator, built from source at a pinned
# commit (its tags are not semver, so the pin is a pseudo-version).
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
RIE         := .tools/bin/aws-lambda-rie
RIE_STAMP   := .tools/rie-$(RIE_VERSION).stamp
GO          ?= $(shell command -v go || echo /usr/local/go/bin/go)
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.tools/bin:$(PATH):/usr/sbin
export AWS_LAMBDA_RIE := $(CURDIR)/$(RIE)
# Under make, a test whose tool is missing fails; a plain `cargo test` on a
# fresh clone skips it and says that `make test` installs it.
export KF_REQUIRE_TOOLS := 1

HOST ?= 127.0.0.1
# builtin: the gateway serves the Lambda Runtime API itself; rie: through the
# real AWS Lambda Runtime Interface Emulator (the reference).
EMULATOR ?= builtin
WATCH_PORT ?= 9000
PORT ?= 8080
ADMIN_PORT ?= 9090
# The template's parameters for `make run`, as `sam deploy --parameter-overrides`
# takes them.
PARAMETERS ?=
KEY_ID ?= default
# `make run`'s Invoke API: none (unsigned calls, local work) or sigv4 with
# the keys of INVOKE_KEYS (a file of make invoke-keygen's lines).
INVOKE_AUTH ?= none
INVOKE_KEYS ?=
IMAGE_DIR := target/image/opt/kf-api

ARCHS ?= amd64 arm64
IMAGE_ARCHIVE := target/oci/kf-api-amd64.tar
# What building the image and running a real node need: Debian's buildah,
# runc, CNI plugins, iptables and debootstrap (the stand-in bases).
NODE_OK := .tools/node-packages.stamp
NODE_DIR := .tools/k8s-node

.PHONY: help tools run image k8s-node k8s-node-down keygen invoke-keygen watch stage test test-shipped k8s-test lint validate unit e2e test-summary bench loadtest build sam-build clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

# Each venv is made from its pins and remade when they change: the target is
# <venv>/.installed, the first prerequisite its requirements file. Three, as
# their pins conflict: the tools (aws-sam-cli, cargo-lambda, cfn-lint, ...),
# checkov, Locust with matplotlib, and the Python original's FastAPI stack
# (make bench's peer).
define make-venv
python3 -m venv $(@D)
$(@D)/bin/pip install --quiet --disable-pip-version-check -r $<
endef

# The tools, and the Rust components and arm64 target (Lambda's Graviton) too.
$(TOOLS_OK): tools/requirements.txt
	$(make-venv)
	rustup component add rustfmt clippy
	rustup target add aarch64-unknown-linux-gnu
	touch $@

$(CHECKOV_OK): tools/requirements-checkov.txt
	$(make-venv)
	touch $@

$(LOADTEST_OK): tools/requirements-loadtest.txt
	$(make-venv)
	touch $@

$(ORIGINAL_OK): tools/requirements-original.txt
	$(make-venv)
	touch $@

$(QEMU_OK):
	$(SUDO) dpkg --add-architecture arm64
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	  qemu-user libc6:arm64 libgcc-s1:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils >/dev/null
	mkdir -p $(dir $@) && touch $@

$(NODE_OK):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	  buildah runc containernetworking-plugins iptables debootstrap conntrack curl openssl gcc libc6-dev >/dev/null
	mkdir -p $(dir $@) && touch $@

$(RIE_STAMP):
	GOBIN=$(CURDIR)/.tools/bin GOFLAGS=-mod=mod $(GO) install \
	  github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)
	touch $@

tools: $(TOOLS_OK) $(RIE_STAMP) $(CHECKOV_OK) $(LOADTEST_OK)

run: stage $(if $(filter rie,$(EMULATOR)),$(RIE_STAMP))
	@echo "The Invoke API on :$(ADMIN_PORT): $(if $(filter none,$(INVOKE_AUTH)),unsigned calls from anyone who reaches it (INVOKE_AUTH=none; INVOKE_AUTH=sigv4 INVOKE_KEYS=file asks for signatures),calls signed with a key of $(INVOKE_KEYS))"
	KF_PARAMETER_OVERRIDES="$(PARAMETERS)" $(IMAGE_DIR)/gateway --listen $(HOST):$(PORT) --admin-listen $(HOST):$(ADMIN_PORT) \
	  --invoke-auth $(INVOKE_AUTH) $(if $(INVOKE_KEYS),--invoke-keys $(INVOKE_KEYS)) \
	  --template $(IMAGE_DIR)/template.yaml --functions-dir $(IMAGE_DIR)/functions \
	  --emulator $(EMULATOR) --rie $(RIE) --log-format text --function-log-format text

# An access key for the Invoke API (--invoke-keys, the kf-api-invoke-keys
# Secret), from the system's CSPRNG: give the client the id and the secret
# (as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), the pod the line.
invoke-keygen:
	@python3 -c 'import secrets, string; a = string.ascii_uppercase + string.digits; \
	key_id = "KFAPI" + "".join(secrets.choice(a) for _ in range(15)); \
	print(key_id + ":" + secrets.token_urlsafe(30))'

# A key from the system's CSPRNG; only its SHA-256 goes into configuration.
keygen:
	@python3 -c 'import hashlib, secrets; key = "kf_" + secrets.token_urlsafe(32); \
	print("key (give it to the client; it is not stored anywhere):", key); \
	print("hash line (ApiKeyHashes, or the Secret):", "$(KEY_ID):" + hashlib.sha256(key.encode()).hexdigest())'

watch: $(TOOLS_OK)
	cargo lambda watch --invoke-address $(HOST) --invoke-port $(WATCH_PORT)

# The image's /opt/kf-api from native release binaries, laid out by the
# script the Dockerfile runs: the gateway, the template, and every function
# crate's binary.
stage:
	tools/cross.sh stage $(IMAGE_DIR)

test: lint validate unit e2e

lint: $(TOOLS_OK)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Every deployment file through the real tools. checkov's skips each carry
# their reason next to the resource they concern.
validate: $(TOOLS_OK) $(CHECKOV_OK)
	sam validate --lint
	cfn-lint template.yaml
	hadolint Dockerfile
	mkdir -p target/k8s
	for overlay in minikube gke per-function api-key; do \
	  kubectl kustomize k8s/overlays/$$overlay > target/k8s/$$overlay.yaml; \
	  for version in $(K8S_VERSIONS); do \
	    kubernetes-validate --strict --quiet -k $$version target/k8s/$$overlay.yaml; \
	    echo "k8s/overlays/$$overlay: valid for Kubernetes $$version (strict)"; \
	  done; \
	done
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download -d k8s --framework kustomize
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download -f Dockerfile --framework dockerfile
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download -f template.yaml --framework cloudformation

sam-build: $(TOOLS_OK)
	sam build

# The crates' own tests (the gateway in-process included) and the Python tools'.
unit: $(TOOLS_OK) $(LOADTEST_OK) $(ORIGINAL_OK)
	mkdir -p target
	@# The load test's own checks and the cost model's (its chart needs
	@# matplotlib), with Locust's environment; then the SAM
	@# template expanded as CloudFormation would (samtranslator, in the
	@# tools' environment with aws-sam-cli).
	cd tools/tests && PYTHONPATH=$(CURDIR) $(CURDIR)/$(LOADTEST_VENV)/bin/python -m unittest -v \
	  test_locustfile test_cost 2>&1 | tee $(CURDIR)/target/unittest.log
	cd tools/tests && $(CURDIR)/$(VENV)/bin/python -m unittest -v test_template test_check_artifacts test_hpa 2>&1 \
	  | tee -a $(CURDIR)/target/unittest.log
	@# The Python original's equivalent that make bench measures, in its own venv.
	cd tools/tests && $(CURDIR)/$(ORIGINAL_VENV)/bin/python -m unittest -v test_original 2>&1 \
	  | tee -a $(CURDIR)/target/unittest.log
	cargo test --workspace --exclude e2e --locked 2>&1 | tee target/test.log

# The e2e crate: the gateway, the functions, the RIE and cargo lambda watch as
# real processes (it builds the workspace's binaries first), a short Locust
# session, and the checks that hold files in step (pins, routes, template).
e2e: $(TOOLS_OK) $(RIE_STAMP) $(LOADTEST_OK)
	mkdir -p target
	rm -rf target/reliability
	cargo test -p e2e --locked 2>&1 | tee target/e2e.log
	@# The attack tests' figures, for the README's reliability table.
	python3 tools/results.py record reliability target/reliability
	python3 tools/results.py render
	@$(MAKE) --no-print-directory test-summary

# Adds up cargo's per-binary "test result" lines and unittest's "Ran N tests",
# over the logs of whichever of unit and e2e ran.
test-summary:
	@awk '/^test result:/ {p += $$4; f += $$6} /^Ran [0-9]+ tests? in/ {p += $$2} \
	  END {printf "tests: %d passed, %d failed\n", p, f}' $(wildcard target/test.log target/e2e.log target/unittest.log) /dev/null
	@if ls $(SHIPPED)/*.log >/dev/null 2>&1; then \
	  awk '/^test result:/ {p += $$4; f += $$6} \
	    END {printf "shipped binaries (make test-shipped): %d passed, %d failed\n", p, f}' $(SHIPPED)/*.log; \
	fi

# Compute (divan), then the stack over HTTP in both emulator modes beside its
# peers, all in one run: nginx (the HTTP ceiling), the protocol's floor
# (e2e/src/bin/floor.rs) and the Python original's equivalent
# (tools/original); wrk on one CPU, the servers on the other, trials
# interleaved. Both land in results/results.json, and the README's and docs'
# tables are rendered from it.
bench: stage $(RIE_STAMP) $(LOADTEST_OK) $(ORIGINAL_OK)
	mkdir -p target/bench
	cargo bench --locked -p shared --bench factor 2>&1 | tee target/bench/compute.txt
	python3 tools/results.py record compute target/bench/compute.txt
	@command -v wrk > /dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
	  || { echo "wrk is needed: apt-get install wrk"; exit 1; }
	@# nginx serving the same /ping bytes is the one-core ceiling the stack is
	@# compared with; without it the bench says the baseline is missing.
	@command -v nginx > /dev/null || { apt-get update -qq && apt-get install -y -qq nginx; } \
	  || echo "nginx not installed: the bench reports its baseline as missing"
	cargo build --release --locked -p e2e --bins
	target/release/stack-bench --seconds 5 --trials 5 --out target/bench/stack.json \
	  --original $(ORIGINAL_VENV)/bin/uvicorn
	python3 tools/results.py record stack target/bench/stack.json
	@# The instructions a request costs the gateway and the floor (callgrind):
	@# the measure that does not drift with the machine.
	@command -v valgrind > /dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; } \
	  || { echo "valgrind is needed: apt-get install valgrind"; exit 1; }
	python3 tools/instructions.py $(IMAGE_DIR) target/release/floor target/bench/instructions.json
	python3 tools/results.py record instructions target/bench/instructions.json
	python3 tools/results.py render
	@# The cost chart (FaaS or containers, in money) from the same numbers;
	@# matplotlib is in the load test's venv.
	$(LOADTEST_VENV)/bin/python tools/results.py cost

# Locust against the local stack: a ramp to 250 users (about 90 s), its CSV
# and HTML report in target/loadtest, charts in docs/loadtest, numbers in
# results/results.json, the README and docs/.
loadtest: stage $(RIE_STAMP) $(LOADTEST_OK)
	$(LOADTEST_VENV)/bin/python tools/loadtest.py --out target/loadtest --charts docs/loadtest
	python3 tools/results.py record loadtest target/loadtest/summary.json
	python3 tools/results.py render

# The binaries users ship, tested as built: `make build`'s arm64 Lambda
# artifacts (behind this machine's gateway, each under qemu-aarch64) and the
# image's two builds (make image's archives, whose Dockerfile runs
# tools/cross.sh: amd64 natively, arm64 gateway and functions under qemu). Each set must fit
# provided.al2023 (glibc 2.34, no library it lacks), then passes the
# gateway's contract suite; the factoring's property tests run on arm64 too.
CONTRACT := builtin::serves_the_api_and_its_own_endpoints \
  builtin::the_authorizer_guards_hello_when_switched_on \
  builtin::sigterm_lets_in_flight_requests_finish_and_exits_0 \
  builtin::prewarm_starts_every_function_before_traffic \
  a_pod_can_serve_a_subset_of_the_functions \
  an_extra_function_in_the_template_is_served_by_the_unchanged_gateway
test-shipped: build $(QEMU_OK)
	mkdir -p $(SHIPPED)
	@# The image's own binaries, taken out of the archives make image built
	@# (the Dockerfile runs tools/cross.sh), so the binaries tested are the
	@# image's; built first if missing.
	for arch in amd64 arm64; do \
	  test -f target/oci/kf-api-$$arch.tar || $(MAKE) --no-print-directory image ARCHS=$$arch; \
	  tools/image.sh extract $$arch $(SHIPPED)/image-$$arch; \
	done
	python3 tools/check_artifacts.py --max-glibc 2.34 target/lambda/*/bootstrap \
	  $(SHIPPED)/image-*/gateway $(SHIPPED)/image-*/functions/*/bootstrap
	@# The 128-bit Montgomery arithmetic on the architecture Lambda uses.
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64 \
	  cargo test --locked -p shared --target aarch64-unknown-linux-gnu 2>&1 | tee $(SHIPPED)/shared-arm64.log
	@# Each run must have run every selected test: a renamed test would
	@# otherwise match nothing under --exact and pass by running none.
	KF_SHIPPED_IMAGE=$(SHIPPED)/image-amd64 cargo test --locked -p e2e --test gateway -- --exact $(CONTRACT) \
	  2>&1 | tee $(SHIPPED)/image-amd64.log
	grep -q "^test result: ok. $(words $(CONTRACT)) passed" $(SHIPPED)/image-amd64.log
	KF_SHIPPED_IMAGE=$(SHIPPED)/image-arm64 cargo test --locked -p e2e --test gateway -- --exact $(CONTRACT) \
	  2>&1 | tee $(SHIPPED)/image-arm64.log
	grep -q "^test result: ok. $(words $(CONTRACT)) passed" $(SHIPPED)/image-arm64.log
	KF_SHIPPED_FUNCTIONS=target/lambda cargo test --locked -p e2e --test gateway -- --exact $(CONTRACT) \
	  2>&1 | tee $(SHIPPED)/lambda-arm64.log
	grep -q "^test result: ok. $(words $(CONTRACT)) passed" $(SHIPPED)/lambda-arm64.log

# The manifests against a real Kubernetes control plane on 127.0.0.1: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and metrics-server,
# built from the Go module proxy at tools/k8s/versions.env's pins into
# .tools/k8s (about 9 minutes the first time, then it starts in about 10 s),
# with kwok simulating the nodes, the pods and their CPU use. Go is $(GO); if
# there is none, tools/k8s/build.sh fetches the pinned toolchain from the
# module proxy. .ci/run runs it after the rest.
k8s-test: $(LOADTEST_OK) $(NODE_OK)
	mkdir -p target
	rm -f target/k8s-hpa.json target/k8s-node.json
	GO=$(GO) tools/k8s/test.sh 2>&1 | tee target/k8s-test.log
	@# The HPA's settled counts (absent when K8S_HPA=0 skipped the simulation).
	if test -f target/k8s-hpa.json; then python3 tools/results.py record hpa target/k8s-hpa.json; fi
	@# The image on a real node (tools/k8s/node-test.sh), built first if missing.
	test -f $(IMAGE_ARCHIVE) || $(MAKE) --no-print-directory image ARCHS=amd64
	GO=$(GO) tools/k8s/node-test.sh $(IMAGE_ARCHIVE) 2>&1 | tee target/k8s-node-test.log
	python3 tools/results.py record node target/k8s-node.json
	python3 tools/results.py render

# The Dockerfile, built by buildah (no daemon) into OCI archives; base
# images a registry cannot give are stood in locally, and it says so.
image: $(NODE_OK) $(QEMU_OK) $(TOOLS_OK)
	tools/image.sh build $(ARCHS)
	@# The image's config against what the manifests expect of it.
	for arch in $(ARCHS); do $(VENV)/bin/python tools/check_image.py target/oci/kf-api-$$arch.tar; done

# A real one-node cluster (tools/k8s/node.sh) with the image imported, in
# namespaces of its own; `tools/k8s/node.sh run $(NODE_DIR) bash` opens a
# shell inside it, with kubectl and KUBECONFIG set.
k8s-node: $(NODE_OK)
	test -f $(IMAGE_ARCHIVE) || $(MAKE) --no-print-directory image ARCHS=amd64
	GO=$(GO) tools/k8s/node.sh up $(NODE_DIR) $(IMAGE_ARCHIVE)

k8s-node-down:
	tools/k8s/node.sh down $(NODE_DIR)

# Every function crate (the gateway and the tests are not Lambda functions).
build: $(TOOLS_OK)
	cargo lambda build --release --arm64 --locked --workspace --exclude gateway --exclude e2e

clean:
	cargo clean
	-tools/k8s/node.sh down $(NODE_DIR)
	rm -rf $(VENV) $(CHECKOV_VENV) $(LOADTEST_VENV) $(ORIGINAL_VENV) .tools .aws-sam
