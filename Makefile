# celerysalt — PGXS build.  Sources, install-script parts and tests are picked
# up by wildcard so that adding a file never needs an edit here.

EXTENSION  = celerysalt
# The version is written once, in celerysalt.control.
EXTVERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(dir $(lastword $(MAKEFILE_LIST)))celerysalt.control)

# The test and demo commands pass PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
# (Debian's /usr/bin/pg_config picks the newest server-dev installed).
PG_CONFIG ?= pg_config

MODULE_big = celerysalt
SRCS       = $(sort $(wildcard src/*.c src/jsonschema/*.c))
OBJS       = $(SRCS:.c=.o)

# The install script is assembled from sql/install/NN_topic.sql in name order.
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
DATA_built    = sql/celerysalt--$(EXTVERSION).sql
# Released versions' install scripts (frozen) and the upgrade scripts.
DATA          = $(wildcard sql/releases/celerysalt--*.sql)

# pg_regress: every sql/<topic>.sql that is not an install script.
REGRESS      = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/celerysalt--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-instance=$(CURDIR)/tmp_check --temp-config=$(srcdir)/test/regress.conf

# Isolation: test/isolation/specs/<name>.spec + test/isolation/expected/<name>.out
ISOLATION      = $(sort $(patsubst test/isolation/specs/%.spec,%,$(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --temp-instance=$(CURDIR)/tmp_check_iso --temp-config=$(srcdir)/test/regress.conf \
                 --inputdir=$(srcdir)/test/isolation --outputdir=output_iso

TAP_TESTS   = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CPPFLAGS += -I$(srcdir)/src
PG_CFLAGS   += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror
# OpenSSL: the TLS of rediss:// (redis.c, tls.c) and the set-up of amqps://
# (librabbitmq-c, built with OpenSSL on Debian, hands out its SSL_CTX).
SHLIB_LINK  += -lrabbitmq -lhiredis -lssl -lcrypto

ifeq ($(SANITIZE),address)
PG_CFLAGS  += -fsanitize=address -fno-omit-frame-pointer
SHLIB_LINK += -fsanitize=address
endif

EXTRA_CLEAN = $(DATA_built) output_iso tmp_check tmp_check_iso results regression.diffs regression.out log

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(INSTALL_PARTS)
	cat $^ > $@

# PGXS tracks no header dependencies: every object depends on every header.
$(OBJS): $(wildcard src/*.h src/jsonschema/*.h)

# No call cycle between source files: the layers of docs/architecture.md.
.PHONY: check-layers
check-layers: $(OBJS)
	@python3 $(srcdir)/test/lib/check_layers.py $(OBJS)

# The regression suite (every sql/*.sql file), the validator fuzz run and the
# official JSON Schema suite under AddressSanitizer, in an isolated copy of
# PostgreSQL (never the system's lib dir); fails on any report.  As root or
# postgres.  See test/jsonschema/asan.sh.
.PHONY: asan
asan:
	ASAN_DETECT_LEAKS=0 ASAN_REGRESS="$(REGRESS)" bash $(srcdir)/test/jsonschema/asan.sh 2000
