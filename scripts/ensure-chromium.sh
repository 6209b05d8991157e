#!/usr/bin/env bash
# Debian's Chromium at /usr/bin/chromium for the dashboard browser test
# (playwright-core drives it; the machine has no internet, so Playwright's own
# browser downloads are not an option).
set -euo pipefail
bash "$(dirname "$0")/ensure-debian-package.sh" chromium /usr/bin/chromium
