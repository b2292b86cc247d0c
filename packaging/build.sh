#!/usr/bin/env bash
# Build the Linux one-folder bundle of fer-demo from a checkout and prove it works:
#   packaging/build.sh [DIST_DIR]     (default: dist/)
# Needs the app and PyInstaller installed (pip install -e ".[build]"). Steps: PyInstaller with
# build_installer.spec, a check that no torch got into the bundle, the frozen app's --self-test
# (offscreen Qt, no network), then DIST_DIR/fer-demo-linux-<arch>.tar.gz with a .desktop entry.
set -euo pipefail
cd "$(dirname "$0")/.."
DIST=${1:-dist}
WORK=${PYI_WORK:-build/pyinstaller}
start=$(date +%s)
pyinstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK" build_installer.spec
BUNDLE="$DIST/fer-demo"
if find "$BUNDLE" -iname '*torch*' | grep -q .; then
  echo "build.sh: torch found in the bundle:" >&2; find "$BUNDLE" -iname '*torch*' | head >&2; exit 1
fi
cp packaging/linux/fer-demo.desktop packaging/linux/install.sh "$BUNDLE/"
built=$(date +%s)
QT_QPA_PLATFORM=offscreen FER_OFFLINE=1 env -u FER_YUNET_DIR -u FER_YUNET_MODEL "$BUNDLE/fer-demo" --self-test
tested=$(date +%s)
arch=$(uname -m)
tar -C "$DIST" -czf "$DIST/fer-demo-linux-$arch.tar.gz" fer-demo
size_mb=$(du -sm "$BUNDLE" | cut -f1)
tar_mb=$(du -sm "$DIST/fer-demo-linux-$arch.tar.gz" | cut -f1)
echo "bundle $BUNDLE: ${size_mb} MB (tarball ${tar_mb} MB); build $((built - start)) s, self-test $((tested - built)) s"
