# pg_dataflow — PGXS build plus the project's entry points.
#
#   make            build the extension (pg_dataflow.so + pg_dataflow--VERSION.sql)
#   make install    install it into the PostgreSQL found by $(PG_CONFIG)
#   make test       set up everything missing, then run every test suite
#   make demo       run the example pipeline end to end
#   make bench      benchmarks against peers (long)
#   make chaos      the long reliability runs
#   make check-valgrind  the worker under valgrind memcheck, leak-checked at shutdown (~1 min)
#
# `make test`, `make demo`, `make bench`, `make chaos` and `make check-valgrind` do not need PGXS to
# be present: they install the Debian packages first (scripts/deps.sh).

EXTENSION   = pg_dataflow
EXTVERSION  = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" pg_dataflow.control)
MODULE_big  = pg_dataflow

# Extension SQL: the modules in src/sql/NN_*.sql, concatenated in order, make the
# install script of the current version. Released versions keep their install
# scripts frozen in src/sql/ (never regenerated), and every upgrade script
# (src/sql/pg_dataflow--A--B.sql) is installed beside them (src/sql/README.md).
SQL_MODULES = $(sort $(wildcard src/sql/[0-9][0-9]_*.sql))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out src/sql/$(DATA_built),$(wildcard src/sql/$(EXTENSION)--*.sql))

PG_CPP_SRCS = $(wildcard src/pg/*.cpp) $(wildcard src/worker/*.cpp) $(wildcard src/listener/*.cpp)
CORE_SRCS   = $(wildcard src/core/*.cpp)
OBJS        = $(PG_CPP_SRCS:.cpp=.o) $(CORE_SRCS:.cpp=.o)

# PG=NN picks the PostgreSQL major (15, 17, 18; scripts/pg.sh); make test PG=17 runs in a chroot.
PG         ?= 15
# (pg_config on PATH when that is missing, unless PG was given: then PGXS is not found)
PG_CONFIG  ?= $(firstword $(wildcard /usr/lib/postgresql/$(PG)/bin/pg_config) \
                $(if $(filter file,$(origin PG)),pg_config,/usr/lib/postgresql/$(PG)/bin/pg_config))
PGXS       := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
              -fno-omit-frame-pointer -Isrc
# The library knows the SQL it was built for (src/pg/version.cpp).
PG_CPPFLAGS = -Isrc -DDF_EXTVERSION='"$(EXTVERSION)"'
# libmicrohttpd: the callback listener's HTTP server (src/listener, scripts/deps.sh).
SHLIB_LINK  = -lcurl -lcrypto -lmicrohttpd -lstdc++

# Bitcode for JIT is pointless for C++ code that calls libstdc++ and libcurl.
override with_llvm = no

EXTRA_CLEAN = $(DATA_built) build build-asan results regression.diffs regression.out tmp_check

ifneq ($(PGXS),)
# header dependencies of the C++ objects (.deps/), so a changed header rebuilds its users
autodepend = yes
include $(PGXS)
else
all install:
	@echo "PGXS not found: run 'make deps' first (needs postgresql-server-dev-$(PG))" >&2; exit 1
endif

$(DATA_built): $(SQL_MODULES) pg_dataflow.control
	@{ echo '-- pg_dataflow $(EXTVERSION): generated from src/sql/*.sql by make; edit those files.'; \
	   printf '%s\n' '\echo Use "CREATE EXTENSION pg_dataflow" to load this file. \quit'; \
	   for f in $(SQL_MODULES); do echo; echo "-- ==== $$f"; cat $$f; done; } > $@

# dataflow-run (src/cli) is built by CMake (build/dataflow-run) and installed
# next to pg_config, plus a symbolic link in $(BINDIR) (default /usr/local/bin: pg_config's
# bindir, /usr/lib/postgresql/NN/bin on Debian, is not on PATH); BINDIR= installs no link.
# The link names the installed file's final path, so DESTDIR staging stays correct.
# cmake --build is a no-op when it is up to date.
BINDIR ?= /usr/local/bin
.PHONY: cli install-cli
all: cli
cli:
	@[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	+@cmake --build build --target dataflow-run >/dev/null
install: install-cli
install-cli: cli
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) build/dataflow-run '$(DESTDIR)$(bindir)/dataflow-run'
# (no link when BINDIR is empty or is bindir itself: ln -sf would replace the program)
ifneq ($(filter-out $(abspath $(bindir)),$(abspath $(BINDIR))),)
	$(MKDIR_P) '$(DESTDIR)$(BINDIR)'
	ln -sf '$(bindir)/dataflow-run' '$(DESTDIR)$(BINDIR)/dataflow-run'
endif

.PHONY: deps test unit regress isolation integration demo bench chaos check-valgrind

deps:
	@scripts/deps.sh

test:
	@PG=$(PG) scripts/test.sh

unit:
	@scripts/test.sh unit

regress:
	@scripts/test.sh regress

isolation:
	@scripts/test.sh isolation

integration:
	@scripts/test.sh integration

demo:
	@scripts/demo.sh

bench:
	@scripts/bench.sh

chaos:
	@scripts/chaos.sh

check-valgrind:
	@scripts/valgrind.sh

# make dist: pg_dataflow-VERSION.tar.gz from HEAD, with META.json (scripts/dist.sh)
.PHONY: dist
dist:
	@scripts/dist.sh
