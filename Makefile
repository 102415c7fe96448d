# Broadcaster: `make run` starts a dev server, `make test` runs every test CI runs.
# Both install what they need from Debian's packages first (scripts/install-deps.sh, idempotent).

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
PYTHON     ?= /usr/bin/python3
JOBS       ?= $(shell nproc)

# `make install` layout (DESTDIR for staged installs and packages).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DATADIR    ?= $(PREFIX)/share/broadcaster
DOCDIR     ?= $(PREFIX)/share/doc/broadcaster
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

.PHONY: all deps build run test unit integration asan tsan js e2e bench fuzz console format clean install uninstall

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@ninja -C $(BUILD)

# A dev server on 127.0.0.1:8000; its web console (built into the binary) is at /broadcaster/console/.
run: build
	./$(BUILD)/broadcaster --dev

# For work on the console itself: the page and the SDK as they are now, assembled into $(BUILD)/console-dev and
# served from there (--console-dir) instead of from the binary. Run it again after an edit.
console: build
	@bash clients/js/scripts/assemble-console.sh $(BUILD)/console-dev
	./$(BUILD)/broadcaster --dev --console-dir $(BUILD)/console-dev

unit: build
	ctest --test-dir $(BUILD) -L 'unit|smoke' --output-on-failure -j$(JOBS)

integration: build
	BROADCASTER_BIN=$(abspath $(BUILD))/broadcaster $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The unit and integration suites again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBROADCASTER_SANITIZE=address -DBROADCASTER_BENCH=OFF >/dev/null
	@ninja -C $(BUILD_ASAN)
	ctest --test-dir $(BUILD_ASAN) -L unit --output-on-failure -j$(JOBS)
	BROADCASTER_BIN=$(abspath $(BUILD_ASAN))/broadcaster BROADCASTER_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# ThreadSanitizer: the unit tests, and the integration tests where threads meet (fan-out across shards,
# shutdown, slow consumers, TLS) against a TSan build of the server.
TSAN_SUITES = tests/integration/test_broadcast_seq.py tests/integration/test_shutdown.py \
              tests/integration/test_limits.py tests/integration/test_tls.py tests/integration/test_publish_ws.py \
              tests/integration/test_history.py
tsan: deps
	@cmake -S . -B $(BUILD_TSAN) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBROADCASTER_SANITIZE=thread -DBROADCASTER_BENCH=OFF >/dev/null
	@ninja -C $(BUILD_TSAN)
	TSAN_OPTIONS=halt_on_error=1 ctest --test-dir $(BUILD_TSAN) -L unit --output-on-failure -j$(JOBS)
	BROADCASTER_BIN=$(abspath $(BUILD_TSAN))/broadcaster BROADCASTER_SANITIZED=1 TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider $(TSAN_SUITES)

js: build
	@if [ -f clients/js/package.json ]; then cd clients/js && npm ci --no-audit --no-fund >/dev/null && npm test; fi

e2e: build
	@if [ -x tests/e2e/run.sh ]; then bash tests/e2e/run.sh; fi

test: unit integration js e2e asan tsan fuzz

bench: build
	@bash scripts/install-deps.sh --bench
	@if [ -x bench/run ]; then bench/run; else echo "bench/run not present"; fi

# Each libFuzzer target for FUZZ_SECONDS under ASan+UBSan, after replaying the saved crash inputs.
FUZZ_SECONDS ?= 60
fuzz: deps
	bash fuzz/run.sh $(FUZZ_SECONDS)

format:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)

# Installs what `make build` produced: the binary (the web console is built into it), the systemd unit with
# its paths set for PREFIX, the example configuration, and the deployment docs with the Grafana dashboard and
# the Prometheus alert rules. An existing $(SYSCONFDIR)/broadcaster/broadcaster.toml is kept; the shipped one goes
# next to it as broadcaster.toml.dist.
# A console folder from an older install is removed: it would override the built-in console.
install:
	@test -x $(BUILD)/broadcaster || { echo "install: $(BUILD)/broadcaster is missing: run 'make build' first" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/broadcaster
	install -m 0755 $(BUILD)/broadcaster $(DESTDIR)$(BINDIR)/broadcaster
	rm -rf $(DESTDIR)$(DATADIR)/console
	sed -e '/^Environment=CONSOLE_DIR=/d' -e 's#/usr/local/bin/#$(BINDIR)/#g' -e 's#/usr/local/share/broadcaster#$(DATADIR)#g' \
	    -e 's#/usr/local/share/doc/broadcaster#$(DOCDIR)#g' -e 's#/etc/broadcaster#$(SYSCONFDIR)/broadcaster#g' \
	    packaging/broadcaster.service > $(DESTDIR)$(UNITDIR)/broadcaster.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/broadcaster.service
	@conf=$(DESTDIR)$(SYSCONFDIR)/broadcaster/broadcaster.toml; \
	if [ -e $$conf ]; then install -m 0644 packaging/broadcaster.toml $$conf.dist; echo "kept $$conf (new one: $$conf.dist)"; \
	else install -m 0644 packaging/broadcaster.toml $$conf; echo "installed $$conf"; fi
	install -m 0644 packaging/broadcaster.env.example $(DESTDIR)$(SYSCONFDIR)/broadcaster/broadcaster.env.example
	install -m 0644 docs/deployment.md docs/configuration.md packaging/nginx.conf packaging/grafana-dashboard.json \
	  packaging/prometheus-alerts.yml $(DESTDIR)$(DOCDIR)/
	@echo "next: put JWT_SECRET and API_KEYS in $(SYSCONFDIR)/broadcaster/broadcaster.env (mode 0600), then"
	@echo "      systemctl daemon-reload && systemctl enable --now broadcaster"

# Removes what `make install` put in place, except the configuration in $(SYSCONFDIR)/broadcaster.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/broadcaster $(DESTDIR)$(UNITDIR)/broadcaster.service
	rm -rf $(DESTDIR)$(DATADIR)/console
	rm -f $(DESTDIR)$(DOCDIR)/deployment.md $(DESTDIR)$(DOCDIR)/configuration.md $(DESTDIR)$(DOCDIR)/nginx.conf \
	  $(DESTDIR)$(DOCDIR)/grafana-dashboard.json $(DESTDIR)$(DOCDIR)/prometheus-alerts.yml
	-rmdir $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) 2>/dev/null
	rm -f $(DESTDIR)$(SYSCONFDIR)/broadcaster/broadcaster.env.example \
	  $(DESTDIR)$(SYSCONFDIR)/broadcaster/broadcaster.toml.dist
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/broadcaster (configuration and secrets): remove it by hand if unwanted"
