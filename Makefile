# plancache: `make run` sets everything up and starts a server with the demo
# collection; `make test` sets everything up and runs the tests.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROTOS := $(wildcard proto/plancache/v1/*.proto)
DATA   ?= ../shared/data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run serve test proto proto-check lint typecheck replay bench-store bench-quality clean

install: $(STAMP)

# torch first, pinned, so the CPU build on this kind of machine is what the
# resolver sees; then the project and its dev tools in editable mode.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(VENV)/bin/plancache serve

serve: run

proto: install
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. $(PROTOS)

# Regenerates into a scratch folder and fails when the committed code differs.
proto-check: install
	@rm -rf .proto-check && mkdir -p .proto-check
	@$(PY) -m grpc_tools.protoc -Iproto --python_out=.proto-check --grpc_python_out=.proto-check --pyi_out=.proto-check $(PROTOS)
	@diff -r -x __init__.py -x __pycache__ .proto-check/plancache/v1 plancache/v1 \
		|| (rm -rf .proto-check; echo "generated code in plancache/v1 is stale: run 'make proto' and commit"; exit 1)
	@rm -rf .proto-check
	@echo "generated code is up to date"

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy plancache planner executor

test: install proto-check lint typecheck
	$(PY) -m pytest -q

replay: install
	$(VENV)/bin/plancache replay $(DATA)/bitext-customer-support/customer_support_sample.csv --collection customer-support

bench-store: install
	$(PY) -m bench.store

bench-quality: install
	$(PY) -m bench.quality --data $(DATA)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .proto-check *.egg-info
