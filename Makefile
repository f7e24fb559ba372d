# Two commands on a fresh machine:  `make run` (serve on the embedded SQLite store)  and  `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export TF_CPP_MIN_LOG_LEVEL ?= 2
# The MNIST files beside the repo, if present; elsewhere Keras downloads MNIST.
ifneq ($(wildcard ../shared/mnist/t10k-images-idx3-ubyte.gz),)
export MNIST_DATA_DIR ?= $(abspath ../shared/mnist)
endif

# The servers `make test` starts for the suite, on ports of their own so a `make services` may run beside.
TEST_SERVICES_ENV := CASSANDRA_PORT=19042 CASSANDRA_STORAGE_PORT=17000 CASSANDRA_JMX_PORT=17199 \
	CASSANDRA_DIR=$(CURDIR)/.cache/test-services/cassandra REDIS_PORT=16379 REDIS_DIR=$(CURDIR)/.cache/test-services/redis

# The 3-node cluster `make test` starts for tests/test_cluster.py: its own addresses, JMX ports and folder,
# so a `make cluster` (127.0.1.1-3) may run beside it. Not CLUSTER_UNSAFE_SYSTEM: the tests SIGKILL nodes,
# and a node killed before it flushed its system tables comes back without the tests' keyspace.
TEST_CLUSTER_ENV := CLUSTER_HOSTS=127.0.2.1,127.0.2.2,127.0.2.3 CLUSTER_JMX_PORT=17301 \
	CLUSTER_DIR=$(CURDIR)/.cache/test-cluster
NODE ?=

# The container image `make image` builds (scripts/image.sh: docker or podman, whichever works).
IMAGE ?= mnist_web:latest

.PHONY: image image-test help run run-proxy fuzz test lint services services-stop cluster cluster-status cluster-stop cluster-node-kill cluster-node-start cluster-nodetool system-deps cassandra-jars train evaluate bench bench-serving assets clean

help:
	@echo "make run       set up and serve http://$(HOST):$(PORT) (SQLite store)"
	@echo "make run-proxy the same behind nginx (slow clients, rate limit, static files): http://$(HOST):$(PORT)"
	@echo "make test      set up everything and run lint + the whole test suite against real servers"
	@echo "make services  start Cassandra 5.0 (127.0.0.1:9042) and Redis (127.0.0.1:6379); make services-stop"
	@echo "make cluster   start a 3-node Cassandra cluster on 127.0.1.1-3:9042; make cluster-status | cluster-stop"
	@echo "               make cluster-node-kill NODE=n (SIGKILL) | cluster-node-start NODE=n (back in the ring)"
	@echo "               make cluster-nodetool NODE=n ARGS=\"repair -full mnist\" (the real nodetool)"
	@echo "make image     build $(IMAGE) with docker or podman; make image-test: build it and smoke-test it"
	@echo "make train | evaluate | bench | bench-serving | assets"

$(VENV)/.runtime: requirements.txt requirements-serve.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py "mnist_web:create_app()"

# nginx in front of gunicorn (on a unix socket); everything nginx writes goes under instance/nginx-$(PORT)/.
run-proxy: $(VENV)/.runtime
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || $(MAKE) system-deps
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python scripts/run_proxy.py

# 100,000 fuzzed requests (FUZZ_REQUESTS=N for another count) against a gunicorn it starts; prints status counts.
fuzz: $(VENV)/.dev
	$(BIN)/python benchmarks/fuzz.py

system-deps:
	bash scripts/install_system_deps.sh

cassandra-jars: $(VENV)/.dev system-deps
	$(BIN)/python scripts/services.py fetch

services: $(VENV)/.dev system-deps
	$(BIN)/python scripts/services.py start

services-stop:
	$(BIN)/python scripts/services.py stop

# Three Cassandra 5.0 nodes on 127.0.1.1-3 (scripts/svc_cluster.py); prints the ring and the cassandra:// URL.
cluster: $(VENV)/.dev cassandra-jars
	$(BIN)/python scripts/services.py cluster start

cluster-status:
	$(BIN)/python scripts/services.py cluster status

cluster-stop:
	$(BIN)/python scripts/services.py cluster stop

cluster-node-kill:
	@test -n "$(NODE)" || { echo "usage: make cluster-node-kill NODE=n"; exit 2; }
	$(BIN)/python scripts/services.py cluster kill $(NODE)

cluster-node-start:
	@test -n "$(NODE)" || { echo "usage: make cluster-node-start NODE=n"; exit 2; }
	$(BIN)/python scripts/services.py cluster start-node $(NODE)

# The real nodetool against node n: make cluster-nodetool NODE=2 ARGS="repair -full mnist"
cluster-nodetool:
	@test -n "$(NODE)" || { echo "usage: make cluster-nodetool NODE=n ARGS=\"status\""; exit 2; }
	$(BIN)/python scripts/services.py cluster nodetool $(NODE) $(or $(ARGS),status)

lint: $(VENV)/.dev
	$(BIN)/ruff check .

test: $(VENV)/.dev system-deps cassandra-jars lint
	$(TEST_SERVICES_ENV) $(BIN)/python scripts/services.py start
	status=0; \
	$(TEST_CLUSTER_ENV) $(BIN)/python scripts/services.py cluster start || status=$$?; \
	$(TEST_CLUSTER_ENV) MNIST_TEST_CLUSTER_URL="$$($(TEST_CLUSTER_ENV) $(BIN)/python scripts/services.py cluster url)" \
	MNIST_TEST_CASSANDRA_URL=cassandra://127.0.0.1:19042/mnist MNIST_TEST_REDIS_URL=redis://127.0.0.1:16379/0 \
		$(BIN)/python -m pytest -p no:cacheprovider || status=$$?; \
	$(TEST_CLUSTER_ENV) $(BIN)/python scripts/services.py cluster stop || true; \
	$(TEST_SERVICES_ENV) $(BIN)/python scripts/services.py stop || true; \
	$(MAKE) --no-print-directory image-test || status=$$?; \
	exit $$status

image:
	IMAGE=$(IMAGE) bash scripts/image.sh build

# Builds the image, then runs it and checks it (tests/test_image.py; see the README's Docker section).
image-test: $(VENV)/.dev image
	IMAGE=$(IMAGE) $(BIN)/python -m pytest -p no:cacheprovider -m image tests/test_image.py

train: $(VENV)/.dev
	$(BIN)/python train_keras.py

evaluate: $(VENV)/.runtime
	$(BIN)/flask --app mnist_web evaluate

bench: $(VENV)/.runtime
	$(BIN)/python benchmarks/bench_predict.py

# Serving under load with wrk: constant endpoint, SQLite, Cassandra (BENCH_ARGS="--duration 10 --warmup 5" for a quick run).
bench-serving: $(VENV)/.dev system-deps cassandra-jars
	$(BIN)/python benchmarks/bench_serving.py $(BENCH_ARGS)

assets:
	bash scripts/vendor_assets.sh

clean:
	rm -rf .cache/test-services .cache/test-cluster instance .pytest_cache .ruff_cache
