# shellcheck shell=bash
# Sourced by the scripts: the helpers they share.

# Print the message on stderr and stop the script.
fail() {
  echo "$*" >&2
  exit 1
}

# Run a command as root: directly when we are root, else through sudo without a prompt
# (keeping the environment and PATH, so cargo and the target dir are the same).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo -n -E env "PATH=$PATH" "$@"
  fi
}

# Purge whatever of our packages is installed, never failing (naming only installed
# packages: apt refuses the whole command over one it does not know).
purge_mynakyukyu_packages() {
  local installed=()
  mapfile -t installed < <(dpkg-query -W -f='${Package} ${Status}\n' 'mynakyukyu*' 2>/dev/null \
    | awk '/ installed$/ {print $1}' || true)
  [ ${#installed[@]} -eq 0 ] || apt-get purge -y -qq "${installed[@]}" >/dev/null 2>&1 || true
}

# How many entries a directory holds (files and directories, not hidden ones).
count_entries() {
  find "$1" -mindepth 1 -maxdepth 1 ! -name '.*' | wc -l
}
