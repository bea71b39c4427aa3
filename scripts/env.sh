# shellcheck shell=bash
# Sourced by the other scripts: one build profile and one target dir for everything.
# The target dir lives outside the clone so CI runs on the same machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mynakyukyu/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
