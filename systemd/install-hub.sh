# shellcheck shell=bash
# The city receiver's install (`systemd/install.sh --hub`), sourced by install.sh after its
# options and helpers (put_dir, put_file, put_owner, machine, step, say, CHANGES, R, DRY, ROOT,
# WHEEL, SRC, HERE, TMP).  docs/hub.md, "Installing the receiver", says what and why.
HUB_USER=evaluator-hub
HUB_PREFIX=/opt/evaluator-hub
HUB_VENV=$HUB_PREFIX/venv           # what evaluator-hub.service's ExecStart runs
HUB_UNIT=/etc/systemd/system/evaluator-hub.service
HUB_ENV=/etc/evaluator/hub.env      # the unit's EnvironmentFile: read by systemd (root)
HUB_STATE=/var/lib/evaluator-hub    # the unit's StateDirectory (the SQLite default)
HUB_DOC=/usr/share/doc/evaluator
STEPS=6  # read by step() in install.sh
export STEPS

step "system (the city receiver)"
if [ -n "$ROOT" ]; then
  say "installing the receiver into $ROOT (--root): files only; the machine steps are printed, not run"
elif [ "$DRY" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root (sudo systemd/install.sh --hub), or with --dry-run or --root DIR" >&2
  exit 2
fi
[ "$DRY" = 1 ] && say "dry run: nothing is changed"
if [ -n "$WHEEL" ]; then
  [ -f "$WHEEL" ] || { echo "install: --wheel $WHEEL: no such file" >&2; exit 2; }
  WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
  say "the evaluator from the wheel $WHEEL"
else
  [ -f "$SRC/pyproject.toml" ] || { echo "install: $SRC is not the evaluator's checkout" >&2; exit 2; }
  say "the evaluator from the checkout $SRC"
fi
if [ "$DRY" = 0 ]; then  # one install at a time (install.sh says why)
  if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"; INSTALL_LOCK=$ROOT; exec 9<"$ROOT"
  else
    INSTALL_LOCK=/run/lock/evaluator-hub-install.lock
    [ -d /run/lock ] || INSTALL_LOCK=/run/evaluator-hub-install.lock
    exec 9>>"$INSTALL_LOCK"
  fi
  if ! flock -n 9; then
    echo "install: another install.sh --hub is running (it holds $INSTALL_LOCK): nothing was changed" >&2
    exit 2
  fi
fi

step "Debian packages"
if [ -n "$ROOT" ]; then
  machine apt-get install -y --no-install-recommends python3 python3-venv
elif dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed"; then
  say "ok: python3 python3-venv installed"
else
  machine env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv
fi

step "user $HUB_USER"
if [ -z "$ROOT" ] && id "$HUB_USER" >/dev/null 2>&1; then
  say "ok: $HUB_USER exists"
else
  machine useradd --system --user-group --home-dir "$HUB_STATE" --no-create-home \
    --shell /usr/sbin/nologin "$HUB_USER"
fi

step "directories and files"
# hub.env may hold a database password: root's alone (systemd reads it before dropping to the
# service's user).  /etc/evaluator is left as it is when it exists (a pad's install made it).
[ -d "$R/etc/evaluator" ] || put_dir /etc/evaluator 755 root:root
put_dir "$HUB_PREFIX" 755 root:root
put_dir "$HUB_DOC" 755
put_file "$HERE/evaluator-hub.service" "$HUB_UNIT" 644
HUB_UNIT_CHANGED=$CHANGED
if [ -f "$R$HUB_ENV" ]; then
  say "ok: $HUB_ENV (the operator's: never overwritten)"
  put_file "$R$HUB_ENV" "$HUB_ENV" 600 root:root  # only its mode and owner
else
  cat >"$TMP/hub.env" <<'EOF'
# evaluator-hub.service's settings (docs/hub.md).  Read by systemd as root: keep it 0600.
# The database: PostgreSQL for a city (postgresql://user:password@host/db), or SQLite.
EVALUATOR_HUB_DB=sqlite:////var/lib/evaluator-hub/hub.db
# The broker(s): mqtts://host:8883 (several: repeat --broker in HUB_ARGS).
HUB_BROKER=mqtt://127.0.0.1:1883
# More options of `evaluator hub run`, e.g. --part 0/2 (one receiver per part, docs/hub.md),
# --tls-ca /etc/evaluator/tls/ca.crt --client-id hub-a
HUB_ARGS=
EOF
  put_file "$TMP/hub.env" "$HUB_ENV" 600 root:root
fi
put_file "$SRC/docs/hub.md" "$HUB_DOC/hub.md" 644

if [ -n "$WHEEL" ]; then
  project=$(sha256sum <"$WHEEL" | cut -c1-64)
else
  project=$(cd "$SRC" && find pyproject.toml evaluator kiosk printer sync config docs/schemas -type f \
    ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
    | sha256sum | cut -c1-64)
fi
stamp="requirements $(sha256sum <"$HERE/requirements.txt" | cut -c1-64) project $project"
step "build $HUB_VENV"
HUB_BUILT=0
PIP=(env PIP_DISABLE_PIP_VERSION_CHECK=1 "$HUB_VENV/bin/python" -m pip)
hub_build() {
  # No system site packages: the receiver needs nothing of Debian's (no screen, no GPIO).
  machine python3 -m venv "$HUB_VENV"
  machine "${PIP[@]}" install -r "$HERE/requirements.txt"
  machine "${PIP[@]}" install --no-deps --force-reinstall "${WHEEL:-$SRC}"
  HUB_BUILT=1
}
if [ -n "$ROOT" ]; then
  hub_build
elif [ -x "$HUB_VENV/bin/evaluator" ] && [ "$(cat "$HUB_PREFIX/.evaluator-installed" 2>/dev/null)" = "$stamp" ]; then
  say "ok: $HUB_VENV is complete (the pinned requirements and this evaluator)"
else
  if [ -e "$HUB_VENV" ]; then machine rm -rf "$HUB_VENV"; fi
  hub_build
  if [ "$DRY" = 1 ]; then
    say "would record: $HUB_PREFIX/.evaluator-installed"
  else
    printf '%s\n' "$stamp" >"$HUB_PREFIX/.evaluator-installed"
    say "recorded: $HUB_PREFIX/.evaluator-installed"
  fi
fi

step "systemd"
if [ -n "$ROOT" ] || [ "$HUB_UNIT_CHANGED" = 1 ]; then machine systemctl daemon-reload; fi
if [ -z "$ROOT" ] && [ "$(systemctl is-enabled evaluator-hub.service 2>/dev/null || true)" = enabled ]; then
  say "ok: evaluator-hub.service enabled"
else
  machine systemctl enable evaluator-hub.service
fi
if [ "$HUB_UNIT_CHANGED" = 0 ] && [ "$HUB_BUILT" = 0 ]; then
  :  # the same build and unit: the running receiver is left alone
elif [ -n "$ROOT" ] || [ -f "$HUB_ENV" ]; then
  machine systemctl restart evaluator-hub.service
else
  say "edit $HUB_ENV (the database, the broker), then: sudo systemctl restart evaluator-hub"
fi

echo
if [ -n "$ROOT" ]; then
  if [ "$DRY" = 1 ]; then echo "install: dry run into $ROOT: $CHANGES change(s) would be made"
  elif [ "$CHANGES" = 0 ]; then echo "install: done into $ROOT: nothing changed"
  else echo "install: done into $ROOT: $CHANGES change(s)"; fi
elif [ "$DRY" = 1 ]; then
  echo "install: dry run: $CHANGES change(s) would be made, none made"
elif [ "$CHANGES" = 0 ]; then
  echo "install: done: nothing changed"
else
  echo "install: done: $CHANGES change(s)"
fi
