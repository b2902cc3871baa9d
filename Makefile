# Pinion: make run | make test | make bench
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PINION_PATH ?= $(HOME)/.pinion

.PHONY: run test test-long bench bench-scale install install-test bytecode clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Compile the project's modules once: every test starts many `pinion` processes, and when the
# environment sets PYTHONDONTWRITEBYTECODE each of them would otherwise compile node/, bitswap/,
# cluster/ and blockstore/ from source again (0.26 s of CPU per daemon start). Python still
# checks each cached file against its source, so an edited module is never run stale.
bytecode: install
	$(BIN)/python -m compileall -q node bitswap cluster blockstore

run: install
	@test -f "$(PINION_PATH)/config.json" || $(BIN)/pinion init
	$(BIN)/pinion daemon

test: install-test bytecode
	$(BIN)/python -m pytest -q

# the long tests too (a 1 GiB add inside a 128 MiB cgroup: minutes)
test-long: install-test bytecode
	PINION_LONG_TESTS=1 $(BIN)/python -m pytest -q -m long

bench: install-test bytecode
	$(BIN)/python -m benchmarks

# the rows of the cluster-at-scale table (issue 17), in one run: ingest, status, pin to
# pinned, small gateway responses, a 1 GiB add in 128 MiB, the pinset at 1 M and 10 M pins
bench-scale: install-test bytecode
	$(BIN)/python -m benchmarks.bench_cluster_ingest --pins 10000 --clients 32
	$(BIN)/python -m benchmarks.bench_cluster_pins --status-pins 50000 --pins 1000 --stages
	$(BIN)/python -m benchmarks.bench_gateway --quick
	$(BIN)/python -m benchmarks.bench_memory
	$(BIN)/python -m benchmarks.bench_state_scale

clean:
	rm -rf $(VENV) build *.egg-info
	find node bitswap cluster blockstore -name __pycache__ -type d -prune -exec rm -rf {} +

# make fuzz [FUZZ_SECONDS=60]: each atheris harness of fuzz/run.py for FUZZ_SECONDS
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := car dagpb bitswap delta pin multipart
.PHONY: fuzz
fuzz: install-test
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install -q atheris
	@for t in $(FUZZ_TARGETS); do echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  $(BIN)/python -m fuzz.run $$t $(FUZZ_SECONDS) >$${TMPDIR:-/tmp}/pinion-fuzz-$$t.log 2>&1; rc=$$?; \
	  grep -E "^Done|Uncaught|crash-" $${TMPDIR:-/tmp}/pinion-fuzz-$$t.log; test $$rc -eq 0 || exit $$rc; done
