# connrt build. `make` builds the binary and the Lua module; `make test` installs what is
# missing (make deps), builds, lints and runs the busted specs; `make demo` connects a
# scripted user at the local authorization server the specs use.

CC      ?= gcc
PKGS     = lua5.4 libcurl openssl lmdb
PREFIX  ?= /usr/local
LUADIR   = $(PREFIX)/share/connrt/lua
BUILD    = build

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(PKG_CFLAGS) -Isrc
LDLIBS  += $(PKG_LIBS)

API_SRC  = $(wildcard src/api/*.c)
API_OBJ  = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(API_SRC))
HDRS     = $(wildcard src/*.h src/api/*.h)

LUA      = lua5.4
SPECS    = bash tools/run-specs.sh
LUACHECK = luacheck

.PHONY: all deps test lint unit demo clean install

all: $(BUILD)/connrt $(BUILD)/connrt.so

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCONNRT_LUA_DIR='"$(CURDIR)/lua"' -c -o $@ $<

# The binary: the C core plus an interpreter that runs lua/connrt/cli.lua.
$(BUILD)/connrt: $(BUILD)/obj/main.o $(API_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The same core as a Lua C module, so plain lua5.4 programs and the specs can
# `require "connrt.http"` and friends (Lua's all-in-one loader finds connrt.so).
$(BUILD)/connrt.so: $(API_OBJ)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(filter-out -llua5.4,$(LDLIBS))

deps:
	@sh tools/deps.sh

lint: deps
	$(LUACHECK) -q lua spec connectors examples

test: deps all lint
	$(SPECS)

demo: deps all
	@sh examples/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LUADIR)/connrt
	install -m 0755 $(BUILD)/connrt $(DESTDIR)$(PREFIX)/bin/connrt
	install -m 0644 lua/connrt/*.lua $(DESTDIR)$(LUADIR)/connrt/

clean:
	rm -rf $(BUILD)
