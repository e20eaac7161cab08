# Two commands: `make run` (install and start everything) and `make test` (install and run the suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
REFERENCE_MODEL := models/reference/ppocrv4_mobile_rec.onnx

.PHONY: run test install install-dev system-deps system-deps-test models lint clean

run: install system-deps models
	$(PY) scripts/run_platform.py

test: install-dev system-deps-test models
	$(PY) -m pytest

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-train: requirements/base.txt requirements/train.txt | $(VENV)/bin/python
	$(PIP) install -r requirements/train.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-train requirements/dev.txt
	$(PIP) install -r requirements/dev.txt
	touch $@

install: $(VENV)/.installed-train
install-dev: $(VENV)/.installed-dev

system-deps:
	scripts/system-deps.sh run

system-deps-test:
	scripts/system-deps.sh test

# The reference recogniser ships inside a PyPI wheel; repackage it with our metadata.
models: $(REFERENCE_MODEL)

# rebuilt when the packaging code changes (the metadata it writes)
$(REFERENCE_MODEL): distill/export.py | $(VENV)/.installed-train
	$(PIP) install --no-deps rapidocr-onnxruntime==1.4.4
	$(PY) -m distill import-reference --out $@

clean:
	rm -rf $(VENV) var .pytest_cache test-artifacts
