# kafka-conn tasks. `just` lists them. The logic lives in scripts/, so every recipe is
# also runnable without just: on a fresh machine scripts/demo and scripts/test work at once
# (scripts/test runs scripts/install-tools, which installs just, when a tool is missing).

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes
default:
    @just --list --unsorted

# Format every crate
fmt:
    cargo fmt --all

# rustfmt check + clippy with warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Everything: lint, real brokers, cargo test, no-runtime check on the core, docs, fuzz smoke
test:
    scripts/test

# What CI runs (.ci/run): the same as `test`
ci: test

# API docs, rustdoc warnings are errors
doc:
    RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps

# Fuzz TARGET for SECONDS, growing fuzz/corpus/TARGET (SANITIZER=none is 2-5x faster: docs/fuzzing.md)
fuzz TARGET SECONDS="60" SANITIZER="address":
    cargo +nightly fuzz run -s '{{ SANITIZER }}' '{{ TARGET }}' -- -max_total_time='{{ SECONDS }}'

# Every fuzz target for ~20 s (total bounded; skipped when fuzz/ does not exist)
fuzz-smoke:
    scripts/fuzz-smoke

# Benchmarks, with the test brokers up for the end-to-end ones
bench *ARGS:
    scripts/with-brokers cargo bench --workspace {{ ARGS }}

# Start the test brokers on 127.0.0.1; then: . .broker-state/env
broker-up:
    scripts/broker-up

# Stop exactly the brokers that broker-up started
broker-down:
    scripts/broker-down

# kconn against a real broker: check + api-versions
demo:
    scripts/demo
