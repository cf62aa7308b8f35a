# otbtf_qgis — every target is idempotent and works on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
REQ_STAMP := $(VENV)/.requirements-stamp
DEB_PACKAGES := qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-venv
PLUGINS := build/plugins
PROFILE := build/profile
QGIS_INI := $(PROFILE)/profiles/default/QGIS/QGIS3.ini
PYTEST_CORE := $(PY) -m pytest -p no:pytest_qgis -p no:cacheprovider tests/core tests/scripts tests/test_architecture.py tests/test_readme.py
PYTEST_QGIS := $(PY) -m pytest -p no:cacheprovider tests/processing
export QT_QPA_PLATFORM := offscreen

.PHONY: help setup setup-otb system plugin-dev test test-all lint package demo bench clean

help:
	@echo "make setup     install Debian packages, .venv (TensorFlow), the development plugin and profile"
	@echo "make setup-otb optional: Debian's OTB, its Python API built for it, pyotb, QGIS's otb provider"
	@echo "make test      setup, then the test suite (fast tests)"
	@echo "make test-all  setup, then every test including the slow ones"
	@echo "make lint      ruff and mypy"
	@echo "make package   build otbtf_qgis.zip (the plugin to install in QGIS)"
	@echo "make demo      setup, then the main job end to end on a real Landsat scene (demo-output/)"
	@echo "make bench     performance benchmarks, written to bench/RESULTS.md"

setup: system $(REQ_STAMP) plugin-dev

system:
	@scripts/install-system-packages.sh $(DEB_PACKAGES)

$(PY): | system
	$(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)

$(REQ_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# Optional OTB interop (see scripts/setup-otb.sh); CI runs it so the OTB tests run there.
setup-otb: setup
	@scripts/setup-otb.sh

plugin-dev: | $(PY)
	@$(PY) scripts/assemble_plugin.py --dev $(PLUGINS) >/dev/null
	@grep -qs '^otbtf_qgis=true' $(QGIS_INI) || scripts/qgis_process plugins enable otbtf_qgis >/dev/null

test: setup
	$(PYTEST_CORE) -m "not slow"
	$(PYTEST_QGIS) -m "not slow"

test-all: setup
	$(PYTEST_CORE)
	$(PYTEST_QGIS)

lint: setup
	$(PY) -m ruff check otbtf_qgis tests scripts bench demo
	$(PY) -m mypy

package:
	$(SYSTEM_PYTHON) scripts/assemble_plugin.py --zip otbtf_qgis.zip

# The main job on a real Landsat 8 scene: fetch (cached), sample, extract, TFRecords, train, serve, report.
demo: setup
	$(PY) demo/run_demo.py --output demo-output

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf build otbtf_qgis.zip .mypy_cache .ruff_cache
