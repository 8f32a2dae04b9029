# connrt build. `make` builds the binary and the Lua module; `make test` installs what is
# missing (make deps), builds, lints and runs the busted specs; `make demo` connects a
# scripted user at the local authorization server the specs use.

CC      ?= gcc
PKGS     = lua5.4 libcurl openssl lmdb
PREFIX  ?= /usr/local
LUADIR   = $(PREFIX)/share/connrt/lua
VERSION  = 0.1.0
# where the built programs look for lua/connrt: the Lua layer precompiled to bytecode
# under $(BUILD)/lua (loading bytecode skips the parser, a third of a command's start-up
# instructions in callgrind); installed, $(LUADIR)
LUA_DIR_BAKED ?= $(CURDIR)/$(BUILD)/lua
LUAC     = luac5.4
LUA_SRC  = $(wildcard lua/connrt/*.lua)
LUA_BC   = $(patsubst lua/%,$(BUILD)/lua/%,$(LUA_SRC))
BUILD    = build

# recursive (=), not :=, so the flags are read after `make deps` installed the packages
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(PKG_CFLAGS) -Isrc -Iinclude
LDLIBS  += $(PKG_LIBS)

API_SRC  = $(wildcard src/api/*.c)
API_OBJ  = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(API_SRC))
HDRS     = $(wildcard src/*.h src/api/*.h include/*.h)
LIBDIR   = $(PREFIX)/lib
INCDIR   = $(PREFIX)/include
MANDIR   = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions

LUA      = lua5.4
SPECS    = bash tools/run-specs.sh
LUACHECK = luacheck

.PHONY: all deps test lint specs demo clean install bench

all: $(LUA_BC) $(BUILD)/connrt $(BUILD)/connrt.so $(BUILD)/libconnrt.a $(BUILD)/libconnrt.so $(BUILD)/examples/pipeline

# bytecode keeps its debug information, so tracebacks still name files and lines
$(BUILD)/lua/%.lua: lua/%.lua
	@mkdir -p $(dir $@)
	$(LUAC) -o $@ $<

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCONNRT_LUA_DIR='"$(LUA_DIR_BAKED)"' -c -o $@ $<

# The binary: the C core plus an interpreter that runs lua/connrt/cli.lua.
$(BUILD)/connrt: $(BUILD)/obj/main.o $(API_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The same core as a Lua C module, so plain lua5.4 programs and the specs can
# `require "connrt.http"` and friends (Lua's all-in-one loader finds connrt.so).
$(BUILD)/connrt.so: $(API_OBJ)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(filter-out -llua5.4,$(LDLIBS))

# The C library of include/connrt.h: the core plus src/lib.c, which runs the Lua layer.
$(BUILD)/libconnrt.a: $(BUILD)/obj/lib.o $(API_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libconnrt.so: $(BUILD)/obj/lib.o $(API_OBJ)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libconnrt.so.0 -o $@ $^ $(LDLIBS)

# The example C pipeline, linked statically against libconnrt; the specs run it.
$(BUILD)/examples/pipeline: examples/pipeline.c $(BUILD)/libconnrt.a include/connrt.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ examples/pipeline.c $(BUILD)/libconnrt.a $(LDLIBS)

deps:
	@sh tools/deps.sh

# test and demo install what is missing first, then build in a second make, which
# reads the compiler flags of the packages deps has just installed
test: deps
	@$(MAKE) --no-print-directory all lint specs

demo: deps
	@$(MAKE) --no-print-directory all
	@sh examples/demo.sh

# Benchmarks (not part of test): writes bench/RESULTS.md; see bench/bench.py
bench: deps
	@sh bench/deps.sh
	@$(MAKE) --no-print-directory all $(BUILD)/bench/throughput
	/usr/bin/python3 bench/bench.py

$(BUILD)/bench/throughput: bench/throughput.c $(BUILD)/libconnrt.a include/connrt.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ bench/throughput.c $(BUILD)/libconnrt.a $(LDLIBS)

lint:
	$(LUACHECK) -q lua spec connectors examples bench

specs: all
	$(SPECS)

# Installed programs look for the Lua layer under $(LUADIR), so install rebuilds with it.
install:
	$(MAKE) BUILD=$(BUILD)/install LUA_DIR_BAKED='$(LUADIR)' all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LUADIR)/connrt $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/lua/5.4 $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(BUILD)/install/connrt $(DESTDIR)$(PREFIX)/bin/connrt
	install -m 0644 $(BUILD)/install/lua/connrt/*.lua $(DESTDIR)$(LUADIR)/connrt/
	install -m 0644 include/connrt.h $(DESTDIR)$(INCDIR)/connrt.h
	install -m 0644 $(BUILD)/install/libconnrt.a $(DESTDIR)$(LIBDIR)/libconnrt.a
	install -m 0755 $(BUILD)/install/libconnrt.so $(DESTDIR)$(LIBDIR)/libconnrt.so.0
	ln -sf libconnrt.so.0 $(DESTDIR)$(LIBDIR)/libconnrt.so
	install -m 0755 $(BUILD)/install/connrt.so $(DESTDIR)$(LIBDIR)/lua/5.4/connrt.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' connrt.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/connrt.pc
	install -m 0644 docs/connrt.1 $(DESTDIR)$(MANDIR)/man1/connrt.1
	install -m 0644 completions/connrt.bash $(DESTDIR)$(BASHCOMPDIR)/connrt

clean:
	rm -rf $(BUILD)
