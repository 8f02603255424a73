#!/usr/bin/env bash
# Removes the runner user's sudo for the rest of the job before agents start, as
# openai/codex-action's `drop-sudo` safety strategy does: out of the sudo/admin/wheel groups,
# and every sudoers line naming the user deleted. Only when sudo works without a password;
# checked afterwards. Agent code runs with no_new_privs (no setuid program lifts it), so this
# guards what it could plant for the job's later steps, which are not under no_new_privs.
set -euo pipefail
case "$(printf '%s' "${DROP_SUDO:-true}" | tr '[:upper:]' '[:lower:]')" in
  true | yes | 1 | "") ;;
  false | no | 0)
    echo "prompter-action: drop_sudo is false, sudo is left as it is"
    exit 0
    ;;
  *)
    echo "::error title=prompter-action (host)::input \`drop_sudo\` must be true or false, not '${DROP_SUDO}'"
    exit 2
    ;;
esac
user="$(id -un)"
if [ "$(id -u)" = 0 ]; then
  echo "prompter-action: running as root, no sudo to drop (agents run as agent_user says)"
  exit 0
fi
if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
  echo "prompter-action: $user has no passwordless sudo, nothing to drop"
  exit 0
fi
case "$user" in
  *[!A-Za-z0-9._-]*)
    echo "::error title=prompter-action (host)::cannot drop sudo for the user name '$user'; set drop_sudo: false"
    exit 1
    ;;
esac
sudo -n sh -s -- "$user" <<'ROOT'
set -eu
user="$1"
for group in sudo admin wheel; do
  if id -nG "$user" | tr ' ' '\n' | grep -qx "$group"; then
    gpasswd -d "$user" "$group" >/dev/null
    echo "prompter-action: removed $user from the group $group"
  fi
done
for file in /etc/sudoers /etc/sudoers.d/*; do
  [ -f "$file" ] || continue
  if grep -Eq "^[[:space:]]*$user[[:space:]]" "$file"; then
    sed -i -E "/^[[:space:]]*$user[[:space:]]/d" "$file"
    echo "prompter-action: removed the lines of $user from $file"
  fi
done
ROOT
sudo -K 2>/dev/null || true
if sudo -n true 2>/dev/null; then
  echo "::error title=prompter-action (host)::$user still has sudo after drop_sudo; set drop_sudo: false to run agents anyway"
  exit 1
fi
echo "prompter-action: $user has no sudo for the rest of this job"
