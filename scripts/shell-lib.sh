# Sourced by the scripts: the helpers they share.

# Print the message on stderr and stop the script.
fail() {
  echo "$*" >&2
  exit 1
}
