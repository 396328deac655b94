# Thin wrapper around CMake: the commands a newcomer types.
#   make        build (Release) into build/
#   make test   build and run the whole test suite (ctest)
#   make asan   build with ASan+UBSan into build-asan/ and run the suite there
#   make demo   build and generate a story with the default model
JOBS ?= $(shell nproc)
SHARED ?= $(abspath ../shared)

.PHONY: all build test asan demo bootstrap clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKILN_SHARED_DIR=$(SHARED) >/dev/null
	@cmake --build build -j $(JOBS) -- --no-print-directory

test: build
	@cd build && ctest --output-on-failure -j $(JOBS)

asan: bootstrap
	@cmake -S . -B build-asan -DKILN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DKILN_SHARED_DIR=$(SHARED) >/dev/null
	@cmake --build build-asan -j $(JOBS) -- --no-print-directory
	@cd build-asan && ctest --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo

clean:
	rm -rf build build-asan
