#!/usr/bin/env bash
# Install the window evaluator pad (窗口评价器) on Raspberry Pi OS Bookworm (Lite or Desktop,
# Pi 4 or Pi 5) and run it under systemd.  Run from the checkout (or release tree), as root:
#
#   sudo systemd/install.sh                  # install or upgrade; a second run changes nothing
#   sudo systemd/install.sh --dry-run        # print every step, change nothing
#   systemd/install.sh --root /tmp/tree      # the files only, into a directory tree (tests)
#   sudo systemd/install.sh --hub            # the city receiver on a city server instead
#
# What it does, step by step (systemd/README.md says why):
#   1. Debian packages: the CJK fonts, Debian's pygame (python3-pygame, on Debian's SDL2 with
#      KMSDRM), Mesa, ALSA, libusb, lgpio.
#   2. The system user `evaluator`, in the groups gpio dialout lp video render input audio.
#   3. Directories: /etc/evaluator (+ conf.d, tls), /var/lib/evaluator, /opt/evaluator, each
#      with the owner and mode the pad needs; the configuration files root:evaluator 0640.
#   4. Files: the unit, the journald cap, the printer udev rule, the modules loaded at boot,
#      the annotated default configuration as /etc/evaluator/evaluator.toml.example.
#   5. The build /opt/evaluator/releases/VERSION-HASH/venv (a virtualenv on Debian's Python
#      with its pygame: the pinned requirements.txt, then the evaluator from this checkout or
#      --wheel FILE); an existing build of the same files is used as it is.
#   6. systemd: reloads what changed, enables evaluator.service, frees tty1 (getty), boots a
#      Desktop image to the console.
#   7. The pad: /opt/evaluator/current is switched to the new build; with a configuration the
#      pad is restarted and must reach READY and stay up (--settle seconds); if it does not,
#      current goes back to the previous build, that one is restarted, and the script exits 1
#      (the failed build is kept to look at).  The last 3 builds are kept.  Configuration
#      (/etc/evaluator), store and keys (/var/lib/evaluator) are never touched by an upgrade.
#
# Idempotent: each step looks first and only does what is missing or different; the last line
# says how many changes were made ("nothing changed" on a second run).  --dry-run looks, prints
# what it would do, and does nothing.  --root DIR writes the files into DIR (as if DIR were /)
# and only prints the steps that act on the machine (apt-get, useradd/usermod, chown, the
# virtualenv, systemctl, udevadm).
#
# --hub installs the city receiver (docs/hub.md, "Installing the receiver") instead of the pad,
# on any Debian-like server with Python 3.11+: the packages python3 python3-venv, the system user
# evaluator-hub, /opt/evaluator-hub/venv (the pinned requirements.txt and the evaluator, nothing
# of Debian's: no screen here), /etc/evaluator/hub.env root 0600 (EVALUATOR_HUB_DB, HUB_BROKER,
# HUB_ARGS; written once, never overwritten: the operator's), the unit evaluator-hub.service
# (Type=notify, WatchdogSec=) enabled, and restarted when the build or the unit changed and
# hub.env exists.  Same --root, --dry-run, --wheel and idempotence as the pad's.
#
# EVALUATOR_SYSTEMCTL=PROGRAM: step 7 (restart, wait, roll back) runs PROGRAM instead of
# systemctl, and runs it even with --root: how tests/test_systemd.py proves the rollback
# without a booted systemd.
set -euo pipefail
# What this script makes is read by the pad's user (the build's thousands of files, made by
# venv and pip with no mode of their own): sudo keeps the technician's umask (077 in a hardened
# shell gave a build of 0600 files, which the pad could not import), so the umask is set here.
umask 022

usage() {
  cat <<'EOF'
usage: systemd/install.sh [--dry-run] [--root DIR] [--wheel FILE] [--printer VID:PID]...
                          [--keep-desktop] [--no-restart] [--settle SECONDS]
  --dry-run          print every step and change nothing
  --root DIR         install the files into DIR instead of /; print the machine steps
  --wheel FILE       install the evaluator from this wheel instead of this checkout
  --printer VID:PID  a USB printer with a vendor-specific interface (lsusb), for the udev
                     rule (repeat for several models); e.g. --printer 0416:5011
  --keep-desktop     on a Desktop image, keep booting to the desktop (the pad then cannot
                     have the screen: systemd/README.md, "Desktop images")
  --no-restart       switch to the new build but do not restart the pad (nor roll back):
                     it runs the new build from its next start
  --settle SECONDS   after an upgrade, how long the restarted pad must stay up (default 15)
  --hub              install the city receiver (evaluator hub run) instead of the pad
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(dirname "$HERE")

ROOT=""
DRY=0
WHEEL=""
KEEP_DESKTOP=0
NO_RESTART=0
SETTLE=15
PRINTERS=()
HUB=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --root)
      [ $# -ge 2 ] || { echo "install: --root needs a directory" >&2; exit 2; }
      ROOT=$2; shift ;;
    --root=*) ROOT=${1#--root=} ;;
    --wheel)
      [ $# -ge 2 ] || { echo "install: --wheel needs a file" >&2; exit 2; }
      WHEEL=$2; shift ;;
    --wheel=*) WHEEL=${1#--wheel=} ;;
    --printer)
      [ $# -ge 2 ] || { echo "install: --printer needs VID:PID" >&2; exit 2; }
      PRINTERS+=("$2"); shift ;;
    --printer=*) PRINTERS+=("${1#--printer=}") ;;
    --keep-desktop) KEEP_DESKTOP=1 ;;
    --hub) HUB=1 ;;
    --no-restart) NO_RESTART=1 ;;
    --settle)
      [ $# -ge 2 ] || { echo "install: --settle needs a number of seconds" >&2; exit 2; }
      SETTLE=$2; shift ;;
    --settle=*) SETTLE=${1#--settle=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$SETTLE" =~ ^[0-9]+$ ]] || { echo "install: --settle $SETTLE: expected whole seconds" >&2; exit 2; }

# --- where things go (inside ROOT) ---------------------------------------------------------------
USER_NAME=evaluator
GROUPS_WANTED=(gpio dialout lp video render input audio)
PREFIX=/opt/evaluator
RELEASES=$PREFIX/releases     # one directory per build: VERSION-HASH/venv
CURRENT=$PREFIX/current       # -> releases/VERSION-HASH: what the unit runs
UNCHECKED=$PREFIX/.evaluator-unchecked  # while the pad is checked on a build: "BUILD OLD"
KEEP_RELEASES=3               # builds kept: the current one and the two used before it
LEGACY_VENV=$PREFIX/venv      # the single virtualenv of installs before releases/
# Debian's own Python: python3-pygame (and python3-lgpio) are installed for it alone.
PYTHON=/usr/bin/python3
SYSTEMCTL=${EVALUATOR_SYSTEMCTL:-systemctl}
CONF_DIR=/etc/evaluator
STATE_DIR=/var/lib/evaluator
DOC_DIR=/usr/share/doc/evaluator
UNIT=/etc/systemd/system/evaluator.service
JOURNALD_CONF=/etc/systemd/journald.conf.d/60-evaluator.conf
UDEV_RULE=/etc/udev/rules.d/70-evaluator-printer.rules
MODULES_CONF=/etc/modules-load.d/evaluator.conf
COMMAND_LINK=/usr/local/bin/evaluator

# Debian packages (Bookworm names).  python3-lgpio comes from the Raspberry Pi archive.
PACKAGES=(
  # Python, and Debian's pygame (2.1.2 on Bookworm): built against Debian's SDL2, which has the
  # KMSDRM driver (PyPI's wheels bring an SDL without it; check_sdl.py checks)
  python3 python3-venv python3-pygame
  # KMSDRM: the display through DRM/GBM and Mesa's EGL/GLES drivers (vc4, v3d).  libgl1 too:
  # without libGL.so.1, Debian's pygame on SDL 2.26's KMSDRM flips a black screen while the pad
  # runs and answers (found booted under qemu: docs/pi-os.md); a Lite image does not have it.
  libdrm2 libgbm1 libegl1 libgles2 libgl1-mesa-dri libgl1
  # CJK fonts: WenQuanYi Micro Hei (small, regular) and Noto Sans CJK (a real bold face)
  fonts-wqy-microhei fonts-noto-cjk
  # sound, USB printers, and the technician's tools (aplay/speaker-test, lsusb, evtest)
  alsa-utils libusb-1.0-0 usbutils evtest
)
PI_PACKAGES=(python3-lgpio)

CHANGES=0
if [ -n "$ROOT" ]; then
  ROOT=$(realpath -m -- "$ROOT")
  [ "$ROOT" != / ] || { echo "install: --root /: run without --root to install on this machine" >&2; exit 2; }
fi
R=$ROOT   # the prefix of every path written

# --- output --------------------------------------------------------------------------------------
STEP=0
STEPS=7
step() { STEP=$((STEP + 1)); printf '\n== %d/%d %s\n' "$STEP" "$STEPS" "$*"; }
say() { printf '   %s\n' "$*"; }
warn() { printf '   WARNING: %s\n' "$*"; }
quote() {  # the command as it could be typed again
  local out="" a
  for a in "$@"; do
    if [[ "$a" =~ ^[][A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=" $a"; else out+=" $(printf '%q' "$a")"; fi
  done
  printf '%s' "${out# }"
}

# A command that acts on the machine: run it, or (--dry-run / --root) print it.
machine() {
  if [ -n "$ROOT" ]; then
    say "would run (--root: not on this machine): $(quote "$@")"
  elif [ "$DRY" = 1 ]; then
    say "would run: $(quote "$@")"
    CHANGES=$((CHANGES + 1))
  else
    say "run: $(quote "$@")"
    "$@"
    CHANGES=$((CHANGES + 1))
  fi
}

# --- files (all paths are inside ROOT) -------------------------------------------------------------
CHANGED=0   # did the last put_* change something?

mode_of() { stat -c %a "$1"; }

# put_dir PATH MODE [OWNER:GROUP]
put_dir() {
  local path=$1 mode=$2 owner=${3:-} target=$R$1
  CHANGED=0
  if [ -d "$target" ] && [ "$(mode_of "$target")" = "$mode" ]; then
    say "ok: $path/ (mode $mode)"
  elif [ "$DRY" = 1 ]; then
    say "would create: $path/ (mode $mode)"; CHANGED=1
  else
    mkdir -p "$target"; chmod "$mode" "$target"
    say "created: $path/ (mode $mode)"; CHANGED=1
  fi
  CHANGES=$((CHANGES + CHANGED))
  [ -z "$owner" ] || put_owner "$path" "$owner"
}

# put_owner PATH OWNER:GROUP: PATH (inside ROOT, existing unless a dry run) gets the owner.
# A machine step: --root prints it (the tree's owners are whoever ran the tests).
put_owner() {
  local path=$1 owner=$2 target=$R$1
  if [ -n "$ROOT" ]; then
    say "would run (--root: not on this machine): chown $owner $path"
  elif [ ! -e "$target" ] || [ "$(stat -c %U:%G "$target")" != "$owner" ]; then
    machine chown "$owner" "$path"
  fi
}

# put_file SOURCE PATH MODE [OWNER:GROUP]: PATH gets SOURCE's bytes, MODE and OWNER (replaced
# whole, atomically: the new file has its mode and owner before it takes the name).
put_file() {
  local source=$1 path=$2 mode=$3 owner=${4:-} target=$R$2
  CHANGED=0
  if [ -f "$target" ] && [ ! -L "$target" ] && cmp -s "$source" "$target"; then
    if [ "$(mode_of "$target")" = "$mode" ]; then
      say "ok: $path"
    elif [ "$DRY" = 1 ]; then
      say "would chmod $mode: $path"; CHANGED=1
    else
      chmod "$mode" "$target"; say "chmod $mode: $path"; CHANGED=1
    fi
    [ -z "$owner" ] || put_owner "$path" "$owner"
  elif [ "$DRY" = 1 ]; then
    if [ -e "$target" ]; then say "would update: $path"; else say "would install: $path (mode $mode)"; fi
    CHANGED=1
    [ -z "$owner" ] || put_owner "$path" "$owner"
  else
    local verb=installed
    [ -e "$target" ] && verb=updated
    mkdir -p "$(dirname "$target")"
    cp "$source" "$target.evaluator-new"
    chmod "$mode" "$target.evaluator-new"
    if [ -n "$owner" ] && [ -z "$ROOT" ]; then chown "$owner" "$target.evaluator-new"; fi
    mv -f "$target.evaluator-new" "$target"
    if [ -z "$ROOT" ]; then say "$verb: $path (mode $mode${owner:+, $owner})"
    else say "$verb: $path (mode $mode)"; fi
    CHANGED=1
    if [ -n "$owner" ] && [ -n "$ROOT" ]; then put_owner "$path" "$owner"; fi
  fi
  CHANGES=$((CHANGES + CHANGED))
}

# put_link TARGET PATH: PATH is a symbolic link to TARGET.
put_link() {
  local to=$1 path=$2 target=$R$2
  CHANGED=0
  if [ -L "$target" ] && [ "$(readlink "$target")" = "$to" ]; then
    say "ok: $path -> $to"
  elif [ -e "$target" ] && [ ! -L "$target" ]; then
    warn "$path exists and is not a link: left alone (remove it to get the link to $to)"
  elif [ "$DRY" = 1 ]; then
    say "would link: $path -> $to"; CHANGED=1
  else
    mkdir -p "$(dirname "$target")"
    ln -sfn "$to" "$target"; say "linked: $path -> $to"; CHANGED=1
  fi
  CHANGES=$((CHANGES + CHANGED))
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ "$HUB" = 1 ]; then
  # shellcheck disable=SC1091  # checked on its own: tests/test_systemd_hub.py
  . "$HERE/install-hub.sh"
  exit 0
fi

# --- 1. the system --------------------------------------------------------------------------------
step "system"
MODEL=$(tr -d '\0' 2>/dev/null </proc/device-tree/model || echo "not a Raspberry Pi")
# shellcheck disable=SC1091  # the running system's, read at run time
OS=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
# shellcheck disable=SC1091
CODENAME=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ -n "$ROOT" ]; then
  say "installing into $ROOT (--root): files only; the machine steps are printed, not run"
else
  say "machine: $MODEL; $OS"
  [ "$CODENAME" = bookworm ] || warn "made for Raspberry Pi OS Bookworm; this is ${CODENAME:-unknown}"
  if [ "$DRY" = 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install: run as root (sudo systemd/install.sh), or with --dry-run or --root DIR" >&2
    exit 2
  fi
fi
[ "$DRY" = 1 ] && say "dry run: nothing is changed"
for id in "${PRINTERS[@]}"; do
  [[ "$id" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$ ]] || {
    echo "install: --printer $id: expected VID:PID, four hex digits each (lsusb), e.g. 0416:5011" >&2
    exit 2
  }
done
if [ -n "$WHEEL" ]; then
  [ -f "$WHEEL" ] || { echo "install: --wheel $WHEEL: no such file" >&2; exit 2; }
  WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
  say "the evaluator from the wheel $WHEEL"
else
  [ -f "$SRC/pyproject.toml" ] || { echo "install: $SRC is not the evaluator's checkout" >&2; exit 2; }
  say "the evaluator from the checkout $SRC"
fi
# One install at a time: two at once would build into one virtualenv (one removing it while
# the other fills it), race on the temporary files and on `current`, and prune each other's
# new build.  The second is refused at once (a dry run changes nothing and takes no lock).
# The lock is the kernel's (flock): it dies with the install that holds it.
if [ "$DRY" = 0 ]; then
  if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"; INSTALL_LOCK=$ROOT; exec 9<"$ROOT"
  else
    INSTALL_LOCK=/run/lock/evaluator-install.lock
    [ -d /run/lock ] || INSTALL_LOCK=/run/evaluator-install.lock
    exec 9>>"$INSTALL_LOCK"
  fi
  if ! flock -n 9; then
    echo "install: another install.sh is running (it holds $INSTALL_LOCK): nothing was changed; run it again once that one has finished" >&2
    exit 2
  fi
fi
DESKTOP=0
# the display manager's alias (a link, absolute: it dangles inside a --root tree)
DM=$R/etc/systemd/system/display-manager.service
if [ -e "$DM" ] || [ -L "$DM" ]; then DESKTOP=1; fi
if [ "$DESKTOP" = 1 ]; then say "a Desktop image (a display manager is installed)"; fi

# --- 2. Debian packages ---------------------------------------------------------------------------
step "Debian packages"
if [ -n "$ROOT" ]; then
  machine apt-get install -y --no-install-recommends "${PACKAGES[@]}" "${PI_PACKAGES[@]}"
else
  missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  for pkg in "${PI_PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      continue
    elif apt-cache show "$pkg" >/dev/null 2>&1; then
      missing+=("$pkg")
    else
      warn "$pkg is not in this system's archives (not Raspberry Pi OS?): GPIO buttons need lgpio"
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "ok: all $((${#PACKAGES[@]} + ${#PI_PACKAGES[@]})) packages installed"
  else
    machine apt-get update -qq
    machine env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# --- 3. the user ----------------------------------------------------------------------------------
step "user $USER_NAME"
if [ -n "$ROOT" ]; then
  machine useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --groups "$(IFS=,; echo "${GROUPS_WANTED[*]}")" "$USER_NAME"
else
  have_groups=()
  for g in "${GROUPS_WANTED[@]}"; do
    if getent group "$g" >/dev/null; then have_groups+=("$g")
    else warn "group $g does not exist on this system: skipped"; fi
  done
  group_list=$(IFS=,; echo "${have_groups[*]}")
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    machine useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --groups "$group_list" "$USER_NAME"
  else
    current=" $(id -nG "$USER_NAME") "
    lacking=()
    for g in "${have_groups[@]}"; do
      [[ "$current" == *" $g "* ]] || lacking+=("$g")
    done
    if [ ${#lacking[@]} -eq 0 ]; then
      say "ok: $USER_NAME in $group_list"
    else
      machine usermod --append --groups "$(IFS=,; echo "${lacking[*]}")" "$USER_NAME"
    fi
  fi
fi

# --- 4. directories and files ---------------------------------------------------------------------
step "directories and files"
# Who may read what (systemd/README.md, "Owners and modes"): the configuration is root's and
# the pad's group may read it (it may hold the broker password); the TLS folder and the state
# directory are the pad's own (its keys are made there by `sudo -u evaluator evaluator ...` and
# must be readable by their owner only); the builds are root's, so the pad cannot change its
# own code.
put_dir "$CONF_DIR" 750 "root:$USER_NAME"
put_dir "$CONF_DIR/conf.d" 750 "root:$USER_NAME"
put_dir "$CONF_DIR/tls" 700 "$USER_NAME:$USER_NAME"
put_dir "$STATE_DIR" 750 "$USER_NAME:$USER_NAME"
put_dir "$PREFIX" 755 "root:root"
put_dir "$RELEASES" 755 "root:root"
put_dir "$DOC_DIR" 755

# The technician's configuration files (written with sudo: root's, mode from the umask, or 0600
# from `evaluator provision`): root:evaluator 0640, readable by the pad, not by other users.
CONFIG_FILES=0
for f in "$R$CONF_DIR"/*.toml "$R$CONF_DIR"/conf.d/*.toml; do
  if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
  CONFIG_FILES=$((CONFIG_FILES + 1))
  path=${f#"$R"}
  if [ "$(mode_of "$f")" = 640 ]; then
    :
  elif [ "$DRY" = 1 ]; then
    say "would chmod 640: $path (was $(mode_of "$f"))"; CHANGES=$((CHANGES + 1))
  else
    say "chmod 640: $path (was $(mode_of "$f"))"; chmod 640 "$f"; CHANGES=$((CHANGES + 1))
  fi
  put_owner "$path" "root:$USER_NAME"
done
[ "$CONFIG_FILES" = 0 ] || say "configuration files: $CONFIG_FILES, each root:$USER_NAME 0640"

# The annotated default, from what will be installed (the checkout or the wheel).
if [ -n "$WHEEL" ]; then
  python3 - "$WHEEL" "$TMP/default.toml" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    data = wheel.read("evaluator/shipped_config/default.toml")
open(sys.argv[2], "wb").write(data)
EOF
else
  cp "$SRC/config/default.toml" "$TMP/default.toml"
fi
put_file "$TMP/default.toml" "$CONF_DIR/evaluator.toml.example" 640 "root:$USER_NAME"

put_file "$HERE/evaluator.service" "$UNIT" 644
UNIT_CHANGED=$CHANGED
put_file "$HERE/journald-evaluator.conf" "$JOURNALD_CONF" 644
JOURNALD_CHANGED=$CHANGED
put_file "$HERE/modules-evaluator.conf" "$MODULES_CONF" 644
MODULES_CHANGED=$CHANGED

cp "$HERE/70-evaluator-printer.rules" "$TMP/printer.rules"
for id in "${PRINTERS[@]}"; do
  vid=$(echo "${id%%:*}" | tr 'A-F' 'a-f'); pid=$(echo "${id##*:}" | tr 'A-F' 'a-f')
  printf 'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="%s", ATTR{idProduct}=="%s", GROUP="lp", MODE="0660", SYMLINK+="evaluator-printer-usb"\n' \
    "$vid" "$pid" >>"$TMP/printer.rules"
done
put_file "$TMP/printer.rules" "$UDEV_RULE" 644
UDEV_CHANGED=$CHANGED

put_file "$HERE/README.md" "$DOC_DIR/README.systemd.md" 644
put_link "$CURRENT/venv/bin/evaluator" "$COMMAND_LINK"

# --- 5. the build ---------------------------------------------------------------------------------
# Each build is a directory of its own, named by the evaluator's version and a hash of what it
# is made of: the pinned requirements and the evaluator's files (or the wheel).  The same files
# again: the same build, nothing to do.  A new one is made next to the running one, which keeps
# running until step 7 switches to it.
if [ -n "$WHEEL" ]; then
  project=$(sha256sum <"$WHEEL" | cut -c1-64)
  version=$(basename "$WHEEL" | cut -d- -f2)
else
  # Every folder the wheel takes files from (pyproject.toml's packages and package-dir): the
  # receiver's JSON Schemas are docs/schemas.
  project=$(cd "$SRC" && find pyproject.toml evaluator kiosk printer sync config docs/schemas -type f \
    ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
    | sha256sum | cut -c1-64)
  version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$SRC/pyproject.toml" | head -n 1)
fi
stamp="requirements $(sha256sum <"$HERE/requirements.txt" | cut -c1-64) project $project"
BUILD=${version:-unknown}-$(printf '%s' "$stamp" | sha256sum | cut -c1-12)
[[ "$BUILD" =~ ^[A-Za-z0-9._+-]+$ ]] || { echo "install: odd version in $BUILD" >&2; exit 2; }
RELEASE=$RELEASES/$BUILD
VENV=$RELEASE/venv
step "build $RELEASE"
put_dir "$RELEASE" 755 "root:root"
put_file "$HERE/requirements.txt" "$RELEASE/requirements.txt" 644
PIP=(env PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip)
build() {
  # System site packages: pygame (python3-pygame) and lgpio (python3-lgpio) come from Debian;
  # every pinned package is installed into the venv all the same (--ignore-installed), so
  # Debian's copies of the others never stand in.
  machine "$PYTHON" -m venv --system-site-packages "$VENV"
  machine "${PIP[@]}" install --ignore-installed -r "$RELEASE/requirements.txt"
  machine "${PIP[@]}" install --no-deps --force-reinstall "${WHEEL:-$SRC}"
  # Debian's pygame, with KMSDRM: the install stops here if not.
  machine "$VENV/bin/python" "$HERE/check_sdl.py"
}
if [ -n "$ROOT" ]; then
  build
elif [ -x "$VENV/bin/python" ] && [ "$(cat "$RELEASE/.evaluator-installed" 2>/dev/null)" = "$stamp" ]; then
  say "ok: build $BUILD is complete (the pinned requirements and this evaluator)"
else
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && [ "$DRY" = 0 ]; then
    echo "install: the evaluator needs Python 3.11 or later ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
    exit 2
  fi
  if [ -e "$VENV" ]; then
    # An unfinished build (the run before was stopped): started again from nothing.
    machine rm -rf "$VENV"
  fi
  build
  if [ "$DRY" = 1 ]; then
    say "would record: $RELEASE/.evaluator-installed"
  else
    printf '%s\n' "$stamp" >"$RELEASE/.evaluator-installed"
    say "recorded: $RELEASE/.evaluator-installed"
  fi
fi

# --- 6. systemd -----------------------------------------------------------------------------------
step "systemd"
# The unit file written by a run that stopped before this step (the build failed on a full
# disk, a power cut): the file is the same now, but systemd still runs the unit it read before
# (and the pad was never restarted on it).  systemd knows: NeedDaemonReload.
if [ "$UNIT_CHANGED" = 0 ] && { [ -z "$ROOT" ] || [ -n "${EVALUATOR_SYSTEMCTL:-}" ]; } &&
  [ "$("$SYSTEMCTL" show -p NeedDaemonReload --value evaluator.service 2>/dev/null || true)" = yes ]; then
  say "systemd still runs evaluator.service as it was before $UNIT was changed (by a run that stopped early)"
  UNIT_CHANGED=1
fi
if [ -n "$ROOT" ]; then
  [ "$UNIT_CHANGED" = 1 ] && machine systemctl daemon-reload
  [ "$JOURNALD_CHANGED" = 1 ] && machine systemctl restart systemd-journald.service
  [ "$MODULES_CHANGED" = 1 ] && machine systemctl restart systemd-modules-load.service
  if [ "$UDEV_CHANGED" = 1 ]; then
    machine udevadm control --reload
    machine udevadm trigger --subsystem-match=usb --subsystem-match=usbmisc
  fi
  machine systemctl enable evaluator.service
  machine systemctl disable getty@tty1.service
  if [ "$DESKTOP" = 1 ] && [ "$KEEP_DESKTOP" = 0 ]; then
    machine systemctl set-default multi-user.target
  fi
else
  [ "$UNIT_CHANGED" = 1 ] && machine systemctl daemon-reload
  [ "$JOURNALD_CHANGED" = 1 ] && machine systemctl restart systemd-journald.service
  [ "$MODULES_CHANGED" = 1 ] && machine systemctl restart systemd-modules-load.service
  if [ "$UDEV_CHANGED" = 1 ]; then
    machine udevadm control --reload
    machine udevadm trigger --subsystem-match=usb --subsystem-match=usbmisc
  fi
  if [ "$(systemctl is-enabled evaluator.service 2>/dev/null || true)" = enabled ]; then
    say "ok: evaluator.service enabled"
  else
    machine systemctl enable evaluator.service
  fi
  if [ "$(systemctl is-enabled getty@tty1.service 2>/dev/null || true)" = enabled ]; then
    # Disabled only: a technician logged in on tty1 keeps the session until the pad starts.
    machine systemctl disable getty@tty1.service
  else
    say "ok: no login prompt on tty1 (getty@tty1 not enabled)"
  fi
  if [ "$DESKTOP" = 1 ]; then
    if [ "$KEEP_DESKTOP" = 1 ]; then
      warn "--keep-desktop: while the desktop runs it holds the display and the pad cannot start"
    elif [ "$(systemctl get-default 2>/dev/null || true)" = multi-user.target ]; then
      say "ok: boots to the console (multi-user.target); the desktop starts by hand"
    else
      machine systemctl set-default multi-user.target
    fi
  fi
fi

# --- 7. the pad: switch to the build, restart, roll back if it does not come up -------------------
step "the pad"
SERVICE=evaluator.service
# The build current points at, by name (empty: none yet).
current_build() {
  if [ -L "$R$CURRENT" ]; then basename "$(readlink "$R$CURRENT")"; fi
}
# current -> releases/NAME, replaced in one rename (never a moment without it).
switch_to() {
  ln -sfn "releases/$1" "$R$CURRENT.evaluator-new"
  mv -Tf "$R$CURRENT.evaluator-new" "$R$CURRENT"
  touch -h "$R$RELEASES/$1"   # the order of use, for pruning
}
# Builds beyond the last KEEP_RELEASES used are removed; current and $1 (the one before) never.
prune() {
  local keep=$1 name n=0
  [ -d "$R$RELEASES" ] || return 0
  while IFS= read -r name; do
    n=$((n + 1))
    if [ "$n" -le "$KEEP_RELEASES" ] || [ "$name" = "$(current_build)" ] || [ "$name" = "$keep" ]; then
      continue
    fi
    if [ "$DRY" = 1 ]; then
      say "would remove the old build: $RELEASES/$name"
    else
      rm -rf "${R:?}$RELEASES/$name"
      say "removed the old build: $RELEASES/$name"
      if [ "$name" = before-releases ]; then rm -rf "${R:?}$LEGACY_VENV" "${R:?}$PREFIX/requirements.txt"; fi
    fi
    CHANGES=$((CHANGES + 1))
  done < <(cd "$R$RELEASES" && ls -1t)
}
# A build that can be gone back to: its directory, and (on the machine: --root makes no
# virtualenv) its evaluator command.
build_usable() {
  [ -d "$R$RELEASES/$1" ] && { [ -n "$ROOT" ] || [ -x "$R$RELEASES/$1/venv/bin/evaluator" ]; }
}
journal() {  # the pad's last lines, for the one reading this output
  if [ -z "$ROOT" ]; then journalctl -u "$SERVICE" -n 25 --no-pager >&2 || true; fi
}
# The pad restarted and up: READY (systemctl restart waits for it: Type=notify, at most
# TimeoutStartSec), active (not skipped by ExecCondition), and still the same process after
# SETTLE seconds (not crashed and restarted by Restart=always).
restarted_and_up() {
  local pid state i
  say "run: $SYSTEMCTL reset-failed $SERVICE; $SYSTEMCTL restart $SERVICE (waits for READY)"
  "$SYSTEMCTL" reset-failed "$SERVICE" >/dev/null 2>&1 || true
  if ! "$SYSTEMCTL" restart "$SERVICE"; then
    echo "install: $SERVICE did not reach READY" >&2; return 1
  fi
  state=$("$SYSTEMCTL" is-active "$SERVICE" 2>/dev/null || true)
  if [ "$state" != active ]; then
    echo "install: $SERVICE is $state after the restart, not active (skipped by its config check?)" >&2
    return 1
  fi
  pid=$("$SYSTEMCTL" show -p MainPID --value "$SERVICE")
  say "READY (main PID $pid); watching it for $SETTLE s"
  for ((i = 0; i < SETTLE; i++)); do
    sleep 1
    state=$("$SYSTEMCTL" is-active "$SERVICE" 2>/dev/null || true)
    if [ "$state" != active ] || [ "$("$SYSTEMCTL" show -p MainPID --value "$SERVICE")" != "$pid" ]; then
      echo "install: $SERVICE ended $((i + 1)) s after READY (now $state)" >&2
      return 1
    fi
  done
  say "up: $SERVICE is active, main PID $pid, for $SETTLE s"
}

mark_unchecked() {  # "BUILD OLD" (OLD: - none; = the same build, the unit changed)
  local was=${OLD:--}
  [ "$SWITCHED" = 1 ] || was="="
  printf '%s %s\n' "$BUILD" "$was" 2>/dev/null >"$R$UNCHECKED" ||
    warn "cannot write $UNCHECKED: if this run stops during the check, the next one will not resume it"
  return 0
}

OLD=$(current_build)
if [ -z "$OLD" ] && [ -d "$R$LEGACY_VENV" ] && [ ! -L "$R$LEGACY_VENV" ] && [ "$DRY" = 0 ]; then
  # Installed before builds had directories: that venv becomes the build to go back to.
  mkdir -p "$R$RELEASES/before-releases"
  ln -sfn "$LEGACY_VENV" "$R$RELEASES/before-releases/venv"
  touch -h -d '1970-01-02' "$R$RELEASES/before-releases"
  OLD=before-releases
  say "the virtualenv $LEGACY_VENV (before releases/) is kept as the build $RELEASES/$OLD"
fi
# A run that stopped while the pad was checked on its build (the ssh session dropped, Ctrl-C,
# a power cut during the watch) left this mark, "BUILD OLD": the same build again is not "ok",
# it is checked now, and rolled back to OLD if it does not come up.
RESUMED=0
if [ -f "$R$UNCHECKED" ] && [ "$DRY" = 0 ]; then
  read -r was_build was_old <"$R$UNCHECKED" || true
  if [ "${was_build:-}" = "$BUILD" ] && [ "$OLD" = "$BUILD" ]; then
    say "the run before stopped while the pad was being checked on $BUILD: checking it now"
    case "${was_old:-}" in
      =) UNIT_CHANGED=1 ;;            # the unit changed, the build did not
      -) OLD=""; RESUMED=1 ;;         # no build before it
      *) OLD=$was_old; RESUMED=1 ;;
    esac
  fi
fi
SWITCHED=0
if [ "$RESUMED" = 1 ]; then
  SWITCHED=1
elif [ "$OLD" = "$BUILD" ]; then
  say "ok: $CURRENT -> releases/$BUILD"
elif [ "$DRY" = 1 ]; then
  say "would switch: $CURRENT -> releases/$BUILD${OLD:+ (from $OLD)}"
  CHANGES=$((CHANGES + 1)); SWITCHED=1
else
  # The new build on the disk before current names it: a power cut just after the switch must
  # not leave current pointing at files still in the page cache (ext4 writes new files' data
  # up to 30 s later; the link's rename is in its journal within 5 s).
  sync -f "$R$RELEASE"
  switch_to "$BUILD"
  say "switched: $CURRENT -> releases/$BUILD${OLD:+ (from $OLD)}"
  CHANGES=$((CHANGES + 1)); SWITCHED=1
fi
prune "$OLD"

FAILED=0
if [ "$SWITCHED" = 0 ] && [ "$UNIT_CHANGED" = 0 ]; then
  : # the same build and unit: the running pad is left alone
elif [ ! -f "$R$CONF_DIR/evaluator.toml" ]; then
  say "no $CONF_DIR/evaluator.toml yet: the pad is not started (enabled: it starts at every boot)"
elif [ "$NO_RESTART" = 1 ]; then
  warn "--no-restart: the pad runs the new build from its next start (sudo systemctl restart evaluator); not checked, no roll back"
elif [ "$DRY" = 1 ]; then
  say "would run: systemctl restart $SERVICE, wait for READY, watch it for $SETTLE s; if it does not come up, go back to ${OLD:-(no build before)}"
elif [ -n "$ROOT" ] && [ -z "${EVALUATOR_SYSTEMCTL:-}" ]; then
  say "would run (--root: not on this machine): systemctl restart $SERVICE (then wait, roll back if it does not come up)"
elif mark_unchecked && restarted_and_up; then
  [ "$SWITCHED" = 0 ] || say "upgraded: the pad runs $BUILD${OLD:+ (was $OLD)}"
else
  FAILED=1
  journal
  if [ "$SWITCHED" = 0 ]; then
    echo "install: FAILED: the pad does not come up since the unit changed (the build, $BUILD, is the same: nothing to go back to); the journal: journalctl -u evaluator -b" >&2
  elif [ -z "$OLD" ]; then
    echo "install: FAILED: the pad does not come up on $BUILD and there is no build before it to go back to; the journal: journalctl -u evaluator -b" >&2
  elif ! build_usable "$OLD"; then
    # Removed by hand: going back to it would leave current (and /usr/local/bin/evaluator)
    # pointing at nothing, and blame the configuration.
    echo "install: FAILED: the pad does not come up on $BUILD, and the build before, $OLD, is gone or incomplete (no $RELEASES/$OLD/venv/bin/evaluator): not rolled back, current stays on $BUILD; the journal: journalctl -u evaluator -b" >&2
  else
    switch_to "$OLD"
    say "rolled back: $CURRENT -> releases/$OLD"
    if restarted_and_up; then
      echo "install: FAILED: the pad did not come up on $BUILD; it runs the build before, $OLD, again. $RELEASES/$BUILD is kept to look at (journalctl -u evaluator -b)" >&2
    else
      journal
      echo "install: FAILED: the pad came up neither on $BUILD nor, rolled back, on $OLD: the configuration or the machine, not the build? (journalctl -u evaluator -b)" >&2
    fi
  fi
fi

[ "$DRY" = 1 ] || rm -f "$R$UNCHECKED"   # checked (or rolled back, or not to be checked)

# --- done -----------------------------------------------------------------------------------------
echo
if [ -n "$ROOT" ]; then
  if [ "$DRY" = 1 ]; then echo "install: dry run into $ROOT: $CHANGES change(s) would be made"
  elif [ "$CHANGES" = 0 ]; then echo "install: done into $ROOT: nothing changed"
  else echo "install: done into $ROOT: $CHANGES change(s)"; fi
  exit "$FAILED"
fi
if [ "$DRY" = 1 ]; then
  echo "install: dry run: $CHANGES change(s) would be made, none made"
elif [ "$CHANGES" = 0 ]; then
  echo "install: done: nothing changed"
else
  echo "install: done: $CHANGES change(s)"
fi
if [ ! -f "$CONF_DIR/evaluator.toml" ]; then
  # The same command again (a wheel install is no checkout: without --wheel it is refused).
  again="sudo systemd/install.sh"
  if [ -n "$WHEEL" ]; then again="$again --wheel $WHEEL"; fi
  cat <<EOF
next: write $CONF_DIR/evaluator.toml (every key: $CONF_DIR/evaluator.toml.example; the guide:
      docs/technician.md 1.2), then
      $again   # again: the file gets root:$USER_NAME 0640
      sudo evaluator config check $CONF_DIR/evaluator.toml
      sudo -u $USER_NAME evaluator keys init --config $CONF_DIR/evaluator.toml
      sudo systemctl start evaluator          # or reboot; it starts at every boot
EOF
fi
exit "$FAILED"
