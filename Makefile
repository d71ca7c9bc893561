# Thin wrappers around .ci/dev; pass extra arguments with ARGS=...
#   make test ARGS='-run TestX -- ./sandbox/...'
#   make run ARGS='--labs ./mylabs'
ARGS ?=
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: run test proto proto-check build bench

run:
	bash .ci/dev run $(ARGS)

test:
	bash .ci/dev test $(ARGS)

proto:
	bash .ci/dev proto

proto-check:
	bash .ci/dev proto-check

build:
	bash .ci/dev build

bench: build
	go run ./bench $(ARGS)
