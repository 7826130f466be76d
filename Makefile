# The two commands of the README: `make run` installs everything and starts the gateway,
# `make test` runs the whole test suite. Both work on a fresh Debian 12 machine as root.
PYTHON ?= python3
VENV ?= .venv
APT_PACKAGES = debootstrap baresip python3-venv ca-certificates chromium chromium-driver

.PHONY: run test install system-packages venv asterisk image-test

run: install
	$(VENV)/bin/tgtrunk serve --simulate-telegram

test: install
	$(VENV)/bin/pytest

install: system-packages venv asterisk

system-packages:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "==> installing system packages: $(APT_PACKAGES)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing tgtrunk with its dependencies"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

asterisk: venv
	$(VENV)/bin/tgtrunk asterisk install

# Not part of `make test`: builds the container image and checks it end to end (figures in the README).
image-test: venv
	PYTHON=$(VENV)/bin/python scripts/image-test.sh
