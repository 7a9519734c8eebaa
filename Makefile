# Two commands a newcomer needs: `make serve` and `make test`. Both bootstrap .venv from PyPI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LISTEN ?= 127.0.0.1:50051
STORE ?= sqlite:///$(CURDIR)/var/tidings.sqlite3
PROJECTS := clients/python server $(wildcard plugins/*)

.PHONY: serve test lint typecheck buf proto proto-check unasync unasync-check dist pytest bench clean

$(STAMP): pyproject.toml .ci/constraints.txt $(addsuffix /pyproject.toml,$(PROJECTS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt --group dev $(addprefix -e ,$(patsubst clients/python,'clients/python[console]',$(PROJECTS)))
	touch $(STAMP)

## serve: start a local server on $(LISTEN) with its SQLite file under var/ (http and local
## destinations allowed, since receivers on this machine are what a local server talks to);
## hooks' secrets are encrypted under var/secrets.key, made (mode 0600) on the first run.
## A taken port is reported in one line; pick another with `make serve LISTEN=127.0.0.1:50052`.
## Callers are not authenticated (--no-auth, loopback only; the server says so at start).
SECRETS_KEY ?= var/secrets.key
serve: $(STAMP)
	@mkdir -p var
	@$(BIN)/tidings-server secrets init-key --if-missing $(SECRETS_KEY)
	@$(BIN)/tidings-server serve --listen $(LISTEN) --store $(STORE) --allow-http --allow-private-destinations \
		--secrets-key-file $(SECRETS_KEY) --no-auth

## test: lint, type checks, buf lint, generated-code freshness (proto, blocking client), then the whole test suite.
test: lint typecheck buf proto-check unasync-check pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

buf:
	npx --yes @bufbuild/buf@1.75.0 lint

proto: $(STAMP)
	$(BIN)/python .ci/gen_proto.py

proto-check: $(STAMP)
	$(BIN)/python .ci/gen_proto.py --check

## unasync: write the blocking client (client.py) from the asyncio one (aio.py), its one source.
unasync: $(STAMP)
	$(BIN)/python .ci/unasync.py

unasync-check: $(STAMP)
	$(BIN)/python .ci/unasync.py --check

## pytest: the test suite on $(PYTEST_WORKERS) pytest-xdist workers (most tests wait on servers,
## receivers and subprocesses, so 4 workers on 2 cores take ~6 min, not ~20 serially). Serially:
## `make pytest PYTEST_ARGS=-n0`; a later -n in PYTEST_ARGS wins.
PYTEST_WORKERS ?= 4
pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

## dist: the wheel and sdist of every distribution (server, client, plugins) into dist/.
dist: $(STAMP)
	@rm -rf dist
	@for project in $(PROJECTS); do $(BIN)/python -m build --quiet --outdir dist $$project || exit 1; done
	@ls dist

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var dist
