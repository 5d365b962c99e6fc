#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/test_ui_browser.py) when /usr/bin/chromium is
# absent. Idempotent and non-interactive; prints what it does. Playwright drives this system browser
# (executable_path=/usr/bin/chromium): no browser is ever downloaded by `playwright install`.
#   bash scripts/install-browser.sh          # as root, or with sudo available
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    echo "install-browser: $CHROMIUM present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')); nothing to do"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: $CHROMIUM absent and apt-get not found (not Debian/Ubuntu); install Chromium by hand" >&2
    exit 1
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-browser: $CHROMIUM absent and not root (no password-less sudo); run as root:" >&2
        echo "    apt-get update && apt-get install -y --no-install-recommends chromium fonts-liberation" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-browser: $CHROMIUM absent; running apt-get update"
"${SUDO[@]}" apt-get update -q
echo "install-browser: installing chromium (Debian package) and fonts-liberation"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-liberation

if [[ ! -x "$CHROMIUM" ]]; then
    echo "install-browser: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "install-browser: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
